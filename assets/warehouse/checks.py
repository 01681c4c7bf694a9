"""The Great Expectations suites as Dagster asset checks.

raw_events_contract          blocking, run by raw_events itself before it loads (see
                             assets.py): a lake partition that breaks the contract (null ids
                             or times, an unknown event type, a clear-text email) is not
                             loaded and the run stops before dbt.
raw_events_unique_event_ids  warning: at-least-once delivery files replays; staging dedupes.
mrr_monthly_quality          marts, after dbt build: MRR non-negative, one row per month x
fct_subscriptions_quality    currency; subscription status in the allowed set. Made from the
                             dbt assets (`mart_checks()`), which exist once the manifest does.
fct_invoices_match_billing   blocking: the warehouse's invoices equal the billing schema's
                             (billing_match.py); a lost or doubled invoice event fails it.
"""

from functools import cache

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    Failure,
    MetadataValue,
    ResourceParam,
    asset_check,
)

from assets.shared.resources import Database, Lake
from assets.warehouse.assets import (
    RANGE_END,
    RANGE_START,
    lake_partition,
    lake_partitions,
    raw_events,
)
from assets.warehouse.billing_match import invoices_match
from assets.warehouse.dbt import dbt_key
from assets.warehouse.lake import partition_files, read_files
from assets.warehouse.quality import validation_result
from assets.warehouse.resources import WarehouseResource
from assets.warehouse.suites import (
    Suite,
    fct_subscriptions_suite,
    lake_unique_ids_suite,
    mrr_monthly_suite,
    validate,
)

MARTS_SCHEMA = "marts"


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
    tags = context.run.tags
    keys = [tags["dagster/partition"]] if "dagster/partition" in tags else []
    start, end = tags.get(RANGE_START), tags.get(RANGE_END)
    if start and end:  # a catch-up run over a range of partitions (raw_events' backfills)
        known = context.instance.get_dynamic_partitions(lake_partitions.name or "")
        keys = known[known.index(start) : known.index(end) + 1]
    if not keys:
        raise Failure("raw_events_unique_event_ids runs with a raw_events partition")
    files = [f for key in keys for f in partition_files(lake.settings, lake_partition(key))]
    df = read_files(lake.settings, files).to_pandas()
    return validation_result(validate(lake_unique_ids_suite(), df), AssetCheckSeverity.WARN)


def _mart(warehouse: WarehouseResource, suite: Suite, sql: str) -> AssetCheckResult:
    return validation_result(validate(suite, warehouse.query(sql)), AssetCheckSeverity.ERROR)


@cache
def mart_checks() -> list[AssetChecksDefinition]:
    """The checks of the marts dbt builds (made once the dbt assets are)."""

    @asset_check(
        asset=dbt_key("mrr_monthly"),
        name="mrr_monthly_quality",
        description="GX: mrr >= 0, one row per month x currency.",
    )
    def mrr_monthly_quality(warehouse: ResourceParam[WarehouseResource]) -> AssetCheckResult:
        return _mart(
            warehouse,
            mrr_monthly_suite(),
            f"SELECT month, currency, mrr FROM {MARTS_SCHEMA}.mrr_monthly",
        )

    @asset_check(
        asset=dbt_key("fct_subscriptions"),
        name="fct_subscriptions_quality",
        description="GX: status in the allowed set.",
    )
    def fct_subscriptions_quality(
        warehouse: ResourceParam[WarehouseResource],
    ) -> AssetCheckResult:
        return _mart(
            warehouse,
            fct_subscriptions_suite(),
            f"SELECT subscription_state_id, status FROM {MARTS_SCHEMA}.fct_subscriptions",
        )

    return [mrr_monthly_quality, fct_subscriptions_quality]


@cache
def billing_match_check() -> AssetChecksDefinition:
    """fct_invoices against the billing schema (made once the dbt assets are)."""

    @asset_check(
        asset=dbt_key("fct_invoices"),
        name="fct_invoices_match_billing",
        blocking=True,
        description="Invoices per currency and status (count, total, paid, due) equal the "
        "billing schema's, up to the newest invoice event loaded.",
    )
    def fct_invoices_match_billing(
        warehouse: ResourceParam[WarehouseResource], database: ResourceParam[Database]
    ) -> AssetCheckResult:
        finding = invoices_match(database.engine, warehouse)
        return AssetCheckResult(
            passed=finding.passed,
            severity=AssetCheckSeverity.ERROR,
            metadata={**finding.numbers, "differences": MetadataValue.md(finding.markdown())},
        )

    return fct_invoices_match_billing
