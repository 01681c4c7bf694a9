"""A billing day is closed (`billing_job`: `billing_run`, then `billing_report`) once every
shard of it is billed: the shards run at once from the 02:00 schedule, and only the last to
finish knows the day is ready."""

from collections import defaultdict

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.billing.assets import DAY, SHARD, SHARDS, billing_run, billing_shard, day_by_shard

BILLING_JOB = "billing_job"  # defined with the assets (definitions.py)


def days_ready(shards_billed: set[str], days_closed: set[str]) -> list[str]:
    """Days whose every shard is materialized and which are not closed yet, oldest first."""
    by_day: dict[str, set[str]] = defaultdict(set)
    for key in shards_billed:
        dims = day_by_shard.get_partition_key_from_str(key).keys_by_dimension
        by_day[dims[DAY]].add(dims[SHARD])
    return sorted(
        day for day, shards in by_day.items() if len(shards) == SHARDS and day not in days_closed
    )


@sensor(
    name="billing_day_sensor",
    job_name=BILLING_JOB,
    minimum_interval_seconds=60,
    # Everywhere, like the lake sensor: it only follows shards someone chose to bill.
    default_status=DefaultSensorStatus.RUNNING,
    description="Closes a billing day (billing_job) once all its shards are billed.",
)
def billing_day_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    billed = context.instance.get_materialized_partitions(AssetKey(billing_shard.key.path))
    closed = context.instance.get_materialized_partitions(AssetKey(billing_run.key.path))
    ready = days_ready(set(billed), set(closed))
    if not ready:
        return SkipReason("no billing day has all its shards billed and is still open")
    # The run key makes one close per day: a failed close is retried by its retry policy
    # or re-run by an operator, not requested again every minute.
    return SensorResult(
        run_requests=[RunRequest(run_key=f"close:{day}", partition_key=day) for day in ready]
    )
