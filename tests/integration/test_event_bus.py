"""Signups → outbox → relay → Kafka → notification and audit consumers, on real servers."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer
from sqlalchemy import text

from paywall.clients import kafka_config
from paywall.db import engine
from paywall.stack.local import LocalStack
from streaming import relay
from streaming.admin import sync_topics
from streaming.consumers import audit, notification
from streaming.consumers.runner import Delivery
from streaming.topics import ALL_TOPICS, DEAD_LETTER_TOPICS, EVENT_TOPICS
from tests.conftest import Api
from tests.consuming import consume_until_idle, group_from_now, lake_start
from tests.integration.test_signup import GOOD_CARD, register, signup_body

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def topics(api: Api) -> None:
    sync_topics(api.settings)
    assert sync_topics(api.settings) == []  # a second sync creates nothing


def test_topics_carry_the_durability_the_settings_ask_for(api: Api, topics: None) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(kafka_config(api.settings))
    described = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, t.name) for t in ALL_TOPICS]
    )
    metadata = admin.list_topics(timeout=10).topics
    for resource, future in described.items():
        config = future.result(10)
        assert config["min.insync.replicas"].value == str(api.settings.min_insync_replicas)
        for partition in metadata[resource.name].partitions.values():
            assert len(partition.replicas) == api.settings.replication_factor


@pytest.fixture
def signup(api: Api, issue_token: Callable[..., str], topics: None) -> Callable[[], dict]:
    token = issue_token("registrations:write", f"tenant-{uuid.uuid4().hex[:6]}")

    def one() -> dict:
        body = signup_body(api, GOOD_CARD, marketing_opt_in=True)
        resp = register(api, token, body, str(uuid.uuid4()))
        assert resp.status_code == 201, resp.text
        return {**resp.json(), "email": body["email"]}

    return one


def lake_registrations(api: Api, tmp_path: Path, start: str) -> Counter[str]:
    """Run the Spark lake job (available-now, from `start`) into a bucket of this test's own,
    then count registration.completed rows per registration id in the Parquet it wrote."""
    import pyarrow.dataset as ds

    from paywall.clients import ensure_bucket
    from streaming.lake.config import lake_filesystem
    from streaming.lake.job import run_lake_stream

    settings = api.settings.model_copy(update={"lake_bucket": f"lake-{uuid.uuid4().hex[:8]}"})
    ensure_bucket(settings, settings.lake_bucket)
    run_lake_stream(
        settings,
        available_now=True,
        checkpoint=tmp_path / "checkpoint",
        topics=[EVENT_TOPICS["registration"].name],
        starting_offsets=start,
    )
    table = ds.dataset(
        f"{settings.lake_bucket}/events/registration.completed",
        filesystem=lake_filesystem(settings),
        format="parquet",
    ).to_table()
    return Counter(json.loads(d)["registration_id"] for d in table.column("data").to_pylist())


def notifier(api: Api) -> notification.Notifier:
    return notification.Notifier(engine(api.settings), notification.Senders(api.settings))


def sent_to(api: Api, email: str) -> list[dict]:
    resp = httpx.get(f"{api.settings.sendgrid_api_host}/_sink/messages", params={"to": email})
    return list(resp.json())


def audit_rows_for(api: Api, event_type: str, key: str) -> int:
    with engine(api.settings).connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM audit.log WHERE event_type = :t AND envelope->>'key' = :k"
                ),
                {"t": event_type, "k": key},
            ).scalar_one()
        )


@pytest.fixture
def groups(api: Api, topics: None) -> dict[str, str]:
    """Groups starting where the topics end before the test publishes (and a second pair,
    from the same point, to redeliver what the first pair handled)."""
    names = ("notification", "audit", "notification-again", "audit-again")
    return {n: group_from_now(api.settings, n) for n in names}


def test_signups_reach_email_sms_audit_and_lake_exactly_once(
    api: Api, signup: Callable[[], dict], groups: dict[str, str], tmp_path: Path
) -> None:
    start = lake_start(api.settings, [EVENT_TOPICS["registration"].name])
    made = [signup() for _ in range(3)]
    db = engine(api.settings)
    assert relay.drain(db, relay.make_producer(api.settings)) > 0
    assert relay.measure_lag(db) == dict.fromkeys(EVENT_TOPICS, 0)

    consume_until_idle(api.settings, "notification", notifier(api), groups["notification"])
    consume_until_idle(api.settings, "audit", audit.handler(db, api.settings), groups["audit"])
    for reg in made:
        subjects = sorted(m["subject"] for m in sent_to(api, reg["email"]))
        assert subjects == ["Welcome to Paywall, Ada Lovelace", "Your Paywall receipt"]
        assert audit_rows_for(api, "registration.completed", reg["registration_id"]) == 1
    assert audit.verify(db).ok
    lake = lake_registrations(api, tmp_path, start)
    assert [lake[reg["registration_id"]] for reg in made] == [1, 1, 1]

    # A redelivery (a second group re-reading everything) sends and appends nothing new.
    consume_until_idle(api.settings, "notification", notifier(api), groups["notification-again"])
    consume_until_idle(
        api.settings, "audit", audit.handler(db, api.settings), groups["audit-again"]
    )
    for reg in made:
        assert len(sent_to(api, reg["email"])) == 2
        assert audit_rows_for(api, "registration.completed", reg["registration_id"]) == 1


def test_broker_down_during_signups_loses_and_doubles_nothing(
    api: Api,
    local_stack: LocalStack,
    signup: Callable[[], dict],
    groups: dict[str, str],
    tmp_path: Path,
) -> None:
    db = engine(api.settings)
    producer = relay.make_producer(api.settings)
    relay.drain(db, producer)  # start from an empty outbox
    start = lake_start(api.settings, [EVENT_TOPICS["registration"].name])
    local_stack.stop("kafka")
    try:
        made = [signup() for _ in range(3)]  # the API does not need the broker
        with pytest.raises(relay.BrokerUnavailable):
            relay.publish_batch(db, relay.make_producer(api.settings), "registration")
        assert relay.measure_lag(db)["registration"] >= 3  # nothing lost: rows wait
    finally:
        local_stack.start("kafka")
    assert relay.drain(db, relay.make_producer(api.settings)) >= 3 * 4
    consume_until_idle(api.settings, "notification", notifier(api), groups["notification"])
    consume_until_idle(api.settings, "audit", audit.handler(db, api.settings), groups["audit"])
    for reg in made:
        assert [m["subject"] for m in sent_to(api, reg["email"])].count(
            "Welcome to Paywall, Ada Lovelace"
        ) == 1
        assert audit_rows_for(api, "registration.completed", reg["registration_id"]) == 1
    assert audit.verify(db).ok
    lake = lake_registrations(api, tmp_path, start)
    # The lake job started where the topic ended after the first drain: these three only.
    assert lake == Counter(reg["registration_id"] for reg in made)


def test_an_older_event_resent_late_does_not_overwrite_newer_contact_details(
    api: Api,
) -> None:
    """A repair resends a lost customer.created after the customer.updated that followed it."""
    customer_id = f"cus-{uuid.uuid4().hex[:8]}"
    notify = notifier(api)

    def deliver(event_type: str, email: str, occurred_at: str) -> None:
        data = {
            "customer_id": customer_id,
            "tenant_id": None,
            "email": email,
            "name": "Ada",
            "phone": None,
            "marketing_opt_in": False,
            "status": "active",
        }
        envelope = {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": occurred_at,
            "producer": "customer-service",
            "key": customer_id,
            "data": data,
        }
        notify(Delivery(envelope, EVENT_TOPICS["customer"].name, 0, 0))

    def email() -> str:
        with engine(api.settings).connect() as conn:
            return str(
                conn.execute(
                    text("SELECT email FROM notification.recipients WHERE customer_id = :c"),
                    {"c": customer_id},
                ).scalar_one()
            )

    deliver("customer.updated", "new@example.com", "2026-06-02T10:00:00+00:00")
    deliver("customer.created", "old@example.com", "2026-06-01T10:00:00+00:00")
    assert email() == "new@example.com"
    deliver("customer.updated", "newer@example.com", "2026-06-03T10:00:00+00:00")
    assert email() == "newer@example.com"


def test_poison_message_is_dead_lettered_and_the_consumer_goes_on(
    api: Api, topics: None, groups: dict[str, str], signup: Callable[[], dict]
) -> None:
    producer = Producer(kafka_config(api.settings))
    producer.produce(EVENT_TOPICS["customer"].name, key=b"bad", value=b"{not json")
    producer.produce(
        EVENT_TOPICS["customer"].name,
        key=b"bad2",
        value=json.dumps({"event_type": "customer.created"}).encode(),
    )
    assert producer.flush(10) == 0
    reg = signup()
    relay.drain(engine(api.settings), relay.make_producer(api.settings))
    loop = consume_until_idle(api.settings, "notification", notifier(api), groups["notification"])
    assert loop.stats["dead_letter"] >= 2
    assert sent_to(api, reg["email"])  # the consumer went on past the poison

    dlq = Consumer(
        kafka_config(
            api.settings,
            **{
                "group.id": f"dlq-reader-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
            },
        )
    )
    dlq.subscribe([DEAD_LETTER_TOPICS["notification"].name])
    reasons = []
    for _ in range(40):
        msg = dlq.poll(0.5)
        if msg is not None and not msg.error():
            reasons.append(dict(msg.headers() or [])["dlq_reason"].decode())
        # Other tests park messages in this topic too: read until the poison is found.
        if any(r.startswith("poison:") for r in reasons):
            break
    dlq.close()
    assert any(r.startswith("poison:") for r in reasons)


def test_tampering_with_the_audit_log_is_detected(
    api: Api, signup: Callable[[], dict], groups: dict[str, str]
) -> None:
    db = engine(api.settings)
    signup()
    relay.drain(db, relay.make_producer(api.settings))
    consume_until_idle(api.settings, "audit", audit.handler(db, api.settings), groups["audit"])
    assert audit.verify(db).ok
    with db.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE audit.log SET event_type = 'x' WHERE seq = 1"))

    def edit(envelope: str) -> None:
        # Whoever can switch the trigger off still cannot hide an edit from the chain.
        with db.begin() as conn:
            conn.execute(text("ALTER TABLE audit.log DISABLE TRIGGER log_append_only"))
            conn.execute(
                text("UPDATE audit.log SET envelope = CAST(:e AS jsonb) WHERE seq = 2"),
                {"e": envelope},
            )
            conn.execute(text("ALTER TABLE audit.log ENABLE TRIGGER log_append_only"))

    with db.connect() as conn:
        original = conn.execute(
            text("SELECT envelope::text FROM audit.log WHERE seq = 2")
        ).scalar_one()
    tampered = json.loads(original) | {"producer": "mallory"}
    edit(json.dumps(tampered))
    try:
        assert audit.verify(db).first_broken_seq == 2
    finally:
        edit(original)
    assert audit.verify(db).ok
