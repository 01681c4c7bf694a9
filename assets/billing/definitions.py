"""The billing domain's part of the code location: the day's shards and their 02:00
schedule, the day's close and report (their job, launched by the sensor once the shards
are in), and the checks."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from assets.billing.assets import billing_run, billing_shard
from assets.billing.checks import billing_invoiced_once, billing_paid_matches_charges
from assets.billing.report_asset import billing_report
from assets.billing.sensors import BILLING_JOB, billing_day_sensor
from assets.shared import RETRIES
from assets.shared.schedules import schedule_status
from assets.shared.stewardship import daily_by, stewarded
from paywall.settings import Settings

# The instance's run queue admits one day's close at a time and a day's shards together
# (dagster.yaml: this tag's values).
BILLING_TAG = "paywall/billing"

billing_shards_job = define_asset_job(
    "billing_shards_job",
    selection=AssetSelection.assets(billing_shard),
    op_retry_policy=RETRIES,
    tags={BILLING_TAG: "shard"},
    description=(
        "One shard of a billing day (renewals, invoices, charges, dunning of its "
        "subscriptions); the schedule launches every shard of the day at once."
    ),
)

billing_job = define_asset_job(
    BILLING_JOB,
    selection=AssetSelection.assets(billing_run, billing_report),
    op_retry_policy=RETRIES,
    tags={BILLING_TAG: "day"},
    description=(
        "The billing day closed (whatever its shards left, billed; then checked), then its "
        "report (amounts per currency, MRR and its chart). billing_day_sensor launches it "
        "once every shard of the day is billed."
    ),
)


def defs(settings: Settings) -> Definitions:
    # One run request per shard of the day just ended (a multi-partitioned job's schedule).
    daily = build_schedule_from_partitioned_job(
        billing_shards_job,
        hour_of_day=2,
        minute_of_hour=0,
        default_status=schedule_status(settings),
    )
    return Definitions(
        assets=stewarded(
            [billing_shard, billing_run, billing_report],
            owner="team:billing",
            freshness={
                "billing_shard": daily_by(4),
                "billing_run": daily_by(4),
                "billing_report": daily_by(5),
            },
        ),
        asset_checks=[billing_invoiced_once, billing_paid_matches_charges],
        jobs=[billing_shards_job, billing_job],
        schedules=[daily],
        sensors=[billing_day_sensor],
    )
