"""The billing day as Dagster assets: `billing_shard`, one run per shard of a day (its
partitions are day by shard), and `billing_run`, the day closed once its shards are billed.

The 02:00 schedule launches every shard of the day at once, each a run of its own (a pod
under the K8s run launcher), sharing the Stripe budget (pacing.py). When all of a day's
shards are materialized, `billing_day_sensor` launches the day's `billing_job`:
`billing_run` bills the whole day again, which finds done what the shards did (one
invoice per subscription and period is the database's key; each charge attempt its
Idempotency-Key) and finishes what they left, then the day is checked and reported.
Materializing `billing_run` alone bills the whole day in one run, as a small install may.
"""

from typing import Any

from dagster import (
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    ResourceParam,
    StaticPartitionsDefinition,
    asset,
)

from assets.billing.metrics import pushed
from assets.billing.pacing import Pace
from assets.billing.report import metadata as report
from assets.billing.run import WHOLE_DAY, BillingRun
from assets.shared import RETRIES, daily, day_of
from assets.shared.resources import Database, Services
from paywall.settings import get_settings
from paywall.shards import Shard

# Read when the code location loads, as the first day is (assets/shared).
SHARDS = get_settings().billing_shards
DAY, SHARD = "day", "shard"
day_by_shard = MultiPartitionsDefinition(
    {DAY: daily, SHARD: StaticPartitionsDefinition([str(i) for i in range(SHARDS)])}
)


def shard_keys(day: str) -> list[MultiPartitionKey]:
    """The partitions of `billing_shard` that make up one billing day."""
    return [MultiPartitionKey({DAY: day, SHARD: str(i)}) for i in range(SHARDS)]


def billing(database: Database, services: Services) -> BillingRun:
    """The billing run over the code location's resources."""
    return BillingRun(
        database.engine,
        services.subscription,
        services.payment,
        Pace.of(services.settings),
        services.payment_concurrency,
        services.customer,
    )


def bill(database: Database, services: Services, day_key: str, shard: Shard) -> MaterializeResult:
    """Bill `shard` of the day; push the run's metrics; fail on any step that failed, so the
    retry policy (or an operator) runs it again: nothing doubles."""
    day = day_of(day_key)
    run = billing(database, services)
    with pushed(database.settings.pushgateway_url, day, shard) as metrics:
        counts = metrics.counts = run.run(day, shard)
        metadata: dict[str, Any] = {
            **counts.numbers(),
            "billing_day": day.isoformat(),
            "shard": shard.label,
        }
        if shard.whole:  # the day's amounts, once every shard is in
            metadata.update(report(database.engine, day))
        if counts.errors:
            problems = MetadataValue.md("\n".join(counts.problems[:50]))
            raise Failure(
                description=f"{counts.errors} billing step(s) failed on {day} "
                f"(shard {shard.label})",
                metadata={**metadata, "problems": problems},
            )
    if counts.problems:
        metadata["problems"] = MetadataValue.md("\n".join(f"- {p}" for p in counts.problems[:50]))
    return MaterializeResult(metadata=metadata)


@asset(
    partitions_def=day_by_shard,
    group_name="billing",
    kinds={"postgres", "python"},
    retry_policy=RETRIES,
    description=(
        "One shard of a billing day (BILLING_SHARDS of them, by subscription id): its "
        "subscriptions whose period ends that day invoiced (one per subscription and period) "
        "and charged, its period-end cancellations applied, its dunning retries due that day "
        "charged. Shards of a day run at once, each a run of its own."
    ),
)
def billing_shard(
    context: AssetExecutionContext,
    database: ResourceParam[Database],
    services: ResourceParam[Services],
) -> MaterializeResult:
    key = context.partition_key
    assert isinstance(key, MultiPartitionKey)
    dims = key.keys_by_dimension
    return bill(database, services, dims[DAY], Shard(int(dims[SHARD]), SHARDS))


@asset(
    partitions_def=daily,
    group_name="billing",
    kinds={"postgres", "python"},
    retry_policy=RETRIES,
    deps=[
        AssetDep(
            billing_shard,
            partition_mapping=MultiToSingleDimensionPartitionMapping(partition_dimension_name=DAY),
        )
    ],
    description=(
        "The billing day closed: the whole day billed again, which finds done what its shards "
        "did and finishes what they left (renewals and trial conversions invoiced once, "
        "charged, cancellations, dunning retries), then checked. Its metadata: amounts per "
        "currency (invoiced, collected, failed, credited, outstanding past due) and the "
        "invoices that failed that day."
    ),
)
def billing_run(
    context: AssetExecutionContext,
    database: ResourceParam[Database],
    services: ResourceParam[Services],
) -> MaterializeResult:
    return bill(database, services, context.partition_key, WHOLE_DAY)
