"""Outbox relay: committed outbox rows → Kafka, in order, nothing lost, marked when acked.

One relay at a time publishes a given schema (an advisory lock), which keeps each
aggregate's events in order even with several relays running for failover; rows are
claimed with FOR UPDATE SKIP LOCKED and marked published only after the broker acked
them (idempotent producer, acks=all). Broker down: the transaction rolls back and the
rows wait. A crash between ack and mark republishes; consumers dedupe by event id.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Producer
from prometheus_client import Counter, Gauge
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from paywall.clients import kafka_config
from paywall.logs import get_logger
from paywall.settings import Settings
from streaming.heartbeat import Heartbeat
from streaming.topics import EVENT_ID_HEADER, EVENT_TOPICS, EVENT_TYPE_HEADER

log = get_logger(__name__)
# Rows per transaction and flush. Each flush waits for the broker's acks of the batch, which
# is most of a relay's time (bench/relay.py): larger batches wait less per event, hold the
# schema's lock longer and resend more after a broker failure.
BATCH_SIZE = 500
OUTBOX_LAG = Gauge("paywall_outbox_lag_events", "Outbox rows not yet published", ["schema"])
PUBLISHED = Counter("paywall_outbox_published_total", "Outbox rows published", ["schema"])


class BrokerUnavailable(Exception):
    pass


@dataclass
class RelayStats:
    published: int = 0
    failed_batches: int = 0


def make_producer(settings: Settings) -> Producer:
    return Producer(
        kafka_config(
            settings,
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 15000,
                "log_level": 3,
            },
        )
    )


def publish_batch(
    engine: Engine, producer: Producer, schema: str, batch_size: int = BATCH_SIZE
) -> int:
    """Publish up to `batch_size` rows of one schema's outbox; how many were published."""
    topic = EVENT_TOPICS[schema].name
    with engine.begin() as conn:
        locked: bool = conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(schema)}
        ).scalar_one()
        if not locked:
            return 0  # another relay is publishing this schema
        rows = conn.execute(
            text(
                f"SELECT seq, id, aggregate_id, type, payload FROM {schema}.outbox "
                "WHERE published_at IS NULL ORDER BY seq LIMIT :n FOR UPDATE SKIP LOCKED"
            ),
            {"n": batch_size},
        ).all()
        if not rows:
            return 0
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        for row in rows:
            producer.produce(
                topic,
                key=row.aggregate_id.encode(),
                value=json.dumps(row.payload, separators=(",", ":")).encode(),
                headers={EVENT_ID_HEADER: str(row.id), EVENT_TYPE_HEADER: row.type},
                on_delivery=on_delivery,
            )
            producer.poll(0)
        remaining = producer.flush(20)
        if remaining or errors:
            # Rolling back leaves every row unpublished; what did reach the broker
            # is published again later and deduplicated by event id downstream.
            raise BrokerUnavailable(str(errors[0]) if errors else f"{remaining} unacked")
        conn.execute(
            text(f"UPDATE {schema}.outbox SET published_at = now() WHERE seq = ANY(:seqs)"),
            {"seqs": [r.seq for r in rows]},
        )
    PUBLISHED.labels(schema).inc(len(rows))
    return len(rows)


def measure_lag(engine: Engine) -> dict[str, int]:
    lag: dict[str, int] = {}
    with engine.connect() as conn:
        for schema in EVENT_TOPICS:
            lag[schema] = conn.execute(
                text(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")
            ).scalar_one()
            OUTBOX_LAG.labels(schema).set(lag[schema])
    return lag


def drain(engine: Engine, producer: Producer, batch_size: int = BATCH_SIZE) -> int:
    """Publish until every outbox is empty (or the broker fails); rows published."""
    total = 0
    while True:
        moved = sum(publish_batch(engine, producer, schema, batch_size) for schema in EVENT_TOPICS)
        total += moved
        if moved == 0:
            measure_lag(engine)
            return total


def run(
    engine: Engine,
    settings: Settings,
    stop: Any,
    idle_sleep: float = 0.2,
    heartbeat: Heartbeat | None = None,
    batch_size: int = BATCH_SIZE,
) -> RelayStats:
    """Relay until `stop()` is true; broker failures back off and retry, losing nothing.
    Each finished pass over the outboxes beats `heartbeat` (the liveness probe's)."""
    stats = RelayStats()
    heartbeat = heartbeat or Heartbeat(None)
    producer = make_producer(settings)
    backoff = 0.5
    while not stop():
        try:
            moved = drain(engine, producer, batch_size)
            stats.published += moved
            heartbeat.beat()
            backoff = 0.5
            if moved == 0:
                time.sleep(idle_sleep)
        except BrokerUnavailable as exc:
            stats.failed_batches += 1
            log.warning("relay.broker_unavailable", error=str(exc), retry_in=backoff)
            # The lag grows while the broker is away: what the outbox-lag alert is for.
            _measure_lag_quietly(engine)
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            # A fresh producer: timed-out idempotent sends can leave the old one fenced.
            producer = make_producer(settings)
    producer.flush(10)
    return stats


def _measure_lag_quietly(engine: Engine) -> None:
    try:
        measure_lag(engine)
    except SQLAlchemyError as exc:
        log.warning("relay.lag_unmeasured", error=type(exc).__name__)


def _lock_key(schema: str) -> int:
    return 7_261_000_000 + zlib.crc32(schema.encode()) % 1_000_000
