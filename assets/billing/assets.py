"""The daily billing run as a partitioned asset: the partition's date is the billing day."""

from typing import Any

from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from assets.billing.metrics import pushed
from assets.billing.pacing import Pace
from assets.billing.report import metadata as report
from assets.billing.run import BillingRun
from assets.shared import RETRIES, daily, day_of
from assets.shared.resources import Database, Services


@asset(
    partitions_def=daily,
    group_name="billing",
    kinds={"postgres", "python"},
    retry_policy=RETRIES,
    description=(
        "Subscriptions whose period ends on the partition's day: renewals and trial "
        "conversions invoiced (one per subscription and period) and charged, period-end "
        "cancellations applied, dunning retries (day 1, 3, 7) due that day charged. Its "
        "metadata: amounts per currency (invoiced, collected, failed, credited, outstanding "
        "past due) and the invoices that failed that day."
    ),
)
def billing_run(
    context: AssetExecutionContext,
    database: ResourceParam[Database],
    services: ResourceParam[Services],
) -> MaterializeResult:
    day = day_of(context.partition_key)
    run = BillingRun(
        database.engine,
        services.subscription,
        services.payment,
        Pace.of(services.settings),
        services.payment_concurrency,
        services.customer,
    )
    with pushed(database.settings.pushgateway_url, day) as metrics:
        counts = metrics.counts = run.run(day)
        metadata: dict[str, Any] = {
            **counts.numbers(),
            "billing_day": day.isoformat(),
            **report(database.engine, day),
        }
        if counts.errors:
            # Fail so the retry policy (or an operator) runs the day again; nothing doubles.
            problems = MetadataValue.md("\n".join(counts.problems[:50]))
            raise Failure(
                description=f"{counts.errors} billing step(s) failed on {day}",
                metadata={**metadata, "problems": problems},
            )
    if counts.problems:
        metadata["problems"] = MetadataValue.md("\n".join(f"- {p}" for p in counts.problems[:50]))
    return MaterializeResult(metadata=metadata)
