"""Lake → warehouse loads, free of Dagster (assets wrap these functions).

list_lake_partitions(settings)           what the lake holds, from an S3 listing
partitions_to_load(warehouse)            new or changed since raw.loaded_partitions
load_partition(warehouse, type, date)    idempotent replace of one partition in raw.events
warehouse_from_config(settings)          Redshift if REDSHIFT_DSN is set, else DuckDB
"""

from assets.warehouse.base import LoadedPartition, LoadResult, Warehouse
from assets.warehouse.config import WarehouseConfig, warehouse_config
from assets.warehouse.duckdb_warehouse import DuckDBWarehouse
from assets.warehouse.lake import (
    LakeFile,
    LakePartition,
    PartitionStats,
    lake_partition_stats,
    list_lake_partitions,
)
from assets.warehouse.loader import load_partition, partitions_to_load, warehouse_from_config
from assets.warehouse.redshift import RedshiftWarehouse, redshift_ddl, redshift_load_sql

__all__ = [
    "DuckDBWarehouse",
    "LakeFile",
    "LakePartition",
    "LoadResult",
    "LoadedPartition",
    "PartitionStats",
    "RedshiftWarehouse",
    "Warehouse",
    "WarehouseConfig",
    "lake_partition_stats",
    "list_lake_partitions",
    "load_partition",
    "partitions_to_load",
    "redshift_ddl",
    "redshift_load_sql",
    "warehouse_config",
    "warehouse_from_config",
]
