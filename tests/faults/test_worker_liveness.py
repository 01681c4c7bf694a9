"""Liveness by progress on real servers: the relay's heartbeat stops while the broker is
gone and work waits, and comes back with it; a caught-up consumer keeps beating; the
probe (`paywall probe heartbeat`) says which."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import text

from paywall.clients import kafka_config
from paywall.db import engine
from paywall.stack.local import LocalStack
from streaming.admin import new_topic
from streaming.consumers.runner import ConsumerLoop
from streaming.heartbeat import Heartbeat, age_seconds
from streaming.topics import Topic
from tests.conftest import Api
from tests.faults.conftest import PaywallProcess

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def probe(cli_env: dict[str, str], beat: Path, max_age: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "paywall"), "probe", "heartbeat", str(beat),
         "--max-age", str(max_age)],
        env=cli_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def wait_for(condition, what: str, seconds: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def pending_outbox_row(api: Api) -> None:
    event_id = uuid.uuid4()
    envelope = {
        "event_id": str(event_id),
        "event_type": "customer.updated",
        "schema_version": 1,
        "occurred_at": "2026-06-01T10:00:00+00:00",
        "producer": "customer-service",
        "key": "c-live",
        "data": {"customer_id": "c-live"},
    }
    with engine(api.settings).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customer.outbox (id, aggregate_type, aggregate_id, type, payload) "
                "VALUES (:id, 'customer', 'c-live', 'customer.updated', CAST(:p AS jsonb))"
            ),
            {"id": event_id, "p": json.dumps(envelope)},
        )


def test_the_relay_beats_while_it_relays_and_stops_while_work_waits(
    api: Api,
    local_stack: LocalStack,
    paywall_process,  # type: ignore[no-untyped-def]
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    beat = tmp_path / "relay-heartbeat"
    relay: PaywallProcess = paywall_process("relay", "--heartbeat", str(beat))
    wait_for(lambda: age_seconds(beat) is not None, "the relay never beat")
    first = beat.stat().st_mtime
    wait_for(lambda: beat.stat().st_mtime > first, "an idle relay stopped beating")
    assert probe(cli_env, beat, 30).returncode == 0

    local_stack.stop("kafka")
    try:
        pending_outbox_row(api)  # work waits, and cannot be done
        # Longer than two of the relay's tries (each waits out a 15 s delivery timeout,
        # then backs off): a relay that beat on every try would never get this old.
        wait_for(lambda: (age_seconds(beat) or 0) > 45, "the relay beat without progress")
        stuck = probe(cli_env, beat, 45)
        assert stuck.returncode == 1 and stuck.stderr.startswith("stuck: last progress")
        assert relay.alive()  # alive as a process: only the probe tells it is stuck
    finally:
        local_stack.start("kafka")
    wait_for(lambda: (age_seconds(beat) or 99) < 5, "the relay did not recover", 180)
    assert probe(cli_env, beat, 30).returncode == 0


def test_a_caught_up_consumer_keeps_beating(api: Api, tmp_path: Path) -> None:
    beat = tmp_path / "consumer-heartbeat"
    # A topic of its own with one event: a shared topic holds the whole session's events,
    # and reading them one by one under load can outlast any deadline.
    topic = Topic(f"liveness-{uuid.uuid4().hex[:8]}", 1, "test")
    admin = AdminClient(kafka_config(api.settings))
    admin.create_topics([new_topic(topic, api.settings)])[topic.name].result(30)
    producer = Producer(kafka_config(api.settings))
    producer.produce(topic.name, key=b"k", value=b"{}")
    assert producer.flush(10) == 0
    loop = ConsumerLoop(
        api.settings, "notification", [topic.name], lambda _: None,
        group_id=f"live-{uuid.uuid4().hex[:6]}", heartbeat=Heartbeat(beat),
    )  # fmt: skip
    try:
        started = beat.stat().st_mtime
        # Caught up once the lag is measured as zero; then idle polls are progress.
        wait_for(lambda: (loop.poll_once(0.2) or True) and loop._behind == 0, "never caught up")
        wait_for(
            lambda: (loop.poll_once(0.2) or True) and beat.stat().st_mtime > started, "no beat"
        )
    finally:
        loop.close()


def test_the_probe_without_any_beat_says_never(cli_env: dict[str, str], tmp_path: Path) -> None:
    done = probe(cli_env, tmp_path / "none", 120)
    assert done.returncode == 1
    assert done.stderr.strip() == "stuck: last progress never (allowed 120s)"
