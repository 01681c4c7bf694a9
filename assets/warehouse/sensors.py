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

from assets.warehouse.assets import RANGE_END, RANGE_START, lake_partitions, partition_key
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


def runs(keys: list[str], order: dict[str, int]) -> list[list[str]]:
    """Keys to load, grouped into runs of neighbouring partitions: each run builds dbt once,
    so a tick that finds seven new partitions (the usual: event types of the day) builds it
    once, not seven times. New partitions are added together, so they are neighbours."""
    groups: list[list[str]] = []
    for key in keys:
        if groups and order[key] == order[groups[-1][-1]] + 1:
            groups[-1].append(key)
        else:
            groups.append([key])
    return groups


def run_request(group: list[str], prints: dict[str, str]) -> RunRequest:
    """One partition's run, or one run over a range of them (raw_events' single-run policy);
    the run key names what the lake held, so a changed partition is requested again."""
    if len(group) == 1:
        return RunRequest(run_key=f"{group[0]}@{prints[group[0]]}", partition_key=group[0])
    held = hashlib.sha256("".join(prints[key] for key in group).encode()).hexdigest()[:16]
    first, last = group[0], group[-1]
    return RunRequest(
        run_key=f"{first}..{last}@{held}",
        tags={RANGE_START: first, RANGE_END: last},
    )


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
    known = context.instance.get_dynamic_partitions(lake_partitions.name or "")
    keys = [partition_key(p) for p in to_load]
    seen = set(known)
    new_keys = [k for k in keys if k not in seen]
    # The keys in the partitions' order once the new ones are added (they go last).
    order = {key: n for n, key in enumerate([*known, *new_keys])}
    prints = {partition_key(p): fingerprint(stats[p]) for p in to_load}
    requests = [
        run_request(group, prints) for group in runs(sorted(keys, key=order.__getitem__), order)
    ]
    requests = requests[:MAX_RUNS_PER_TICK]
    context.log.info(f"{len(to_load)} partitions to load, {len(new_keys)} new keys")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[lake_partitions.build_add_request(new_keys)]
        if new_keys
        else [],
    )
