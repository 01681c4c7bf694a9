"""The audit archive's part of the code location: the daily archive, its check, job and
schedule."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from assets.audit_archive.assets import audit_archive, audit_archive_verified
from assets.shared import RETRIES
from assets.shared.schedules import schedule_status
from assets.shared.stewardship import daily_by, stewarded
from paywall.settings import Settings

audit_archive_job = define_asset_job(
    "audit_archive_job",
    selection=AssetSelection.assets(audit_archive),
    op_retry_policy=RETRIES,
    description="The day's audit log to S3, then its verification.",
)


def defs(settings: Settings) -> Definitions:
    daily = build_schedule_from_partitioned_job(
        audit_archive_job, hour_of_day=3, minute_of_hour=0, default_status=schedule_status(settings)
    )
    return Definitions(
        assets=stewarded(
            [audit_archive], owner="team:platform", freshness={"audit_archive": daily_by(5)}
        ),
        asset_checks=[audit_archive_verified],
        jobs=[audit_archive_job],
        schedules=[daily],
    )
