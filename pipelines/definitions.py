"""The code location: every asset, check, job, schedule and sensor, with resources for the
environment that `paywall.settings` describes (chosen once, here)."""

from __future__ import annotations

from dagster import Definitions

from assets.audit_archive.assets import audit_archive, audit_archive_verified
from assets.billing.assets import billing_run
from assets.events.assets import event_completeness
from assets.notifications.assets import notification_batch
from assets.payments.assets import payment_recovery, stripe_reconciliation
from assets.quality.checks import QUALITY_CHECKS
from assets.warehouse.assets import paywall_dbt, raw_events
from paywall.settings import Settings, get_settings
from pipelines.jobs import JOBS, SCHEDULES
from pipelines.resources import build_resources
from pipelines.sensors import SENSORS

ASSETS = [
    billing_run,
    audit_archive,
    notification_batch,
    payment_recovery,
    stripe_reconciliation,
    event_completeness,
    raw_events,
    paywall_dbt,
]
CHECKS = [audit_archive_verified, *QUALITY_CHECKS]


def build_defs(settings: Settings) -> Definitions:
    return Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=JOBS,
        schedules=SCHEDULES,
        sensors=SENSORS,
        resources=build_resources(settings),
    )


defs = build_defs(get_settings())
