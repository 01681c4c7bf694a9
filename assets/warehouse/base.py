"""The loader's one interface: any warehouse that can replace a lake partition in raw.events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from assets.warehouse.lake import LakeFile, LakePartition, PartitionStats
from paywall.settings import Settings
from streaming.lake.layout import EVENT_SCHEMA

RAW_SCHEMA = "raw"
EVENTS_TABLE = "events"
LOADED_TABLE = "loaded_partitions"
LAKE_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)


@dataclass(frozen=True)
class LoadResult:
    event_type: str
    event_date: dt.date
    rows: int
    files: int
    bytes: int
    loaded_at: dt.datetime


@dataclass(frozen=True)
class LoadedPartition:
    """A row of raw.loaded_partitions: what the last load of a partition saw in the lake."""

    rows: int
    stats: PartitionStats
    loaded_at: dt.datetime


class Warehouse(Protocol):
    settings: Settings

    def ensure_tables(self) -> None:
        """Create raw.events and raw.loaded_partitions if missing."""

    def replace_partition(self, partition: LakePartition, files: list[LakeFile]) -> LoadResult:
        """In one transaction: drop the partition's rows, insert the files' rows, book it."""
        ...

    def loaded_partitions(self) -> dict[LakePartition, LoadedPartition]:
        """Everything in raw.loaded_partitions."""
        ...


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC day the lake files a partition under (event_date is occurred_at's UTC date)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)
