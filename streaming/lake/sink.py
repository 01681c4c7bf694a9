"""The lake sink: a Python streaming writer that parses Kafka records into lake rows
(`parse.lake_rows`, in its own tasks: the records cross from the JVM to Python once) and
writes them as Parquet to S3 with pyarrow.

Exactly once = Spark's checkpointed offsets + names that depend only on (query, batch,
task): a batch replayed after a crash rewrites the same objects. Each task writes its files,
the driver writes the batch manifest last; the manifest is what marks a batch complete
(readers that list `events/` directly may see a replayed batch's files being rewritten).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs
from pyspark.sql.datasource import DataSource, DataSourceStreamArrowWriter, WriterCommitMessage
from pyspark.sql.types import StructType

from streaming.lake import layout
from streaming.lake.bucket import s3_filesystem
from streaming.lake.parse import lake_rows

SINK_NAME = "paywall_lake"
# Spark sets these local properties on every task of a micro-batch; the query id is the
# one kept in the checkpoint, the same across restarts.
_BATCH_ID_PROPERTY = "streaming.sql.batchId"
_QUERY_ID_PROPERTY = "sql.streaming.queryId"
# The PII hashing salt; Spark redacts option values whose key matches "secret" in plans
# and logs.
PII_SALT_OPTION = "pii_salt_secret"
_KAFKA_ORDER = [("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")]


@dataclass
class TaskFiles(WriterCommitMessage):
    partition: int
    query_id: str
    files: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    offsets: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


class LakeSink(DataSource):
    """Takes Kafka records (the columns `parse.RECORD_COLUMNS`, or all of `KAFKA_SCHEMA`).
    Options: bucket, pii_salt_secret, s3_endpoint_url, aws_region, aws_access_key_id,
    aws_secret_access_key."""

    @classmethod
    def name(cls) -> str:
        return SINK_NAME

    def streamWriter(self, schema: StructType, overwrite: bool) -> LakeWriter:
        return LakeWriter(dict(self.options))


class LakeWriter(DataSourceStreamArrowWriter):
    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self.bucket = options["bucket"]

    def write(self, iterator: Iterator[pa.RecordBatch]) -> TaskFiles:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        assert ctx is not None, "the lake writer runs in a Spark task"
        batch_id = int(ctx.getLocalProperty(_BATCH_ID_PROPERTY) or -1)
        if batch_id < 0:
            raise RuntimeError(f"{_BATCH_ID_PROPERTY} unset: the lake sink needs a stream")
        query_id = ctx.getLocalProperty(_QUERY_ID_PROPERTY)
        if not query_id:
            raise RuntimeError(f"{_QUERY_ID_PROPERTY} unset: the lake sink needs a stream")
        partition = ctx.partitionId()
        out = TaskFiles(partition, query_id)
        now = dt.datetime.now(dt.UTC)
        salt = self.options[PII_SALT_OPTION]
        batches = [lake_rows(records, salt, now) for records in iterator]
        table = pa.Table.from_batches(batches) if batches else None
        if table is None or table.num_rows == 0:
            return out
        s3 = s3_filesystem(self.options)
        out.offsets = _offset_ranges(table)
        rejected = pc.is_valid(table["reject_reason"])
        if pc.any(rejected).as_py():
            good, bad = table.filter(pc.invert(rejected)), table.filter(rejected)
        else:  # the usual batch: no copies
            good, bad = table, table.slice(0, 0)
        for (event_type, event_date), rows in by_type_and_day(good):
            key = layout.event_file_key(event_type, event_date, query_id, batch_id, partition)
            _write(
                s3, self.bucket, key, rows.select(layout.EVENT_SCHEMA.names), layout.EVENT_SCHEMA
            )
            out.files.append(
                {
                    "path": key,
                    "event_type": event_type,
                    "event_date": event_date.isoformat(),
                    "rows": rows.num_rows,
                }
            )
        if bad.num_rows:
            key = layout.reject_file_key(query_id, batch_id, partition)
            _write(
                s3,
                self.bucket,
                key,
                bad.sort_by(_KAFKA_ORDER).select(layout.REJECT_SCHEMA.names),
                layout.REJECT_SCHEMA,
            )
            out.rejects.append({"path": key, "rows": bad.num_rows})
        return out

    def commit(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        tasks = [m for m in messages if isinstance(m, TaskFiles)]
        if not any(t.files or t.rejects for t in tasks):
            return  # nothing new: no manifest, so batch ids in _manifests may have gaps
        manifest = build_manifest(self.bucket, batchId, tasks)
        body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
        s3 = s3_filesystem(self.options)
        key = layout.manifest_key(manifest["query_id"], batchId)
        with s3.open_output_stream(f"{self.bucket}/{key}") as out:
            out.write(body)

    def abort(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        # Nothing to undo: the retried batch rewrites the same names, and without a
        # manifest the half-written batch is not visible to manifest readers.
        return None


def build_manifest(bucket: str, batch_id: int, tasks: list[TaskFiles]) -> dict[str, Any]:
    [query_id] = {t.query_id for t in tasks}  # one query's tasks
    files = sorted((f for t in tasks for f in t.files), key=lambda f: f["path"])
    rejects = sorted((f for t in tasks for f in t.rejects), key=lambda f: f["path"])
    offsets: dict[str, dict[str, dict[str, int]]] = {}
    for task in tasks:
        for topic, parts in task.offsets.items():
            for part, span in parts.items():
                have = offsets.setdefault(topic, {}).get(part)
                offsets[topic][part] = (
                    span
                    if have is None
                    else {
                        "first": min(have["first"], span["first"]),
                        "last": max(have["last"], span["last"]),
                        "rows": have["rows"] + span["rows"],
                    }
                )
    return {
        "manifest_version": layout.MANIFEST_VERSION,
        "query_id": query_id,
        "batch_id": batch_id,
        "bucket": bucket,
        "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "rows": sum(f["rows"] for f in files),
        "rejected_rows": sum(f["rows"] for f in rejects),
        "files": [{**f, "url": f"s3://{bucket}/{f['path']}"} for f in files],
        "rejects": [{**f, "url": f"s3://{bucket}/{f['path']}"} for f in rejects],
        "offsets": offsets,
    }


def _write(s3: fs.S3FileSystem, bucket: str, key: str, rows: pa.Table, schema: pa.Schema) -> int:
    """One PUT of the whole file (an object appears complete or not at all); returns bytes.

    `rows` come in Kafka order, so a rewrite is the same file but for ingested_at."""
    buffer = pa.BufferOutputStream()
    pq.write_table(rows.cast(schema), buffer, compression="zstd")
    body = buffer.getvalue()
    with s3.open_output_stream(f"{bucket}/{key}") as out:
        out.write(body)
    return body.size


def by_type_and_day(table: pa.Table) -> Iterator[tuple[tuple[str, dt.date], pa.Table]]:
    """The rows of each event type and day, in Kafka order: one sort, then zero-copy slices."""
    if table.num_rows == 0:
        return
    keys = [("event_type", "ascending"), ("event_date", "ascending"), *_KAFKA_ORDER]
    table = table.sort_by(keys)
    # group_by lists groups in order of first appearance, which in a sorted table is the
    # sort order: each group is the next `count` rows.
    groups = table.group_by(["event_type", "event_date"], use_threads=False).aggregate(
        [("offset", "count")]
    )
    start = 0
    for event_type, event_date, count in zip(
        groups["event_type"].to_pylist(),
        groups["event_date"].to_pylist(),
        groups["offset_count"].to_pylist(),
        strict=True,
    ):
        yield (event_type, event_date), table.slice(start, count)
        start += count


def _offset_ranges(table: pa.Table) -> dict[str, dict[str, dict[str, int]]]:
    spans = table.group_by(["topic", "partition"]).aggregate(
        [("offset", "min"), ("offset", "max"), ("offset", "count")]
    )
    out: dict[str, dict[str, dict[str, int]]] = {}
    for row in spans.to_pylist():
        out.setdefault(row["topic"], {})[str(row["partition"])] = {
            "first": row["offset_min"],
            "last": row["offset_max"],
            "rows": row["offset_count"],
        }
    return out
