"""`billing_report`: what a billing day amounted to, for people, as one daily partition.

Downstream of the day's `billing_run` (its amounts per currency) and of the warehouse's
`marts/mrr_monthly` (MRR and its movements, by month). Its metadata carries both as tables
and numbers, and a chart of MRR by month: inline in the UI (a data-URI image) and as a PNG
file under the instance's storage. Materialized by billing_job after the run.
"""

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from assets.billing.mrr import MRR_SQL, MonthMrr, inline_image, mrr_rows, mrr_table, write_chart
from assets.billing.report import MEASURES, amounts, major
from assets.shared import RETRIES, daily, day_of, markdown_table
from assets.shared.resources import Database
from assets.warehouse.assets import WAREHOUSE_POOL
from assets.warehouse.resources import WarehouseResource
from paywall.logs import get_logger

log = get_logger(__name__)
# dbt's asset key of the mart (assets/warehouse/dbt.py: `<schema>/<model>`); spelled out
# because the dbt assets exist only once the manifest is read, never at import.
MRR_MART = AssetKey(["marts", "mrr_monthly"])
BRIDGE_CHECK = "billing_report_mrr_bridges"
CENT = 0.005


def mrr_until(warehouse: WarehouseResource, day: date) -> list[MonthMrr] | None:
    """The mart's months up to the day's month; None when the warehouse has no marts yet
    (a new install: the report still shows the day's amounts)."""
    try:
        frame = warehouse.query(MRR_SQL)
    except Exception as exc:  # duckdb's, redshift_connector's: the mart is not built yet
        log.warning("billing_report.no_marts", error=type(exc).__name__)
        return None
    rows = mrr_rows(frame.to_dict("records"))
    return [r for r in rows if r.month <= day.replace(day=1)]


def bridge_problems(rows: list[MonthMrr]) -> list[str]:
    """Each month's MRR must be its start plus its movements, and its start the previous
    month's MRR: a chart whose bars and movements disagree misleads whoever reads it."""
    problems = []
    previous: dict[str, float] = {}
    for r in rows:
        if abs(r.bridged - r.mrr) > CENT:
            problems.append(f"{r.month:%Y-%m} {r.currency}: start + movements {r.bridged:.2f}")
        if r.currency in previous and abs(previous[r.currency] - r.starting) > CENT:
            problems.append(f"{r.month:%Y-%m} {r.currency}: start {r.starting:.2f} ≠ last MRR")
        previous[r.currency] = r.mrr
    return problems


def amounts_metadata(database: Database, day: date) -> dict[str, Any]:
    with database.engine.connect() as conn:
        by_currency = amounts(conn, day)
    out: dict[str, Any] = {
        f"{measure}_{currency}": MetadataValue.float(minor / 100)
        for currency, measures in by_currency.items()
        for measure, minor in measures.items()
    }
    table: list[list[object]] = [
        [c.upper(), *(major(m[k]) for k in MEASURES)] for c, m in by_currency.items()
    ]
    out["amounts"] = MetadataValue.md(markdown_table(["currency", *MEASURES], table))
    return out


def mrr_metadata(rows: list[MonthMrr], chart: Path, day: date) -> dict[str, Any]:
    month = day.replace(day=1)
    out: dict[str, Any] = {}
    for r in rows:
        if r.month == month:
            out[f"mrr_{r.currency}"] = MetadataValue.float(r.mrr)
            for comp, value in r.components.items():
                out[f"mrr_{comp}_{r.currency}"] = MetadataValue.float(value)
    out["mrr_by_month"] = MetadataValue.md(mrr_table(rows))
    png = write_chart(rows, chart)
    out["mrr_chart"] = MetadataValue.md(inline_image(png, f"MRR by month to {month:%Y-%m}"))
    out["mrr_chart_file"] = MetadataValue.path(str(chart))
    return out


@asset(
    partitions_def=daily,
    group_name="billing",
    kinds={"postgres", "python", "matplotlib"},
    retry_policy=RETRIES,
    # The warehouse pool: a DuckDB file is not read while dbt writes it.
    pool=WAREHOUSE_POOL,
    deps=["billing_run", MRR_MART],
    check_specs=[
        AssetCheckSpec(
            BRIDGE_CHECK,
            asset="billing_report",
            description=(
                "Every month's MRR in the report is its starting MRR plus its movements, and "
                "its starting MRR the previous month's."
            ),
        )
    ],
    description=(
        "The billing day for people: amounts per currency (invoiced, collected, failed, "
        "credited, outstanding past due), MRR of the day's month and its movements (new, "
        "expansion, contraction, churned, reactivation) from marts/mrr_monthly, and a chart "
        "of MRR by month (inline, and a PNG file: mrr_chart_file)."
    ),
)
def billing_report(
    context: AssetExecutionContext,
    database: ResourceParam[Database],
    warehouse: ResourceParam[WarehouseResource],
) -> Iterator[MaterializeResult | AssetCheckResult]:
    day = day_of(context.partition_key)
    metadata: dict[str, Any] = {"billing_day": day.isoformat(), **amounts_metadata(database, day)}
    rows = mrr_until(warehouse, day)
    if rows:
        chart = Path(context.instance.storage_directory()) / "billing_report" / f"mrr-{day}.png"
        metadata.update(mrr_metadata(rows, chart, day))
    else:
        metadata["mrr_by_month"] = MetadataValue.md("marts/mrr_monthly is not built yet")
    yield MaterializeResult(metadata=metadata)
    problems = bridge_problems(rows or [])
    yield AssetCheckResult(
        check_name=BRIDGE_CHECK,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "months": len(rows or []),
            "problems": MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
        },
    )
