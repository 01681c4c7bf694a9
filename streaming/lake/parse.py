"""Kafka records → lake rows: `parse_events` is the job's one transformation.

Input has the native Kafka source's columns (key, value, topic, partition, offset,
timestamp, timestampType) whichever source produced them. Output has the lake columns
(`layout.EVENT_SCHEMA`) plus `event_date` and, for rows the lake cannot file,
`reject_reason` and `raw_value`; good rows have both null.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from streaming.lake.config import pii_salt
from streaming.lake.envelope import parse_message

KAFKA_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
    ]
)

PARSED_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("event_type", StringType()),
        StructField("schema_version", IntegerType()),
        StructField("occurred_at_us", LongType()),
        StructField("producer", StringType()),
        StructField("key", StringType()),
        StructField("data", StringType()),
        StructField("reject_reason", StringType()),
        StructField("raw_value", StringType()),
    ]
)

_MICROS_PER_DAY = 86_400 * 1_000_000


def parse_events(df: DataFrame, salt: str | None = None) -> DataFrame:
    """Parse envelopes, hash personal fields in `data`, mark malformed rows as rejects."""
    parsed = _parse_udf(salt if salt is not None else pii_salt())(F.col("value")).alias("p")
    rows = df.select("topic", "partition", "offset", "key", parsed)
    micros = F.col("p.occurred_at_us")
    return rows.select(
        F.col("p.event_id").alias("event_id"),
        F.col("p.event_type").alias("event_type"),
        F.col("p.schema_version").alias("schema_version"),
        F.timestamp_micros(micros).alias("occurred_at"),
        F.col("p.producer").alias("producer"),
        # The envelope's key is the aggregate id; a reject keeps the Kafka key instead.
        F.coalesce(F.col("p.key"), F.col("key").cast("string")).alias("key"),
        F.col("topic"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.col("p.data").alias("data"),
        # Batch time in a stream, so a replayed batch's rows differ only in this column.
        F.current_timestamp().alias("ingested_at"),
        # Day count from epoch micros: the UTC date whatever the session time zone.
        F.date_from_unix_date(F.floor(micros / _MICROS_PER_DAY).cast("int")).alias("event_date"),
        F.col("p.reject_reason").alias("reject_reason"),
        F.col("p.raw_value").alias("raw_value"),
    )


def accepted(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNull())


def rejected(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNotNull())


def _parse_udf(salt: str) -> Any:
    arrow_type = pa.struct(
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

    # An Arrow UDF: one Python pass per batch of values, no pandas in between.
    @F.arrow_udf(PARSED_SCHEMA)  # type: ignore[call-overload,misc]
    def parse(values: pa.Array) -> pa.Array:
        return pa.array([parse_message(v, salt) for v in values.to_pylist()], type=arrow_type)

    return parse


def lake_columns() -> list[Column]:
    from streaming.lake.layout import EVENT_SCHEMA

    return [F.col(name) for name in EVENT_SCHEMA.names]
