"""The Great Expectations suites as Dagster asset checks.

raw_events_contract          blocking, run by raw_events itself before it loads (see
                             assets.warehouse.assets): a lake partition that breaks the contract
                             (null ids or times, an unknown event type, a clear-text email) is
                             not loaded and the run stops before dbt.
raw_events_unique_event_ids  warning: at-least-once delivery files replays; staging dedupes.
mrr_monthly_quality          marts, after dbt build: MRR non-negative, one row per month x
fct_subscriptions_quality    currency; subscription status in the allowed set.
"""

from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    Failure,
    MetadataValue,
    ResourceParam,
    asset_check,
)

from assets.quality.suites import (
    Suite,
    Validation,
    fct_subscriptions_suite,
    lake_unique_ids_suite,
    mrr_monthly_suite,
    validate,
)
from assets.warehouse.assets import dbt_key, lake_partition, raw_events
from assets.warehouse.lake import partition_files, read_files
from pipelines.resources import Lake, WarehouseResource

MARTS_SCHEMA = "marts"


def _metadata(validation: Validation) -> dict[str, Any]:
    return {
        "suite": validation.suite,
        "rows": validation.rows,
        "expectations": validation.evaluated,
        "failed": len(validation.failures),
        "failures": MetadataValue.md(validation.summary()),
        "examples": MetadataValue.json(
            {
                f"{f.expectation}({f.column})": [str(x) for x in f.examples]
                for f in validation.failures
            }
        ),
    }


def validation_result(
    validation: Validation, severity: AssetCheckSeverity, check_name: str | None = None
) -> AssetCheckResult:
    """A GX validation as a Dagster check result, with the failures as metadata."""
    return AssetCheckResult(
        check_name=check_name,
        passed=validation.success,
        severity=severity,
        metadata=_metadata(validation),
    )


@asset_check(
    asset=raw_events,
    description="GX: event ids unique in the lake partition (replays are a warning).",
)
def raw_events_unique_event_ids(
    context: AssetCheckExecutionContext, lake: ResourceParam[Lake]
) -> AssetCheckResult:
    """The lake partition just loaded (the run's partition tag; Dagster 1.13 cannot run a
    partitioned check on its own). At-least-once delivery files a replayed event again;
    staging deduplicates on event_id, so this warns."""
    key = context.run.tags.get("dagster/partition")
    if not key:
        raise Failure("raw_events_unique_event_ids runs with a raw_events partition")
    part = lake_partition(key)
    df = read_files(lake.settings, partition_files(lake.settings, part)).to_pandas()
    return validation_result(validate(lake_unique_ids_suite(), df), AssetCheckSeverity.WARN)


def _mart(warehouse: WarehouseResource, suite: Suite, sql: str) -> AssetCheckResult:
    return validation_result(validate(suite, warehouse.query(sql)), AssetCheckSeverity.ERROR)


@asset_check(
    asset=dbt_key("mrr_monthly"), description="GX: mrr >= 0, one row per month x currency."
)
def mrr_monthly_quality(warehouse: ResourceParam[WarehouseResource]) -> AssetCheckResult:
    return _mart(
        warehouse,
        mrr_monthly_suite(),
        f"SELECT month, currency, mrr FROM {MARTS_SCHEMA}.mrr_monthly",
    )


@asset_check(asset=dbt_key("fct_subscriptions"), description="GX: status in the allowed set.")
def fct_subscriptions_quality(warehouse: ResourceParam[WarehouseResource]) -> AssetCheckResult:
    return _mart(
        warehouse,
        fct_subscriptions_suite(),
        f"SELECT subscription_state_id, status FROM {MARTS_SCHEMA}.fct_subscriptions",
    )


QUALITY_CHECKS = [raw_events_unique_event_ids, mrr_monthly_quality, fct_subscriptions_quality]
