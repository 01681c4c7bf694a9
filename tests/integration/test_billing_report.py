"""`billing_report` on the real local stack: the billing day's amounts per currency, MRR and
its movements from marts/mrr_monthly (a small DuckDB warehouse the test writes, as dbt
would), the chart inline and as a PNG file, and its bridge check.

The test bills a day of its own, which no other test bills.
"""

from __future__ import annotations

import base64
import re
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from assets.billing.assets import billing_run
from assets.billing.checks import billing_invoiced_once, billing_paid_matches_charges
from assets.billing.report_asset import billing_report
from assets.warehouse.resources import WarehouseResource
from tests.conftest import Api
from tests.integration.test_billing import (  # noqa: F401 (fixtures)
    at,
    move_period_end,
    resources,
    signup,
    token,
)

pytestmark = pytest.mark.integration

# month, starting, new, expansion, contraction, churned, reactivation, mrr (USD)
MONTHS = [
    ("2026-08-01", 0, 58, 0, 0, 0, 0, 58),
    ("2026-09-01", 58, 29, 20, 0, -9, 0, 98),
    ("2026-10-01", 98, 9, 0, -10, -29, 0, 68),
]
PNG = b"\x89PNG\r\n\x1a\n"


def mrr_warehouse(path: Path, months: list[tuple[Any, ...]] = MONTHS) -> Path:
    """A DuckDB warehouse with marts.mrr_monthly as dbt builds it (only that table)."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute(
            "CREATE OR REPLACE TABLE marts.mrr_monthly (month date, currency varchar, "
            "starting_mrr numeric(18,2), new_mrr numeric(18,2), expansion_mrr numeric(18,2), "
            "contraction_mrr numeric(18,2), churned_mrr numeric(18,2), "
            "reactivation_mrr numeric(18,2), mrr numeric(18,2))"
        )
        for row in months:
            con.execute(
                "INSERT INTO marts.mrr_monthly VALUES (?, 'usd', ?, ?, ?, ?, ?, ?, ?)", list(row)
            )
    return path


def dagster_home(path: Path) -> DagsterInstance:
    """A persistent local instance in `path` (as `dagster dev` would keep one)."""
    path.mkdir(parents=True, exist_ok=True)
    return DagsterInstance.local_temp(str(path))


def report_resources(given: dict[str, Any], warehouse: Path) -> dict[str, Any]:
    settings = given["database"].settings.model_copy(update={"warehouse_path": warehouse})
    return {**given, "warehouse": WarehouseResource(settings)}


def bill_and_report(
    api: Api,
    token: str,  # noqa: F811
    given: dict[str, Any],
    instance: DagsterInstance,
    day: date,
) -> Any:
    """Two signups (pro 29 USD, basic 9 USD) renewed on `day`, then billing_job's assets
    (the run, its blocking checks, the report) for that partition, into `instance`."""
    for plan in ("pro-monthly", "basic-monthly"):
        reg = signup(api, token, plan_id=plan)
        move_period_end(api, reg["subscription_id"], at(day))
    return materialize(
        [billing_run, billing_invoiced_once, billing_paid_matches_charges, billing_report],
        partition_key=day.isoformat(),
        resources=given,
        instance=instance,
        raise_on_error=False,
    )


def test_the_report_has_the_days_amounts_mrr_its_movements_and_a_chart(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    day = date(2026, 10, 23)
    given = report_resources(resources, mrr_warehouse(tmp_path / "warehouse.duckdb"))
    with dagster_home(tmp_path / "dagster") as instance:
        result = bill_and_report(api, token, given, instance, day)
        assert result.success
        [mat] = result.asset_materializations_for_node("billing_report")
        meta = {k: v.value for k, v in mat.metadata.items()}
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}

    assert checks == dict.fromkeys(
        ["billing_invoiced_once", "billing_paid_matches_charges", "billing_report_mrr_bridges"],
        True,
    )
    assert meta["billing_day"] == "2026-10-23"
    assert meta["invoiced_usd"] == pytest.approx(38.00)
    assert "| USD | 38.00 |" in meta["amounts"]
    # The day's month: its MRR and each movement, per currency.
    assert meta["mrr_usd"] == pytest.approx(68.0)
    assert meta["mrr_new_usd"] == pytest.approx(9.0)
    assert meta["mrr_contraction_usd"] == pytest.approx(-10.0)
    assert meta["mrr_churned_usd"] == pytest.approx(-29.0)
    assert (
        "| 2026-09 | USD | 58.00 | 29.00 | 20.00 | 0.00 | -9.00 | 0.00 | 98.00 |"
        in (meta["mrr_by_month"])
    )
    # The chart: inline as a data URI, and the same PNG as a file.
    [data] = re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", meta["mrr_chart"])
    png = base64.b64decode(data)
    assert png.startswith(PNG) and len(png) > 5000
    assert Path(meta["mrr_chart_file"]).read_bytes() == png


def test_the_bridge_check_fails_on_a_month_whose_movements_do_not_add_up(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    day = date(2026, 10, 24)
    broken = [*MONTHS[:2], ("2026-10-01", 97, 9, 0, -10, -29, 0, 68)]
    given = report_resources(resources, mrr_warehouse(tmp_path / "w.duckdb", broken))
    with dagster_home(tmp_path / "dagster") as instance:
        result = bill_and_report(api, token, given, instance, day)
    [bridge] = [e for e in result.get_asset_check_evaluations() if e.check_name.endswith("bridges")]
    assert not bridge.passed
    problems = bridge.metadata["problems"].value
    assert "2026-10 usd: start + movements 67.00" in problems
    assert "2026-10 usd: start 97.00 ≠ last MRR" in problems


def test_without_marts_the_report_still_has_the_days_amounts(
    resources: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    given = report_resources(resources, tmp_path / "missing.duckdb")
    result = materialize(
        [billing_report], partition_key="2026-10-25", resources=given, raise_on_error=False
    )
    assert result.success
    [mat] = result.asset_materializations_for_node("billing_report")
    assert "not built yet" in str(mat.metadata["mrr_by_month"].value)
    assert "amounts" in mat.metadata
