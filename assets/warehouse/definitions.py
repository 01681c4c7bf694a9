"""The warehouse's part of the code location: lake partitions into raw_events, the dbt
project built on them, their data-quality checks, and the job the lake sensor requests.
Made from the dbt manifest, so only when the code location loads."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from assets.shared import RETRIES
from assets.warehouse.assets import raw_events
from assets.warehouse.checks import mart_checks, raw_events_unique_event_ids
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
    return Definitions(
        assets=[raw_events, dbt],
        asset_checks=[raw_events_unique_event_ids, *mart_checks()],
        jobs=[warehouse_job],
        sensors=[lake_partitions_sensor],
    )
