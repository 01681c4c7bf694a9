"""The event bus's part of the code location: the daily completeness check, its job and
schedule."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from assets.events.assets import event_completeness
from assets.shared import RETRIES
from assets.shared.schedules import schedule_status
from assets.shared.stewardship import daily_by, stewarded
from paywall.settings import Settings

event_completeness_job = define_asset_job(
    "event_completeness_job",
    selection=AssetSelection.assets(event_completeness),
    op_retry_policy=RETRIES,
    description="The day's outbox events against the audit log; gaps republished.",
)


def defs(settings: Settings) -> Definitions:
    daily = build_schedule_from_partitioned_job(
        event_completeness_job,
        hour_of_day=1,
        minute_of_hour=0,
        default_status=schedule_status(settings),
    )
    return Definitions(
        assets=stewarded(
            [event_completeness],
            owner="team:platform",
            freshness={"event_completeness": daily_by(3)},
        ),
        jobs=[event_completeness_job],
        schedules=[daily],
    )
