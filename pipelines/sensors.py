"""Sensors: a failed run emails the ops address through the notification senders; new or
changed lake partitions are loaded into the warehouse (and dbt builds on them)."""

import hashlib

import duckdb
from dagster import (
    DefaultSensorStatus,
    ResourceParam,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from assets.warehouse.assets import lake_partitions, partition_key
from assets.warehouse.lake import PartitionStats, lake_partition_stats
from assets.warehouse.loader import partitions_to_load
from pipelines.jobs import warehouse_job
from pipelines.resources import Senders, WarehouseResource

# Runs requested per tick; the rest are still "to load" at the next tick.
MAX_RUNS_PER_TICK = 100


def alert_text(context: RunFailureSensorContext) -> tuple[str, str]:
    run = context.dagster_run
    partition = run.tags.get("dagster/partition", "-")
    subject = f"[paywall] {run.job_name} failed (partition {partition})"
    body = (
        f"Run {run.run_id} of {run.job_name} failed.\n"
        f"Partition: {partition}\n"
        f"Error: {context.failure_event.message}\n"
    )
    return subject, body


@run_failure_sensor(
    name="ops_alert_on_run_failure",
    default_status=DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
    description="Emails the ops address (OPS_ALERT_EMAIL) when any run of this location fails.",
)
def ops_alert_on_run_failure(
    context: RunFailureSensorContext, senders: ResourceParam[Senders]
) -> None:
    subject, body = alert_text(context)
    senders.alert(subject, body)
    context.log.info(f"alerted {senders.ops_email}: {subject}")


def fingerprint(stats: PartitionStats) -> str:
    """What the lake held when the run was requested: a changed partition gets a new run key."""
    modified = stats.last_modified.isoformat() if stats.last_modified else "-"
    raw = f"{stats.files}:{stats.bytes}:{modified}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@sensor(
    name="lake_partitions_sensor",
    job=warehouse_job,
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


SENSORS = [ops_alert_on_run_failure, lake_partitions_sensor]
