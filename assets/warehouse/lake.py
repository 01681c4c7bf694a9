"""What the lake holds: partitions listed from S3, and one partition read as Arrow.

Layout (streaming.lake.layout): events/<event_type>/event_date=YYYY-MM-DD/part-*.parquet.
The Spark file sink's Hive-style layout (`LAKE_SINK=parquet`) is not read here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from paywall.clients import s3_client
from paywall.settings import Settings
from streaming.lake.config import lake_filesystem
from streaming.lake.layout import EVENT_SCHEMA, EVENTS_PREFIX

_KEY = re.compile(
    rf"^{EVENTS_PREFIX}/(?P<type>[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*)/"
    r"event_date=(?P<date>\d{4}-\d{2}-\d{2})/(?P<file>[^/]+\.parquet)$"
)
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$")


class LakePartition(NamedTuple):
    """One (event_type, event_date) folder of the lake; the unit of loading."""

    event_type: str
    event_date: dt.date

    @property
    def prefix(self) -> str:
        return f"{EVENTS_PREFIX}/{self.event_type}/event_date={self.event_date.isoformat()}/"

    @classmethod
    def of(cls, event_type: str, event_date: dt.date | str) -> LakePartition:
        if not EVENT_TYPE.match(event_type):
            raise ValueError(f"not an event type: {event_type!r}")
        day = event_date if isinstance(event_date, dt.date) else dt.date.fromisoformat(event_date)
        return cls(event_type, day)


@dataclass(frozen=True)
class LakeFile:
    key: str
    size: int
    last_modified: dt.datetime


@dataclass(frozen=True)
class PartitionStats:
    """What a load saw of a partition; a differing listing means the partition changed."""

    files: int
    bytes: int
    last_modified: dt.datetime | None

    @classmethod
    def of(cls, files: list[LakeFile]) -> PartitionStats:
        return cls(
            len(files),
            sum(f.size for f in files),
            max((f.last_modified for f in files), default=None),
        )


def list_lake_files(settings: Settings, prefix: str = f"{EVENTS_PREFIX}/") -> list[LakeFile]:
    client = s3_client(settings)
    out: list[LakeFile] = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=settings.lake_bucket, Prefix=prefix
    )
    for page in pages:
        for obj in page.get("Contents", []):
            if _KEY.match(obj["Key"]):
                modified: dt.datetime = obj["LastModified"]
                out.append(LakeFile(obj["Key"], int(obj["Size"]), modified.astimezone(dt.UTC)))
    return sorted(out, key=lambda f: f.key)


def lake_partition_stats(settings: Settings) -> dict[LakePartition, PartitionStats]:
    """Every partition in the lake with its file count, size and newest write."""
    grouped: dict[LakePartition, list[LakeFile]] = {}
    for f in list_lake_files(settings):
        m = _KEY.match(f.key)
        assert m is not None
        part = LakePartition(m["type"], dt.date.fromisoformat(m["date"]))
        grouped.setdefault(part, []).append(f)
    return {p: PartitionStats.of(files) for p, files in sorted(grouped.items())}


def list_lake_partitions(settings: Settings) -> list[LakePartition]:
    """(event_type, event_date) of every partition with at least one Parquet file, sorted."""
    return list(lake_partition_stats(settings))


def partition_files(settings: Settings, partition: LakePartition) -> list[LakeFile]:
    return list_lake_files(settings, partition.prefix)


def read_files(settings: Settings, files: list[LakeFile]) -> pa.Table:
    """The listed files as one table with exactly the lake's columns and types."""
    s3 = lake_filesystem(settings)
    tables = [
        pq.read_table(f"{settings.lake_bucket}/{f.key}", filesystem=s3, partitioning=None)
        .select(EVENT_SCHEMA.names)
        .cast(EVENT_SCHEMA)
        for f in files
    ]
    return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()
