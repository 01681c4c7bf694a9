"""The billing domain's part of the code location: the daily run and its report, their job
and schedule."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from assets.billing.assets import billing_run
from assets.billing.checks import billing_invoiced_once, billing_paid_matches_charges
from assets.billing.report_asset import billing_report
from assets.shared import RETRIES
from assets.shared.schedules import schedule_status
from assets.shared.stewardship import daily_by, stewarded
from paywall.settings import Settings

billing_job = define_asset_job(
    "billing_job",
    selection=AssetSelection.assets(billing_run, billing_report),
    op_retry_policy=RETRIES,
    # The instance's run queue admits one run with this tag at a time (dagster.yaml).
    tags={"paywall/billing": "run"},
    description=(
        "The daily billing run (renewals, invoices, charges, dunning), then its report "
        "(amounts per currency, MRR and its chart)."
    ),
)


def defs(settings: Settings) -> Definitions:
    daily = build_schedule_from_partitioned_job(
        billing_job, hour_of_day=2, minute_of_hour=0, default_status=schedule_status(settings)
    )
    return Definitions(
        assets=stewarded(
            [billing_run, billing_report],
            owner="team:billing",
            freshness={"billing_run": daily_by(4), "billing_report": daily_by(5)},
        ),
        asset_checks=[billing_invoiced_once, billing_paid_matches_charges],
        jobs=[billing_job],
        schedules=[daily],
    )
