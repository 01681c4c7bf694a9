"""Lake → warehouse: load one partition idempotently, and find partitions to (re)load."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from assets.warehouse.base import LoadResult, Warehouse
from assets.warehouse.config import WarehouseConfig, warehouse_config
from assets.warehouse.duckdb_warehouse import DuckDBWarehouse
from assets.warehouse.lake import (
    LakePartition,
    PartitionStats,
    lake_partition_stats,
    partition_files,
)
from assets.warehouse.redshift import RedshiftWarehouse
from paywall.settings import Settings


def warehouse_from_config(settings: Settings, config: WarehouseConfig | None = None) -> Warehouse:
    """Redshift when REDSHIFT_DSN is set, else the local DuckDB file."""
    config = config or warehouse_config(settings)
    if config.redshift_dsn is not None:
        return RedshiftWarehouse.from_config(settings, config)
    return DuckDBWarehouse(settings, config.duckdb_path)


def load_partition(warehouse: Warehouse, event_type: str, event_date: dt.date | str) -> LoadResult:
    """Replace the rows of one (event_type, event_date) in raw.events with the lake's.

    Idempotent: delete-then-insert in one transaction, booked in raw.loaded_partitions;
    loading a partition twice leaves the same rows. A partition whose files are gone is
    emptied.
    """
    partition = LakePartition.of(event_type, event_date)
    files = partition_files(warehouse.settings, partition)
    warehouse.ensure_tables()
    return warehouse.replace_partition(partition, files)


def partitions_to_load(
    warehouse: Warehouse, lake: Mapping[LakePartition, PartitionStats] | None = None
) -> list[LakePartition]:
    """Lake partitions never loaded, or whose files changed since their last load.

    `lake` is a listing the caller already has (`lake_partition_stats`); else S3 is listed.
    """
    loaded = warehouse.loaded_partitions()
    out = []
    listing = lake if lake is not None else lake_partition_stats(warehouse.settings)
    for partition, stats in listing.items():
        seen = loaded.get(partition)
        if seen is None or seen.stats != stats:
            out.append(partition)
    return out
