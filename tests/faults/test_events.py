"""Events under faults, with the relay and the audit consumer as real processes.

The broker is killed mid-relay while the audit consumer reads (its commits fail, and its
membership is gone when the broker comes back); the relay is killed mid-batch. Whatever
happens on the way, every outbox event ends up in audit.log exactly once, the chain
verifies and the completeness check finds no gap, or finds the one the broker lost and
its repair brings it back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from dagster import materialize
from sqlalchemy import Engine, text

from assets.events.assets import event_completeness
from paywall.clients import kafka_config
from paywall.db import engine
from paywall.settings import Settings
from paywall.stack.local import LocalStack
from pipelines.resources import build_resources
from streaming import completeness
from streaming.admin import sync_topics
from streaming.consumers import audit
from streaming.outbox import emit
from streaming.topics import EVENT_ID_HEADER, EVENT_TOPICS
from tests.conftest import REPO
from tests.faults.conftest import PaywallProcess

pytestmark = pytest.mark.integration

# One cheap event type per service schema: (aggregate type, event type, data).
EVENTS: dict[str, tuple[str, str, Callable[[str], dict[str, Any]]]] = {
    "auth": (
        "user",
        "user.created",
        lambda k: {
            "user_id": k,
            "customer_id": None,
            "tenant_id": None,
            "created_at": datetime.now(UTC).isoformat(),
        },
    ),
    "customer": ("customer", "customer.deleted", lambda k: {"customer_id": k, "tenant_id": None}),
    "registration": (
        "registration",
        "registration.failed",
        lambda k: {"registration_id": k, "reason": "card_declined"},
    ),
}
WAIT_SECONDS = 240


@pytest.fixture
def db(settings: Settings) -> Engine:
    sync_topics(settings)
    return engine(settings)


@pytest.fixture
def audit_consumer(
    paywall_process: Callable[..., PaywallProcess],
) -> Iterator[PaywallProcess]:
    consumer = paywall_process("consume", "audit")
    yield consumer
    assert consumer.alive(), own_lines(consumer)


def emit_events(db: Engine, schemas: list[str], per_schema: int) -> list[str]:
    """`per_schema` events into each schema's outbox, 200 to a transaction, 50 aggregates."""
    run = uuid.uuid4().hex[:8]
    ids = []
    for schema in schemas:
        aggregate, event_type, data = EVENTS[schema]
        for start in range(0, per_schema, 200):
            with db.begin() as conn:
                for i in range(start, min(start + 200, per_schema)):
                    key = f"{run}-{schema}-{i % 50}"
                    ids.append(str(emit(conn, schema, aggregate, key, event_type, data(key))))
    return ids


class Traffic(threading.Thread):
    """Outbox rows written as the services write them, about ten a second, until stopped.

    Few on purpose: later tests read every event topic from the start with new groups."""

    def __init__(self, db: Engine) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.ids: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.ids += emit_events(self.db, list(EVENTS), 1)
            time.sleep(0.3)

    def stop(self) -> list[str]:
        self.done.set()
        self.join()
        return self.ids


def published(db: Engine, ids: list[str]) -> set[str]:
    with db.connect() as conn:
        return {
            str(row[0])
            for schema in EVENT_TOPICS
            for row in conn.execute(
                text(
                    f"SELECT id FROM {schema}.outbox WHERE id = ANY(CAST(:ids AS uuid[])) "
                    "AND published_at IS NOT NULL"
                ),
                {"ids": ids},
            )
        }


def all_published(db: Engine, ids: list[str]) -> bool:
    return len(published(db, ids)) == len(ids)


def any_audited(db: Engine, ids: list[str]) -> bool:
    return audited(db, ids)[1] > 0


def audited(db: Engine, ids: list[str]) -> tuple[int, int]:
    """Rows in audit.log for these events, and distinct events among them."""
    with db.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT event_id) FROM audit.log "
                "WHERE event_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).one()
    return int(row[0]), int(row[1])


def own_lines(process: PaywallProcess) -> str:
    """The end of a process's log without librdkafka's connection errors (a page a second
    while the broker is down), which would hide the traceback."""
    lines = process.log_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("%"))[-3000:]


def wait_for(what: str, done: Callable[[], bool], *processes: PaywallProcess) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        for p in processes:
            assert p.alive(), f"{what}: {p.process.args} died\n{own_lines(p)}"
        assert time.monotonic() < deadline, f"{what}: not after {WAIT_SECONDS}s"
        time.sleep(0.5)


def kill_broker(local_stack: LocalStack) -> None:
    """SIGKILL the broker, as a crash would (the stack's own stop lets it shut down first)."""
    kafka = next(part for part in local_stack.status() if part.name == "kafka")
    assert kafka.pid is not None
    os.kill(kafka.pid, signal.SIGKILL)
    local_stack.stop("kafka")  # gone already: this only waits for it


def crash_broker_mid_burst(
    db: Engine, local_stack: LocalStack, relay: PaywallProcess, consumer: PaywallProcess
) -> list[str]:
    """Kill the broker while the consumer is halfway through a burst it has fetched (held
    still meanwhile, so that it is), and start it again 20 s later; the burst's event ids.

    The consumer's next commit finds no coordinator, or an old member id once the broker
    is back; the relay's batch outlives its delivery timeout, fails and rolls back (what
    reached the broker is sent again)."""
    sent: list[str] = []
    while True:
        burst = emit_events(db, list(EVENTS), 100)
        sent += burst
        wait_for("the burst", partial(all_published, db, burst), relay, consumer)
        wait_for("the consumer", partial(any_audited, db, burst), relay, consumer)
        consumer.process.send_signal(signal.SIGSTOP)
        if audited(db, burst)[1] < len(burst):
            break
        consumer.process.send_signal(signal.SIGCONT)
    try:
        kill_broker(local_stack)
    finally:
        consumer.process.send_signal(signal.SIGCONT)
    time.sleep(20)
    local_stack.start("kafka")
    time.sleep(5)  # the consumer rejoins; a commit of its old membership is refused
    return sent


def settle(db: Engine, ids: list[str], *processes: PaywallProcess) -> None:
    """Every event published, and audit.log still for 15 s or holding every one."""
    wait_for("relay", partial(all_published, db, ids), *processes)
    last: list[int] = [-1, 0]  # audited count, since when (monotonic)

    def quiet() -> bool:
        count = audited(db, ids)[1]
        if count != last[0]:
            last[:] = [count, int(time.monotonic())]
        return count == len(ids) or time.monotonic() - last[1] > 15

    wait_for("audit consumer", quiet, *processes)


class KafkaReader:
    """A plain consumer over every event topic from the start: copies per event id."""

    def __init__(self, settings: Settings, schemas: list[str]) -> None:
        self.consumer = Consumer(
            kafka_config(
                settings,
                **{"group.id": f"reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False},
            )
        )
        topics = [EVENT_TOPICS[s] for s in schemas]
        self.consumer.assign(
            [
                TopicPartition(t.name, p, OFFSET_BEGINNING)
                for t in topics
                for p in range(t.partitions)
            ]
        )
        self.copies: Counter[str] = Counter()

    def read(self, seconds: float = 0.5) -> int:
        got = 0
        for msg in self.consumer.consume(1000, seconds):
            if msg.error() is None:
                event_id = dict(msg.headers() or []).get(EVENT_ID_HEADER)
                # Another test's poison message (no header) is no relayed event.
                if event_id is not None:
                    self.copies[event_id.decode()] += 1
                got += 1
        return got

    def read_until_idle(self, ids: Sequence[str] = (), idle_seconds: float = 1) -> None:
        """Read until every one of `ids` was seen and nothing came for `idle_seconds`."""
        deadline = time.monotonic() + WAIT_SECONDS
        idle_since = time.monotonic()
        while not all(self.copies[i] for i in ids) or time.monotonic() - idle_since < idle_seconds:
            assert time.monotonic() < deadline, "Kafka does not hold every event"
            if self.read(0.5):
                idle_since = time.monotonic()

    def close(self) -> None:
        self.consumer.close()


def test_broker_killed_mid_relay_while_commits_fail_audits_every_event_once(
    db: Engine,
    local_stack: LocalStack,
    paywall_process: Callable[..., PaywallProcess],
    audit_consumer: PaywallProcess,
) -> None:
    relay = paywall_process("relay")
    traffic = Traffic(db)
    traffic.start()
    bursts: list[str] = []
    try:
        wait_for("first events", lambda: any_audited(db, traffic.ids), relay, audit_consumer)
        # Whether a commit fails is a race inside librdkafka (one in flight at the kill may
        # just be retried once the broker is back), so the crash comes again until one has.
        for _ in range(3):
            bursts += crash_broker_mid_burst(db, local_stack, relay, audit_consumer)
            if "consumer.commit_failed" in audit_consumer.log_text():
                break
    finally:
        ids = traffic.stop() + bursts

    settle(db, ids, relay, audit_consumer)
    assert "relay.broker_unavailable" in relay.log_text()
    # Its commits failed (no coordinator while the broker was away, UNKNOWN_MEMBER_ID after
    # it came back); the consumer went on.
    assert "consumer.commit_failed" in audit_consumer.log_text()
    assert audit_consumer.alive() and relay.alive()

    today = datetime.now(UTC).date()
    report = completeness.check(db, today, grace_seconds=0)
    lost = {e for s in report.schemas for e in s.missing}
    if lost:  # the broker dropped events it had acknowledged: the repair brings them back
        assert sum(completeness.repair(db, report).values()) == len(lost)
        settle(db, [*ids, *lost], relay, audit_consumer)
        report = completeness.check(db, today, grace_seconds=0)
    assert report.complete, report
    assert audited(db, ids) == (len(ids), len(ids))
    assert audit.verify(db).ok


def test_relay_killed_mid_batch_doubles_events_in_kafka_not_in_the_audit_log(
    db: Engine,
    settings: Settings,
    paywall_process: Callable[..., PaywallProcess],
    audit_consumer: PaywallProcess,
) -> None:
    ids = emit_events(db, ["customer"], 600)  # two relay batches
    reader = KafkaReader(settings, ["customer"])
    try:
        relay = paywall_process("relay")
        # Freeze the relay now and then; once Kafka holds events its open batch has not
        # marked published yet, kill it: the next relay sends those again.
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            assert relay.alive(), own_lines(relay)
            assert time.monotonic() < deadline, "the relay never got going"
            time.sleep(0.05)
            relay.process.send_signal(signal.SIGSTOP)
            reader.read_until_idle()
            marked = published(db, ids)
            in_kafka_only = {i for i in ids if reader.copies[i]} - marked
            if in_kafka_only:
                break
            if len(marked) == len(ids):
                # It sent and marked everything between two looks: give it more to send.
                ids += emit_events(db, ["customer"], 600)
            relay.process.send_signal(signal.SIGCONT)
        relay.kill()

        again = paywall_process("relay")
        settle(db, ids, again, audit_consumer)
        reader.read_until_idle(ids)
    finally:
        reader.close()
    doubled = {i for i in ids if reader.copies[i] > 1}
    assert doubled >= in_kafka_only
    assert audited(db, ids) == (len(ids), len(ids))
    assert audit.verify(db).ok


def inject_gaps(db: Engine, day: date) -> list[str]:
    """Three events per schema written on `day` and marked published an hour later without
    being sent: what acknowledged events the broker then lost look like from the database."""
    ids = emit_events(db, list(EVENTS), 3)
    written = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    with db.begin() as conn:
        for schema in EVENTS:
            conn.execute(
                text(
                    f"UPDATE {schema}.outbox SET created_at = :w, published_at = :p "
                    "WHERE id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"w": written, "p": written + timedelta(hours=1), "ids": ids},
            )
    return ids


def paywall_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "paywall"), *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def materialize_completeness(settings: Settings, day: date) -> tuple[bool, dict[str, Any]]:
    """The Dagster asset for `day`: its check's verdict and the materialization's metadata."""
    result = materialize(
        [event_completeness], partition_key=day.isoformat(), resources=build_resources(settings)
    )
    [evaluation] = result.get_asset_check_evaluations()
    [mat] = result.asset_materializations_for_node("event_completeness")
    return evaluation.passed, {k: v.value for k, v in mat.metadata.items()}


def test_completeness_finds_and_repairs_events_published_but_never_delivered(
    db: Engine,
    settings: Settings,
    cli_env: dict[str, str],
    paywall_process: Callable[..., PaywallProcess],
    audit_consumer: PaywallProcess,
) -> None:
    # Past days of their own (other tests write today), one for the CLI, one for Dagster,
    # within the Dagster partitions.
    first = settings.first_partition_day
    past_days = (datetime.now(UTC).date() - first).days - 2
    cli_day = first + timedelta(days=uuid.uuid4().int % past_days)
    dagster_day = cli_day + timedelta(days=1)
    cli_ids, dagster_ids = inject_gaps(db, cli_day), inject_gaps(db, dagster_day)

    report = completeness.check(db, cli_day, grace_seconds=300)
    assert {s.schema: set(s.missing) for s in report.schemas if s.missing} == {
        schema: set(cli_ids[i * 3 : i * 3 + 3]) for i, schema in enumerate(EVENTS)
    }
    assert report.totals() == {
        "published": 9,
        "audited": 0,
        "in_flight": 0,
        "unpublished": 0,
        "gaps": 9,
    }
    found = paywall_cli(cli_env, "events", "completeness", "--day", cli_day.isoformat())
    assert found.returncode == 1, found.stderr
    assert sorted(found.stdout.count(i) for i in cli_ids) == [1] * 9
    repaired = paywall_cli(cli_env, "events", "completeness", "--day", str(cli_day), "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "requeued 9 event(s)" in repaired.stdout
    assert completeness.repair(db, report) == dict.fromkeys(EVENTS, 0)  # nothing twice

    passed, metadata = materialize_completeness(settings, dagster_day)
    assert not passed
    assert (metadata["published"], metadata["gaps"], metadata["requeued"]) == (9, 9, 9)
    assert all(i in metadata["missing"] for i in dagster_ids)

    relay = paywall_process("relay")
    settle(db, cli_ids + dagster_ids, relay, audit_consumer)
    assert audited(db, cli_ids + dagster_ids) == (18, 18)
    assert audit.verify(db).ok
    now = settings.model_copy(update={"events_grace_seconds": 0})
    passed, metadata = materialize_completeness(now, dagster_day)
    assert passed
    assert (metadata["published"], metadata["audited"], metadata["gaps"]) == (9, 9, 0)
    judged_now = {**cli_env, "EVENTS_GRACE_SECONDS": "0"}
    again = paywall_cli(judged_now, "events", "completeness", "--day", str(cli_day))
    assert again.returncode == 0, again.stdout
    assert "no gaps" in again.stdout
