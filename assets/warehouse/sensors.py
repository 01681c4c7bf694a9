"""New or changed lake partitions are loaded into the warehouse (and dbt builds on them)."""

import hashlib

import duckdb
from dagster import (
    DefaultSensorStatus,
    ResourceParam,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.warehouse.assets import lake_partitions, partition_key
from assets.warehouse.lake import PartitionStats, lake_partition_stats
from assets.warehouse.loader import partitions_to_load
from assets.warehouse.resources import WarehouseResource

WAREHOUSE_JOB = "warehouse_job"  # defined with the dbt assets (definitions.py)
# Runs requested per tick; the rest are still "to load" at the next tick.
MAX_RUNS_PER_TICK = 100


def fingerprint(stats: PartitionStats) -> str:
    """What the lake held when the run was requested: a changed partition gets a new run key."""
    modified = stats.last_modified.isoformat() if stats.last_modified else "-"
    raw = f"{stats.files}:{stats.bytes}:{modified}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@sensor(
    name="lake_partitions_sensor",
    job_name=WAREHOUSE_JOB,
    minimum_interval_seconds=120,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Lake partitions never loaded or changed since their load (raw.loaded_partitions "
        "vs. the S3 listing): adds them as lake_partitions keys and requests warehouse_job."
    ),
)
def lake_partitions_sensor(
    context: SensorEvaluationContext, warehouse: ResourceParam[WarehouseResource]
) -> SensorResult | SkipReason:
    # One S3 listing per tick: what to load and each run key's fingerprint come from it.
    stats = lake_partition_stats(warehouse.settings)
    try:
        to_load = partitions_to_load(warehouse.warehouse, stats)
    except duckdb.IOException as exc:  # a load or dbt build holds the DuckDB file's lock
        return SkipReason(f"warehouse busy, next tick: {exc}")
    if not to_load:
        return SkipReason("every lake partition is loaded")
    known = set(context.instance.get_dynamic_partitions(lake_partitions.name or ""))
    keys = [partition_key(p) for p in to_load]
    new_keys = [k for k in keys if k not in known]
    requests = [
        RunRequest(run_key=f"{key}@{fingerprint(stats[part])}", partition_key=key)
        for key, part in zip(keys, to_load, strict=True)
    ][:MAX_RUNS_PER_TICK]
    context.log.info(f"{len(to_load)} partitions to load, {len(new_keys)} new keys")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[lake_partitions.build_add_request(new_keys)]
        if new_keys
        else [],
    )
