"""Payments' part of the code location: the recovery sweep every ten minutes and the daily
Stripe reconciliation, with their jobs and schedules."""

from __future__ import annotations

from datetime import timedelta

from dagster import (
    AssetSelection,
    Definitions,
    FreshnessPolicy,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from assets.payments.assets import payment_recovery, stripe_reconciliation
from assets.shared import RETRIES
from assets.shared.schedules import schedule_status
from assets.shared.stewardship import daily_by, stewarded
from paywall.settings import Settings

recovery_job = define_asset_job(
    "recovery_job",
    selection=AssetSelection.assets(payment_recovery),
    description="Finish signups and settle payments that a crash or a lost client left.",
)
reconciliation_job = define_asset_job(
    "reconciliation_job",
    selection=AssetSelection.assets(stripe_reconciliation),
    op_retry_policy=RETRIES,
    description="A day of Stripe charges against the payments table, per currency.",
)


def defs(settings: Settings) -> Definitions:
    status = schedule_status(settings)
    every_10_minutes = FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=20)
    )
    return Definitions(
        assets=stewarded(
            [payment_recovery, stripe_reconciliation],
            owner="team:payments",
            freshness={
                "payment_recovery": every_10_minutes,
                "stripe_reconciliation": daily_by(6),
            },
        ),
        jobs=[recovery_job, reconciliation_job],
        schedules=[
            build_schedule_from_partitioned_job(
                reconciliation_job, hour_of_day=4, minute_of_hour=0, default_status=status
            ),
            ScheduleDefinition(
                job=recovery_job,
                cron_schedule="*/10 * * * *",
                execution_timezone="UTC",
                default_status=status,
            ),
        ],
    )
