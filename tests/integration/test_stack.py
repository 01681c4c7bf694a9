"""Each real server of the local stack, reached over loopback the way the code reaches it."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from sendgrid.helpers.mail import Mail

from paywall import clients
from paywall.settings import Settings
from paywall.stack.local import LocalStack

pytestmark = pytest.mark.integration


def test_postgres_round_trip(settings: Settings) -> None:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO t VALUES (1, 'hello')")
        assert conn.execute("SELECT note FROM t WHERE id = 1").fetchone() == ("hello",)


def test_migrations_create_one_schema_per_service(settings: Settings) -> None:
    from paywall import db

    db.upgrade(settings)  # a second run is a no-op
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        ).fetchall()
    assert {r[0] for r in rows} == set(db.SERVICE_SCHEMAS)
    assert db.current_revision(settings) is not None


def test_redis_set_get(settings: Settings) -> None:
    import redis

    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url)
    key = f"test:{uuid.uuid4()}"
    client.set(key, "value", ex=60)
    assert client.get(key) == b"value"


def test_s3_put_get(settings: Settings) -> None:
    clients.ensure_bucket(settings, "test-bucket")
    s3 = clients.s3_client(settings)
    s3.put_object(Bucket="test-bucket", Key="a/b.txt", Body=b"payload")
    assert s3.get_object(Bucket="test-bucket", Key="a/b.txt")["Body"].read() == b"payload"


def test_stripe_customer_through_the_stripe_library(settings: Settings) -> None:
    stripe = clients.stripe_client(settings)
    created = stripe.v1.customers.create(params={"email": "ada@example.com"})
    assert created.id.startswith("cus_")
    assert stripe.v1.customers.retrieve(created.id).email == "ada@example.com"


def test_email_through_sendgrid_sdk_lands_in_sink(settings: Settings) -> None:
    import httpx

    to = f"{uuid.uuid4().hex[:8]}@example.com"
    mail = Mail("billing@paywall.test", to, "Welcome", plain_text_content="Hello!")
    response = clients.sendgrid_client(settings).send(mail)
    assert response.status_code == 202
    sent = httpx.get(f"{settings.sendgrid_api_host}/_sink/messages", params={"to": to}).json()
    assert [m["subject"] for m in sent] == ["Welcome"]


def test_sms_through_twilio_sdk_lands_in_sink(settings: Settings) -> None:
    import httpx

    message = clients.twilio_client(settings).messages.create(
        to="+15005550006", from_="+15005550001", body="code 1234"
    )
    assert message.sid.startswith("SM")
    sent = httpx.get(f"{settings.twilio_api_base}/_sink/messages", params={"provider": "twilio"})
    assert message.sid in {m.get("sid") or m.get("message_id") for m in sent.json()}


def _topic(settings: Settings, partitions: int = 2) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(clients.kafka_config(settings))
    for fut in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        fut.result(10)
    return name


def _produce(settings: Settings, topic: str, values: list[str]) -> None:
    producer = Producer(clients.kafka_config(settings, **{"enable.idempotence": True}))
    for v in values:
        producer.produce(topic, key=v, value=v)
    assert producer.flush(15) == 0


def _consume(settings: Settings, topic: str, group: str, expected: int) -> list[str]:
    consumer = Consumer(
        clients.kafka_config(
            settings,
            **{
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
            },
        )
    )
    consumer.subscribe([topic])
    got: list[str] = []
    deadline = time.monotonic() + 45
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got.append(msg.value().decode())
            consumer.commit(msg, asynchronous=False)
    finally:
        consumer.close()
    return got


def test_kafka_produce_and_consume_in_a_group(settings: Settings) -> None:
    topic = _topic(settings)
    values = [f"m{i}" for i in range(20)]
    _produce(settings, topic, values)
    assert sorted(_consume(settings, topic, f"g-{topic}", len(values))) == sorted(values)


def test_broker_restart_loses_no_committed_message(
    settings: Settings, local_stack: LocalStack
) -> None:
    topic = _topic(settings)
    before = [f"before-{i}" for i in range(10)]
    _produce(settings, topic, before)
    group = f"g-{topic}"
    first = _consume(settings, topic, group, 4)

    old = local_stack.status()
    local_stack.restart("kafka")
    assert [p.pid for p in local_stack.status() if p.name == "kafka"] != [
        p.pid for p in old if p.name == "kafka"
    ]

    after = [f"after-{i}" for i in range(10)]
    _produce(settings, topic, after)
    # The group resumes at its committed offsets: every message once, none lost.
    rest = _consume(settings, topic, group, len(before) + len(after) - len(first))
    assert sorted(first + rest) == sorted(before + after)
