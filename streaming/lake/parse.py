"""Kafka records → lake rows: `lake_rows` is the job's one transformation.

It works on Arrow record batches with the native Kafka source's columns (key, value,
topic, partition, offset, timestamp, timestampType), whichever source produced them, and
returns the lake columns (`layout.EVENT_SCHEMA`) plus `event_date` and, for rows the lake
cannot file, `reject_reason` and `raw_value`; good rows have both null. The Python lake
sink runs it inside its own tasks (each batch crosses from the JVM to Python once, as it
must to be written); `parse_events` runs it as a `mapInArrow` step for Spark's own sinks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from streaming.lake.envelope import FIELDS, parse_message
from streaming.lake.layout import EVENT_SCHEMA

# Kafka records as the native source's columns, as Arrow batches carry them.
KAFKA_ARROW = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("timestampType", pa.int32()),
    ]
)
KAFKA_SCHEMA = from_arrow_schema(KAFKA_ARROW)  # the same, as Spark declares it

# The columns `lake_rows` reads: the rest of a record need not cross to Python.
RECORD_COLUMNS = ("key", "value", "topic", "partition", "offset")

_PARSED = pa.struct(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.int32()),
        ("occurred_at_us", pa.int64()),
        ("producer", pa.string()),
        ("key", pa.string()),
        ("data", pa.string()),
        ("reject_reason", pa.string()),
        ("raw_value", pa.string()),
    ]
)
assert tuple(_PARSED.names) == FIELDS, "envelope.FIELDS and the parsed struct disagree"

LAKE_ROWS = pa.schema(
    [
        *EVENT_SCHEMA,
        ("event_date", pa.date32()),
        ("reject_reason", pa.string()),
        ("raw_value", pa.string()),
    ]
)
LAKE_ROWS_SPARK = from_arrow_schema(LAKE_ROWS)


def lake_rows(kafka: pa.RecordBatch, salt: str, ingested_at: dt.datetime) -> pa.RecordBatch:
    """Parse envelopes, hash personal fields in `data`, mark malformed rows as rejects.

    `ingested_at` is the batch's time, so a replayed batch's rows differ only in it.
    """
    parsed = pa.array(
        [parse_message(v, salt) for v in kafka.column("value").to_pylist()], type=_PARSED
    )
    occurred_at = parsed.field("occurred_at_us").cast(EVENT_SCHEMA.field("occurred_at").type)
    # The envelope's key is the aggregate id; a reject keeps the Kafka key instead.
    kafka_keys = pa.array(
        [
            None if k is None else k.decode("utf-8", "replace")
            for k in kafka.column("key").to_pylist()
        ],
        pa.string(),
    )
    columns = {
        "event_id": parsed.field("event_id"),
        "event_type": parsed.field("event_type"),
        "schema_version": parsed.field("schema_version"),
        "occurred_at": occurred_at,
        "producer": parsed.field("producer"),
        "key": pc.coalesce(parsed.field("key"), kafka_keys),
        "topic": kafka.column("topic").cast(pa.string()),
        "partition": kafka.column("partition").cast(pa.int32()),
        "offset": kafka.column("offset").cast(pa.int64()),
        "data": parsed.field("data"),
        "ingested_at": pa.repeat(
            pa.scalar(ingested_at, EVENT_SCHEMA.field("ingested_at").type), len(parsed)
        ),
        # Arrow floors a UTC timestamp to its day, before 1970 too, whatever the session's
        # time zone.
        "event_date": occurred_at.cast(pa.date32()),
        "reject_reason": parsed.field("reject_reason"),
        "raw_value": parsed.field("raw_value"),
    }
    return pa.RecordBatch.from_arrays([columns[name] for name in LAKE_ROWS.names], schema=LAKE_ROWS)


def parse_events(df: DataFrame, salt: str) -> DataFrame:
    """`lake_rows` over a DataFrame of Kafka records (Spark's own sinks; tests)."""

    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        now = dt.datetime.now(dt.UTC)
        for batch in batches:
            yield lake_rows(batch, salt, now)

    return df.select(*RECORD_COLUMNS).mapInArrow(parse, LAKE_ROWS_SPARK)


def accepted(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNull())


def rejected(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNotNull())


def lake_columns() -> list[Column]:
    return [F.col(name) for name in EVENT_SCHEMA.names]
