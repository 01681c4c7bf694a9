"""lake_rows and the sink's split on Arrow batches, without Spark: what each Python lake
task does with the records it is given."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from streaming.lake.layout import EVENT_SCHEMA
from streaming.lake.parse import KAFKA_ARROW, LAKE_ROWS, lake_rows
from streaming.lake.pii import hash_value
from streaming.lake.sink import by_type_and_day

SALT = "unit-salt"
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def envelope(event_type: str, occurred_at: str, key: str = "cus_1") -> bytes:
    return json.dumps(
        {
            "event_id": f"evt-{event_type}-{occurred_at}",
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": occurred_at,
            "producer": "test",
            "key": key,
            "data": {"email": "Ann@Example.com", "plan": "pro"},
        }
    ).encode()


def records(values: list[bytes | None], keys: list[bytes | None] | None = None) -> pa.RecordBatch:
    n = len(values)
    return pa.RecordBatch.from_pydict(
        {
            "key": keys or [b"kafka-key"] * n,
            "value": values,
            "topic": ["paywall.customer"] * n,
            "partition": [0] * n,
            "offset": list(range(100, 100 + n)),
            "timestamp": [None] * n,
            "timestampType": [0] * n,
        },
        schema=KAFKA_ARROW,
    )


def test_rows_have_the_lake_schema_hashed_data_and_the_batch_time() -> None:
    out = lake_rows(
        records([envelope("customer.created", "2024-05-01T23:30:00.5+00:00")]), SALT, NOW
    )
    assert out.schema == LAKE_ROWS and out.schema.names[: len(EVENT_SCHEMA)] == EVENT_SCHEMA.names
    [row] = out.to_pylist()
    assert row["key"] == "cus_1" and row["offset"] == 100 and row["ingested_at"] == NOW
    assert row["occurred_at"] == dt.datetime(2024, 5, 1, 23, 30, 0, 500000, tzinfo=dt.UTC)
    assert row["event_date"] == dt.date(2024, 5, 1)  # the UTC day
    assert json.loads(row["data"]) == {"email": hash_value("ann@example.com", SALT), "plan": "pro"}
    assert row["reject_reason"] is None and row["raw_value"] is None


def test_a_reject_keeps_the_kafka_key_even_when_it_is_not_utf8() -> None:
    out = lake_rows(records([b"{oops", None], keys=[b"\xffbad", None]), SALT, NOW).to_pylist()
    assert out[0]["reject_reason"].startswith("malformed JSON") and out[0]["event_date"] is None
    assert out[0]["key"] == "\ufffdbad" and out[1]["key"] is None
    assert out[1]["reject_reason"] == "empty message (tombstone)"


def test_a_time_before_1970_falls_on_its_own_day() -> None:
    [row] = lake_rows(
        records([envelope("x.y", "1969-12-31T23:59:59+00:00")]), SALT, NOW
    ).to_pylist()
    assert row["event_date"] == dt.date(1969, 12, 31)


def test_split_gives_each_type_and_day_its_rows_in_kafka_order() -> None:
    values = [
        envelope("payment.succeeded", "2024-05-02T01:00:00+00:00"),
        envelope("customer.created", "2024-05-01T10:00:00+00:00"),
        envelope("payment.succeeded", "2024-05-01T09:00:00+00:00"),
        envelope("customer.created", "2024-05-01T11:00:00+00:00"),
        envelope("payment.succeeded", "2024-05-02T02:00:00+00:00"),
    ]
    table = pa.Table.from_batches([lake_rows(records(values), SALT, NOW)])
    groups = [(group, rows.column("offset").to_pylist()) for group, rows in by_type_and_day(table)]
    assert groups == [
        (("customer.created", dt.date(2024, 5, 1)), [101, 103]),
        (("payment.succeeded", dt.date(2024, 5, 1)), [102]),
        (("payment.succeeded", dt.date(2024, 5, 2)), [100, 104]),
    ]
    assert list(by_type_and_day(table.slice(0, 0))) == []
