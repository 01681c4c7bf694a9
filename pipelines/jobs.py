"""Jobs and their schedules (UTC). Each daily schedule runs the last complete day; the
warehouse job runs per lake partition, requested by `lake_partitions_sensor`."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from assets.shared import RETRIES
from assets.warehouse.assets import paywall_dbt, raw_events

billing_job = define_asset_job(
    "billing_job",
    selection=AssetSelection.assets("billing_run"),
    op_retry_policy=RETRIES,
    description="The daily billing run: renewals, invoices, charges, dunning.",
)
audit_archive_job = define_asset_job(
    "audit_archive_job",
    selection=AssetSelection.assets("audit_archive"),
    op_retry_policy=RETRIES,
    description="The day's audit log to S3, then its verification.",
)
notification_job = define_asset_job(
    "notification_job",
    selection=AssetSelection.assets("notification_batch"),
    op_retry_policy=RETRIES,
    description="Trial-ending reminders, dunning notices and receipts.",
)
event_completeness_job = define_asset_job(
    "event_completeness_job",
    selection=AssetSelection.assets("event_completeness"),
    op_retry_policy=RETRIES,
    description="The day's outbox events against the audit log; gaps republished.",
)

recovery_job = define_asset_job(
    "recovery_job",
    selection=AssetSelection.assets("payment_recovery"),
    description="Finish signups and settle payments that a crash or a lost client left.",
)
reconciliation_job = define_asset_job(
    "reconciliation_job",
    selection=AssetSelection.assets("stripe_reconciliation"),
    op_retry_policy=RETRIES,
    description="A day of Stripe charges against the payments table, per currency.",
)

warehouse_job = define_asset_job(
    "warehouse_job",
    # The checks of these assets come along: raw_events' blocking contract check stops
    # a bad partition before dbt builds on it.
    selection=AssetSelection.assets(raw_events, paywall_dbt),
    op_retry_policy=RETRIES,
    description="One lake partition into raw.events, its data-quality checks, then dbt build.",
)

JOBS = [
    billing_job,
    audit_archive_job,
    notification_job,
    recovery_job,
    reconciliation_job,
    event_completeness_job,
    warehouse_job,
]
SCHEDULES = [
    build_schedule_from_partitioned_job(event_completeness_job, hour_of_day=1, minute_of_hour=0),
    build_schedule_from_partitioned_job(billing_job, hour_of_day=2, minute_of_hour=0),
    build_schedule_from_partitioned_job(audit_archive_job, hour_of_day=3, minute_of_hour=0),
    build_schedule_from_partitioned_job(notification_job, hour_of_day=9, minute_of_hour=0),
    build_schedule_from_partitioned_job(reconciliation_job, hour_of_day=4, minute_of_hour=0),
    ScheduleDefinition(job=recovery_job, cron_schedule="*/10 * * * *", execution_timezone="UTC"),
]
