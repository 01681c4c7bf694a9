"""Reconciliation of a billing day as asset checks on `billing_run` (reconciliation.py).

Both block: a day whose invoices and money do not agree stops what is materialized
after `billing_run` in the same run (its downstream `notification_batch`, in a backfill of
both); the separately scheduled notification job is a run of its own and is not held.
Run with the materialization, they check its partition; run on their own, the
latest billing day. Not partitioned themselves: Dagster 1.13 cannot run a partitioned check
without its asset.
"""

from datetime import date

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    ResourceParam,
    asset_check,
)
from sqlalchemy import Engine, text

from assets.billing import reconciliation
from assets.billing.assets import billing_run
from assets.shared import day_of
from assets.shared.resources import Database, Services


def checked_day(context: AssetCheckExecutionContext, engine: Engine) -> date | None:
    partition = context.run.tags.get("dagster/partition")
    if partition:
        return day_of(partition)
    with engine.connect() as conn:
        latest: date | None = conn.execute(
            text("SELECT max(billing_date) FROM billing.due_seen")
        ).scalar_one()
    return latest


def result(day: date | None, finding: reconciliation.Finding | None) -> AssetCheckResult:
    if day is None or finding is None:
        return AssetCheckResult(passed=True, metadata={"billing_day": "none billed yet"})
    return AssetCheckResult(
        passed=finding.passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "billing_day": day.isoformat(),
            **finding.numbers,
            "problems": MetadataValue.md(finding.markdown()),
        },
    )


@asset_check(asset=billing_run, blocking=True)
def billing_invoiced_once(
    context: AssetCheckExecutionContext, database: ResourceParam[Database]
) -> AssetCheckResult:
    """Every renewal and trial conversion the run was given has its invoice, and no
    subscription billed that day has two live invoices for overlapping periods."""
    day = checked_day(context, database.engine)
    return result(day, reconciliation.invoiced_once(database.engine, day) if day else None)


@asset_check(asset=billing_run, blocking=True)
def billing_paid_matches_charges(
    context: AssetCheckExecutionContext,
    database: ResourceParam[Database],
    services: ResourceParam[Services],
) -> AssetCheckResult:
    """Per currency, the day's paid invoices equal the succeeded charges less refunds the
    payment service holds for them."""
    day = checked_day(context, database.engine)
    if day is None:
        return result(None, None)
    return result(day, reconciliation.paid_matches_charges(database.engine, services.payment, day))
