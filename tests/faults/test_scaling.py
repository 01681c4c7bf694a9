"""More processes in a group share the work, each event still handled once.

Two `paywall consume audit` processes in one Kafka group split the event topics'
partitions between them, and two `paywall relay` processes publish the outboxes side by
side (each schema's batch under an advisory lock, rows claimed FOR UPDATE SKIP LOCKED).
Every process serves its own /metrics: what each one did is read there.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable

import httpx
from confluent_kafka import Consumer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from paywall.clients import kafka_config
from paywall.settings import Settings
from paywall.stack.process import free_port
from streaming.topics import EVENT_TOPICS
from tests.faults.conftest import PaywallProcess
from tests.faults.test_events import EVENTS, audited, db, emit_events, wait_for

__all__ = ["db"]  # the fixture, shared with test_events

PARTITIONS = {f"{t.name}/{p}" for t in EVENT_TOPICS.values() for p in range(t.partitions)}


def metric(port: int, name: str, **labels: str) -> float:
    """The sum of a metric's samples with `labels` on a worker's own /metrics; NaN (false
    in every comparison) while the process does not serve them yet."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.ConnectError:
        return math.nan
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def start_at_the_end(settings: Settings, group: str) -> None:
    """Read the event topics to their ends in `group` and commit there: the group handles
    only what comes next. Read, not asked: the local broker's offset listing may lag the
    end its fetches report (see ConsumerLoop.measure_lag)."""
    consumer = Consumer(
        kafka_config(
            settings,
            **{
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
            },
        )
    )
    try:
        consumer.subscribe([t.name for t in EVENT_TOPICS.values()])
        empty = 0
        # Done once it holds every partition and three reads in a row brought nothing.
        while empty < 3:
            got = consumer.consume(1000, 1.0)
            held = len(consumer.assignment()) == len(PARTITIONS)
            empty = empty + 1 if held and not got else 0
        # Partitions never written stay without an offset: from their start is their end.
        read = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        if read:
            consumer.commit(offsets=read, asynchronous=False)
    finally:
        consumer.close()


def holding(process: PaywallProcess) -> set[str]:
    """The partitions a consumer process holds now, from its last assignment log line."""
    held: set[str] = set()
    for line in process.log_text().splitlines():
        if not line.startswith("{"):
            continue  # librdkafka's own lines
        entry = json.loads(line)
        if entry.get("event") == "consumer.assigned":
            held = set(entry["partitions"])
        elif entry.get("event") == "consumer.revoked":
            held = set()
    return held


def test_two_consumers_share_a_group_and_two_relays_publish_every_event_once(
    db: Engine, settings: Settings, paywall_process: Callable[..., PaywallProcess]
) -> None:
    group = f"audit-scaled-{uuid.uuid4().hex[:8]}"
    start_at_the_end(settings, group)
    consumer_ports = [free_port(), free_port()]
    consumers = [
        paywall_process(
            "consume",
            "audit",
            "--group-id",
            group,
            "--metrics-port",
            str(port),
            LOG_FORMAT="json",
        )
        for port in consumer_ports
    ]

    def shared() -> bool:
        first, second = (holding(c) for c in consumers)
        return bool(first and second) and first | second == PARTITIONS and not first & second

    # Before any event: a rebalance while messages flow could hand one over uncommitted.
    wait_for("both consumers holding partitions", shared, *consumers)

    relay_ports = [free_port(), free_port()]
    relays = [paywall_process("relay", "--metrics-port", str(port)) for port in relay_ports]
    ids = emit_events(db, list(EVENTS), 400)
    processes = (*consumers, *relays)
    wait_for("every event audited", lambda: audited(db, ids)[1] == len(ids), *processes)

    def published() -> float:
        return sum(metric(port, "paywall_outbox_published_total") for port in relay_ports)

    def handled() -> list[float]:
        return [metric(port, "paywall_consumer_processed_total") for port in consumer_ports]

    # The relays also publish what earlier tests left in the outboxes: wait for the
    # consumers to have handled all of it.
    wait_for("the group caught up", lambda: sum(handled()) >= published(), *processes)
    per_consumer = handled()
    assert all(count > 0 for count in per_consumer), per_consumer
    assert sum(per_consumer) == published() >= len(ids)  # each published event handled once
    per_relay = [metric(port, "paywall_outbox_published_total") for port in relay_ports]
    assert all(count > 0 for count in per_relay), per_relay
    assert audited(db, ids) == (len(ids), len(ids))
