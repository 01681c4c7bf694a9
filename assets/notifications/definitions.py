"""Notifications' part of the code location: the daily batch, its job and schedule, and the
run-failure alert to ops."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from assets.notifications.assets import notification_batch
from assets.notifications.checks import notification_batch_settled
from assets.notifications.sensors import ops_alert_on_run_failure
from assets.shared import RETRIES
from assets.shared.schedules import schedule_status
from assets.shared.stewardship import daily_by, stewarded
from paywall.settings import Settings

notification_job = define_asset_job(
    "notification_job",
    selection=AssetSelection.assets(notification_batch),
    op_retry_policy=RETRIES,
    description="Trial-ending reminders, dunning notices and receipts.",
)


def defs(settings: Settings) -> Definitions:
    daily = build_schedule_from_partitioned_job(
        notification_job, hour_of_day=9, minute_of_hour=0, default_status=schedule_status(settings)
    )
    return Definitions(
        assets=stewarded(
            [notification_batch],
            owner="team:billing",
            freshness={"notification_batch": daily_by(11)},
        ),
        asset_checks=[notification_batch_settled],
        jobs=[notification_job],
        schedules=[daily],
        sensors=[ops_alert_on_run_failure],
    )
