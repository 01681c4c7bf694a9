"""Where the lake job puts things in the lake bucket; other work reads these names.

    events/<event_type>/event_date=YYYY-MM-DD/part-<batch>-<partition>-<query>.parquet
    _rejects/events/query=<query>/batch=<batch>/part-<partition>.parquet
    _manifests/events/query=<query>/batch=<batch>.json  (written last: the batch is complete)

<batch> is the streaming batch id, <partition> the Spark task's partition (a Kafka offset
range) and <query> the streaming query's id, which is kept in its checkpoint: a replayed
batch rewrites the same names, and a query started on a new checkpoint (whose batch ids
start at 0 again) cannot overwrite what an earlier one wrote.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

EVENTS_PREFIX = "events"
REJECTS_PREFIX = "_rejects/events"
MANIFESTS_PREFIX = "_manifests/events"
MANIFEST_VERSION = 2  # 2: names and manifests carry the query id

_UTC_MICROS = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.int32()),
        ("occurred_at", _UTC_MICROS),
        ("producer", pa.string()),
        ("key", pa.string()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("data", pa.string()),
        ("ingested_at", _UTC_MICROS),
    ]
)

REJECT_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("key", pa.string()),
        ("reject_reason", pa.string()),
        ("raw_value", pa.string()),  # personal fields hashed or redacted, never clear
        ("ingested_at", _UTC_MICROS),
    ]
)


def event_file_key(
    event_type: str, event_date: dt.date, query_id: str, batch_id: int, partition: int
) -> str:
    return (
        f"{EVENTS_PREFIX}/{event_type}/event_date={event_date.isoformat()}/"
        f"part-{batch_id}-{partition}-{query_id}.parquet"
    )


def reject_file_key(query_id: str, batch_id: int, partition: int) -> str:
    return f"{REJECTS_PREFIX}/query={query_id}/batch={batch_id}/part-{partition}.parquet"


def manifest_key(query_id: str, batch_id: int) -> str:
    return f"{MANIFESTS_PREFIX}/query={query_id}/batch={batch_id}.json"
