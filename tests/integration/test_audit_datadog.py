"""Audit → Datadog through the real datadog-api-client, against a loopback log intake
(paywall/stack/datadog_intake.py) that fails, drops connections, times out and recovers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from paywall.db import engine
from paywall.settings import Settings
from paywall.stack import datadog_intake
from streaming import relay
from streaming.admin import sync_topics
from streaming.consumers import audit
from streaming.consumers.datadog import DatadogForwarder
from streaming.consumers.runner import ConsumerLoop, Delivery
from streaming.topics import EVENT_TOPICS
from tests.conftest import Api
from tests.consuming import group_from_now
from tests.integration.test_signup import GOOD_CARD, register, signup_body

pytestmark = pytest.mark.integration

# Each entry is what one coming request to the intake meets.
FAULTS = [
    {"status": 503},
    {"drop": True},  # the connection closes unanswered: urllib3's error, not the SDK's
    {"status": 429},
    {"delay": 1.5},  # accepted after the client gave up: this batch arrives twice
    {"status": 500},
    {"status": 408},
]


@pytest.fixture
def intake() -> Iterator[tuple[str, datadog_intake.Intake]]:
    with datadog_intake.serve() as served:
        yield served


def forwarding(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={"datadog_api_key": SecretStr("dd-test-key"), "datadog_logs_url": url}
    )


def audit_rows(settings: Settings) -> list[tuple[int, str]]:
    with engine(settings).connect() as conn:
        rows = conn.execute(text("SELECT seq, event_id FROM audit.log ORDER BY seq")).all()
    return [(r.seq, r.event_id) for r in rows]


def signups(api: Api, issue_token: Callable[..., str], count: int) -> None:
    token = issue_token("registrations:write", f"tenant-{uuid.uuid4().hex[:6]}")
    for _ in range(count):
        resp = register(api, token, signup_body(api, GOOD_CARD), str(uuid.uuid4()))
        assert resp.status_code == 201, resp.text


def test_every_audit_event_reaches_datadog_through_failures_and_timeouts(
    api: Api, issue_token: Callable[..., str], intake: tuple[str, datadog_intake.Intake]
) -> None:
    url, received = intake
    settings = forwarding(api.settings, url)
    sync_topics(settings)
    group = group_from_now(settings, "audit")
    db = engine(settings)
    # Where Datadog's cursor stands: rows up to it went to another test's intake.
    with db.connect() as conn:
        start = conn.execute(
            text("SELECT seq FROM audit.forwarded WHERE destination = 'datadog'")
        ).scalar_one()
    signups(api, issue_token, 3)
    assert relay.drain(db, relay.make_producer(settings)) > 0
    received.plan = list(FAULTS)

    forwarder = DatadogForwarder(db, settings, timeout=0.5, backoff=0.01)
    auditor = audit.AuditHandler(db, forwarder)
    loop = ConsumerLoop(
        settings,
        "audit",
        [t.name for t in EVENT_TOPICS.values()],
        auditor,
        backoff=0.01,
        group_id=group,
        on_idle=auditor.idle,
    )
    idle = 0
    try:
        for _ in range(600):
            got = loop.poll_once(0.2)
            idle = 0 if got or not loop.consumer.assignment() else idle + 1
            if idle >= 5 and not received.plan and forwarder.pending() == 0:
                break
    finally:
        loop.close()
    assert received.plan == []  # every planned fault was met, and the consumer lived on

    rows = [(seq, event_id) for seq, event_id in audit_rows(settings) if seq > start]
    assert rows and audit.verify(db).ok
    logs = received.logs
    ids = [log["event_id"] for log in logs]
    assert sorted(set(ids)) == sorted(event_id for _, event_id in rows)  # none lost
    assert len(ids) > len(set(ids))  # the timed-out batch arrived twice: dedupe by event_id
    first_seen = list(dict.fromkeys(log["seq"] for log in logs))
    assert first_seen == sorted(first_seen)  # in the log's order
    one = logs[0]
    assert one["service"] == "audit" and one["ddsource"] == "paywall"
    assert one["ddtags"].startswith("event_type:")
    assert json.loads(one["message"])["event_id"] == one["event_id"]


def test_a_redelivered_event_is_still_forwarded_when_its_first_forward_failed(
    api: Api, intake: tuple[str, datadog_intake.Intake]
) -> None:
    """The row was committed on the first delivery while Datadog failed; the redelivery
    appends nothing, and must still send it."""
    url, received = intake
    settings = forwarding(api.settings, url)
    db = engine(settings)
    auditor = audit.AuditHandler(db, DatadogForwarder(db, settings, backoff=0.0))
    auditor.idle()  # what earlier tests left pending
    event_id = str(uuid.uuid4())
    envelope = {
        "event_id": event_id,
        "event_type": "customer.updated",
        "schema_version": 1,
        "occurred_at": "2026-06-01T10:00:00+00:00",
        "producer": "customer-service",
        "key": "cus-1",
        "data": {"customer_id": "cus-1"},
    }
    delivery = Delivery(envelope, EVENT_TOPICS["customer"].name, 0, 0)
    received.plan = [{"status": 503}]
    auditor(delivery)  # appended; Datadog failed, and the delivery did not
    assert event_id not in {log["event_id"] for log in received.logs}
    auditor(delivery)  # the redelivery
    assert [log["event_id"] for log in received.logs].count(event_id) == 1
