"""parse_events on a tiny in-memory DataFrame: envelopes in, lake rows and rejects out."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from streaming.lake.envelope import parse_message
from streaming.lake.pii import hash_personal_fields, hash_value, is_personal_key, redact_text

SALT = "unit-salt"


def envelope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "evt-1",
        "event_type": "customer.created",
        "schema_version": 1,
        "occurred_at": "2024-05-01T23:30:00.123456+00:00",
        "producer": "customer-service",
        "key": "cus_1",
        "data": {
            "customer_id": "cus_1",
            "email": " Ann@Example.COM ",
            "name": "Ann",
            "phone": None,
            "plan_name": "pro",
            "contact": {"billing_email": "b@example.com", "work_phone": 5551234},
        },
    }
    return {**base, **overrides}


def test_personal_keys() -> None:
    assert all(map(is_personal_key, ["email", "Phone", "name", "billing_email", "work_phone"]))
    assert not any(map(is_personal_key, ["plan_name", "email_verified", "customer_id"]))


def test_hash_is_salted_and_normalized() -> None:
    assert hash_value(" Ann@Example.COM ", SALT) == hash_value("ann@example.com", SALT)
    assert hash_value("ann@example.com", SALT) != hash_value("ann@example.com", "other")
    assert hash_value("x", SALT).startswith("sha256:") and len(hash_value("x", SALT)) == 71


def test_hashing_reaches_nested_fields_and_keeps_nulls() -> None:
    out = hash_personal_fields(envelope()["data"], SALT)
    assert out["email"] == hash_value("ann@example.com", SALT)
    assert out["phone"] is None and out["plan_name"] == "pro"
    assert out["contact"]["billing_email"] == hash_value("b@example.com", SALT)
    assert out["contact"]["work_phone"] == hash_value("5551234", SALT)


def test_redaction_of_unparseable_text() -> None:
    assert redact_text('{"email": "a.b@c.io", "phone": "+1 (555) 123-4567"') == (
        '{"email": "<redacted>", "phone": "<redacted>"'
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty message"),
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps(envelope(event_id="")).encode(), "missing event_id"),
        (json.dumps(envelope(event_type="../etc")).encode(), "unsafe event_type"),
        (json.dumps(envelope(schema_version="1")).encode(), "schema_version"),
        (json.dumps(envelope(occurred_at="yesterday")).encode(), "occurred_at"),
        (json.dumps(envelope(data="text")).encode(), "data is not"),
    ],
)
def test_rejects_say_why(value: bytes | None, reason: str) -> None:
    row = parse_message(value, SALT)
    assert row["event_id"] is None
    assert reason in row["reject_reason"]


def test_reject_keeps_no_clear_email() -> None:
    bad = json.dumps(envelope(occurred_at="nope")).encode()
    row = parse_message(bad, SALT)
    assert "Example.COM" not in row["raw_value"]
    assert hash_value("ann@example.com", SALT) in row["raw_value"]


def test_numbers_and_text_in_data_survive_exactly() -> None:
    data = {
        "amount": 2**70 + 1,  # past 64 bits: a float would lose the 1
        "small": -(2**63),
        "ratio": 0.1,
        "note": "Grüße, 東京",
        "email": "Ann@Example.com",
    }
    row = parse_message(json.dumps(envelope(data=data)).encode(), SALT)
    assert row["reject_reason"] is None
    assert json.loads(row["data"]) == {**data, "email": hash_value("ann@example.com", SALT)}
    assert "Grüße, 東京" in row["data"]  # stored as text, not as \u escapes


# --- parse_events on Spark --------------------------------------------------------------


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from streaming.lake.job import lake_spark_session

    session = lake_spark_session()
    yield session
    session.stop()


def test_workers_import_the_installed_pyspark_not_the_source_zip(spark: Any) -> None:
    # Spark's pyspark.zip holds no bytecode: a worker importing pyspark from it compiles
    # pyspark again, ~0.6 s of CPU a process (spark_python.sh).
    import pyspark

    def where(_: Any) -> tuple[str, list[str]]:
        import sys

        import pyspark

        return pyspark.__file__ or "", list(sys.path)

    [(worker_pyspark, worker_path)] = spark.sparkContext.parallelize([0], 1).map(where).collect()
    assert worker_pyspark == pyspark.__file__
    assert not [p for p in worker_path if p.endswith(".zip") and "pyspark" in p]


def kafka_row(value: bytes | None, partition: int = 0, offset: int = 0) -> tuple[Any, ...]:
    return (b"kafka-key", value, "paywall.customer", partition, offset, None, 0)


def test_parse_events_splits_good_rows_from_rejects(spark: Any) -> None:
    from streaming.lake.parse import KAFKA_SCHEMA, accepted, parse_events, rejected

    df = spark.createDataFrame(
        [
            kafka_row(json.dumps(envelope()).encode(), 0, 5),
            kafka_row(b'{"email": "x@y.io", oops', 1, 7),
        ],
        KAFKA_SCHEMA,
    )
    parsed = parse_events(df, salt=SALT)
    good = accepted(parsed).collect()
    bad = rejected(parsed).collect()

    assert len(good) == 1 and len(bad) == 1
    row = good[0]
    assert (row.event_id, row.event_type, row.schema_version) == ("evt-1", "customer.created", 1)
    assert (row.topic, row.partition, row.offset, row.key) == ("paywall.customer", 0, 5, "cus_1")
    # 23:30 UTC on 1 May stays on 1 May whatever the zone; microseconds survive.
    assert row.occurred_at == dt.datetime(2024, 5, 1, 23, 30, 0, 123456)
    assert row.event_date == dt.date(2024, 5, 1)
    data = json.loads(row.data)
    assert data["email"] == hash_value("ann@example.com", SALT)
    assert data["name"] == hash_value("ann", SALT)
    assert "Example" not in row.data and data["plan_name"] == "pro"
    assert row.reject_reason is None and row.ingested_at is not None

    reject = bad[0]
    assert reject.reject_reason.startswith("malformed JSON")
    assert (reject.partition, reject.offset, reject.key) == (1, 7, "kafka-key")
    assert "x@y.io" not in reject.raw_value and reject.event_date is None


def test_parse_events_schema_matches_the_lake_layout(spark: Any) -> None:
    from streaming.lake.layout import EVENT_SCHEMA
    from streaming.lake.parse import KAFKA_SCHEMA, parse_events

    parsed = parse_events(spark.createDataFrame([], KAFKA_SCHEMA), salt=SALT)
    assert parsed.columns == [*EVENT_SCHEMA.names, "event_date", "reject_reason", "raw_value"]
    types = dict(parsed.dtypes)
    assert types["occurred_at"] == "timestamp" and types["schema_version"] == "int"
    assert types["offset"] == "bigint" and types["partition"] == "int"
