"""The relay's and the consumers' metrics, read on their own /metrics (--metrics-port)
after the action that moves them: outbox lag (growing while the broker is away, then
drained), rows published, messages handled, consumer lag and dead letters."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from confluent_kafka import Producer
from sqlalchemy import Engine

from paywall.clients import kafka_config
from paywall.settings import Settings
from paywall.stack.process import free_port
from streaming.topics import EVENT_TOPICS
from tests.faults.conftest import PaywallProcess
from tests.faults.test_events import all_published, db, emit_events, wait_for
from tests.faults.test_scaling import metric, start_at_the_end

__all__ = ["db"]  # the fixture, shared with test_events


def test_outbox_lag_shows_while_the_broker_is_away_and_drains_after(
    db: Engine, paywall_process: Callable[..., PaywallProcess]
) -> None:
    ids = emit_events(db, ["customer"], 40)
    stranded = free_port()
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens: every batch fails
    relay = paywall_process(
        "relay", "--metrics-port", str(stranded), KAFKA_BOOTSTRAP_SERVERS=nowhere
    )
    lag = "paywall_outbox_lag_events"
    wait_for("lag reported", lambda: metric(stranded, lag, schema="customer") >= 40, relay)
    assert metric(stranded, "paywall_outbox_published_total") == 0
    relay.stop()

    port = free_port()
    relay = paywall_process("relay", "--metrics-port", str(port))
    wait_for("published", lambda: all_published(db, ids), relay)
    wait_for("lag drained", lambda: metric(port, lag, schema="customer") == 0, relay)
    assert metric(port, "paywall_outbox_published_total", schema="customer") >= 40


def test_consumer_reports_handled_lag_and_dead_letters(
    db: Engine, settings: Settings, paywall_process: Callable[..., PaywallProcess]
) -> None:
    group = f"audit-metrics-{uuid.uuid4().hex[:8]}"
    start_at_the_end(settings, group)
    producer = Producer(kafka_config(settings))
    producer.produce(EVENT_TOPICS["customer"].name, key=b"poison", value=b"not an envelope")
    assert producer.flush(15) == 0
    ids = emit_events(db, ["customer"], 20)
    relay = paywall_process("relay")
    wait_for("published", lambda: all_published(db, ids), relay)

    port = free_port()
    consumer = paywall_process("consume", "audit", "--group-id", group, "--metrics-port", str(port))
    handled = "paywall_consumer_processed_total"
    wait_for(
        "handled and dead-lettered",
        lambda: (
            metric(port, handled, group="audit", result="ok") >= 20
            and metric(port, handled, group="audit", result="dead_letter") == 1
        ),
        consumer,
    )
    # Measured every 10 s from the fetch responses, per topic it holds: caught up, 0.
    lag = "paywall_consumer_lag_messages"
    topic = EVENT_TOPICS["customer"].name
    wait_for(
        "lag measured",
        lambda: f'topic="{topic}"' in page(port) and metric(port, lag, topic=topic) == 0,
        consumer,
    )


def page(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
