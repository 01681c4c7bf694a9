"""The warehouse's part of the code location: lake partitions into raw_events, the dbt
project built on them, their data-quality checks, and the job the lake sensor requests.
Made from the dbt manifest, so only when the code location loads."""

from __future__ import annotations

from datetime import timedelta

from dagster import AssetSelection, Definitions, FreshnessPolicy, define_asset_job

from assets.shared import RETRIES
from assets.shared.stewardship import stewarded
from assets.warehouse.assets import raw_events
from assets.warehouse.checks import (
    billing_match_check,
    mart_checks,
    raw_events_unique_event_ids,
)
from assets.warehouse.dbt import paywall_dbt
from assets.warehouse.sensors import WAREHOUSE_JOB, lake_partitions_sensor
from paywall.settings import Settings


def defs(settings: Settings) -> Definitions:
    dbt = paywall_dbt()
    warehouse_job = define_asset_job(
        WAREHOUSE_JOB,
        # The checks of these assets come along: raw_events' blocking contract check stops
        # a bad partition before dbt builds on it.
        selection=AssetSelection.assets(raw_events, dbt),
        op_retry_policy=RETRIES,
        description="One lake partition into raw.events, its data-quality checks, then dbt build.",
    )
    # The lake sensor loads partitions as they land; dbt's own source freshness (warn 12 h,
    # error 36 h, dbt/models/sources.yml) is the same promise, kept here for the UI.
    within_a_day = FreshnessPolicy.time_window(
        fail_window=timedelta(hours=36), warn_window=timedelta(hours=12)
    )
    marts = {key.to_user_string() for key in dbt.keys if key.path[0] == "marts"}
    return Definitions(
        assets=stewarded(
            [raw_events, dbt],
            owner="team:data-platform",
            freshness=dict.fromkeys({raw_events.key.to_user_string(), *marts}, within_a_day),
        ),
        asset_checks=[raw_events_unique_event_ids, *mart_checks(), billing_match_check()],
        jobs=[warehouse_job],
        sensors=[lake_partitions_sensor],
    )
