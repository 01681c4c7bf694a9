"""Lake → warehouse as a Dagster asset: `raw_events`, one dynamic partition per lake
(event_type, event_date) folder, validated and then loaded by `load_partition`. The dbt
models downstream of it are in dbt.py."""

from collections.abc import Iterator
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from assets.shared import RETRIES
from assets.warehouse.lake import LakePartition, partition_files, read_files
from assets.warehouse.loader import load_partition
from assets.warehouse.quality import validation_result
from assets.warehouse.resources import WarehouseResource
from assets.warehouse.suites import lake_contract_suite, validate

KEY_SEPARATOR = "|"
# One writer at a time: DuckDB allows one writing process per file, and a load racing a
# dbt build would read half a partition. Limit the pool to 1 in the instance (dagster.yaml).
WAREHOUSE_POOL = "warehouse"

lake_partitions = DynamicPartitionsDefinition(name="lake_partitions")


def partition_key(partition: LakePartition) -> str:
    """`<event_type>|<YYYY-MM-DD>`, the dynamic partition key of a lake partition."""
    return f"{partition.event_type}{KEY_SEPARATOR}{partition.event_date.isoformat()}"


def lake_partition(key: str) -> LakePartition:
    event_type, sep, day = key.partition(KEY_SEPARATOR)
    if not sep:
        raise ValueError(f"not a lake partition key: {key!r}")
    return LakePartition.of(event_type, day)


CONTRACT_CHECK = "raw_events_contract"
# The tags of a run over a range of partitions (Dagster's single-run backfills use them).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@asset(
    partitions_def=lake_partitions,
    group_name="warehouse",
    kinds={"s3", "duckdb"},
    retry_policy=RETRIES,
    pool=WAREHOUSE_POOL,
    # A backfill of many partitions is one run (each run costs seconds of start-up).
    backfill_policy=BackfillPolicy.single_run(),
    check_specs=[
        AssetCheckSpec(
            CONTRACT_CHECK,
            asset="raw_events",
            blocking=True,
            description=(
                "Great Expectations on the lake partition, before it is loaded: event_id, "
                "event_type and occurred_at not null, event types with a contract, no "
                "clear-text email in data. A failure loads nothing and stops the run."
            ),
        )
    ],
    description=(
        "raw.events: one lake partition (event_type x UTC day of Parquet in S3) replaced in "
        "the warehouse (delete + insert in one transaction, booked in raw.loaded_partitions)."
    ),
)
def raw_events(
    context: AssetExecutionContext, warehouse: ResourceParam[WarehouseResource]
) -> Iterator[AssetCheckResult | MaterializeResult]:
    """Validate, then load. The contract check runs before the load: a partition that fails
    it never reaches raw.events, so no later dbt build picks it up either.

    A run is one partition (the lake sensor's), or a range of them in one run (a catch-up:
    the demo's months of history), validated together and then loaded one by one."""
    parts = [lake_partition(key) for key in context.partition_keys]
    settings = warehouse.settings
    frames = [read_files(settings, partition_files(settings, p)).to_pandas() for p in parts]
    incoming = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    contract = validate(lake_contract_suite(), incoming)
    yield validation_result(contract, AssetCheckSeverity.ERROR, CONTRACT_CHECK)
    if not contract.success:
        raise Failure(
            f"{', '.join(context.partition_keys)}: not loaded, the lake partition breaks the "
            f"event contract\n{contract.summary()}",
            allow_retries=False,
        )
    # The load lists the partition again: a file landing in between changes the partition's
    # fingerprint, and the sensor requests (and validates) it again.
    results = [load_partition(warehouse.warehouse, p.event_type, p.event_date) for p in parts]
    metadata: dict[str, Any] = {
        "dagster/row_count": sum(r.rows for r in results),
        "lake_files": sum(r.files for r in results),
        "lake_bytes": sum(r.bytes for r in results),
        "warehouse": warehouse.config.kind,
        "loaded_at": MetadataValue.timestamp(max(r.loaded_at for r in results)),
    }
    if len(parts) == 1:
        metadata.update(event_type=parts[0].event_type, event_date=parts[0].event_date.isoformat())
    else:
        metadata["partitions"] = len(parts)
    yield MaterializeResult(metadata=metadata)
