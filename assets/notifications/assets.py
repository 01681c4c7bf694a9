"""The daily notification batch as a partitioned asset."""

from typing import Any

from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from assets.notifications import batches
from assets.shared import RETRIES, daily, day_of
from assets.shared.resources import Database, Services
from streaming.notifications.senders import Senders


@asset(
    partitions_def=daily,
    group_name="notifications",
    kinds={"sendgrid", "twilio", "postgres"},
    retry_policy=RETRIES,
    deps=["billing_run"],
    description=(
        "Trial-ending reminders (3 days ahead), dunning notices and monthly receipts for the "
        "partition's day, sent in provider batches, once per customer, reason and period."
    ),
)
def notification_batch(
    context: AssetExecutionContext,
    database: ResourceParam[Database],
    services: ResourceParam[Services],
    senders: ResourceParam[Senders],
) -> MaterializeResult:
    day = day_of(context.partition_key)
    notices = [
        *batches.trial_ending(services.subscription, day),
        *batches.dunning(database.engine, day),
        *batches.receipts(database.engine, day),
    ]
    counts = batches.send(database.engine, senders, notices, day)
    metadata: dict[str, Any] = {**counts.numbers(), "day": day.isoformat()}
    if counts.errors:
        problems = MetadataValue.md("\n".join(f"- {p}" for p in counts.problems[:50]))
        raise Failure(
            description=f"{counts.errors} notice(s) could not be handed to a provider",
            metadata={**metadata, "problems": problems},
        )
    return MaterializeResult(metadata=metadata)
