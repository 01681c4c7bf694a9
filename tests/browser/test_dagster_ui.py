"""The Dagster UI in headless Chromium: `dagster-webserver` on the code location, over an
instance where billing_job's assets materialized one day (the billing run, its checks,
billing_report), shows billing_report's chart and amounts on its asset page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page

from paywall.stack.process import free_port
from tests.browser.conftest import OfflinePage, screenshot
from tests.conftest import REPO, Api
from tests.integration.test_billing import (  # noqa: F401 (fixtures)
    DECLINED_ON_CHARGE,
    at,
    move_period_end,
    resources,
    signup,
    token,
)
from tests.integration.test_billing_report import (
    bill_and_report,
    dagster_home,
    mrr_warehouse,
    report_resources,
)

pytestmark = pytest.mark.integration

DAY = date(2026, 10, 26)  # a day of its own (tests/integration/test_billing_report.py)


@pytest.fixture
def billed_instance(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> Path:
    """DAGSTER_HOME of an instance where billing_job's assets materialized DAY: two
    renewals paid, and a trial whose card declines at conversion (a failed invoice)."""
    home = tmp_path / "dagster"
    given = report_resources(resources, mrr_warehouse(tmp_path / "warehouse.duckdb"))
    trial = signup(api, token, DECLINED_ON_CHARGE, trial=True, plan_id="basic-monthly")
    move_period_end(api, trial["subscription_id"], at(DAY))
    with dagster_home(home) as instance:
        assert bill_and_report(api, token, given, instance, DAY).success
    return home


LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def location_loaded(url: str) -> bool:
    """The webserver answers and has loaded the paywall code location (until then the asset
    pages show the assets as external ones)."""
    try:
        answer = httpx.post(f"{url}/graphql", json={"query": LOCATIONS}, timeout=5)
    except httpx.TransportError:
        return False
    if answer.status_code != 200:
        return False
    entries = answer.json()["data"]["workspaceOrError"].get("locationEntries", [])
    return any(e["name"] == "paywall" and e["loadStatus"] == "LOADED" for e in entries)


@pytest.fixture
def webserver(billed_instance: Path, tmp_path: Path) -> Iterator[str]:
    """`dagster-webserver -w workspace.yaml` on a free port over that instance; stopped
    (and waited for) by the test that started it."""
    port = free_port()
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-webserver")),
            *("-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)),
        ],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(billed_instance)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # the code location parses the dbt manifest first
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            if location_loaded(url):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("dagster-webserver did not load the code location")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def table_headed(page: Page, column: str) -> Locator:
    """The innermost table with `column` in its head (metadata tables sit in the UI's own)."""
    return page.locator("th", has_text=column).first.locator("xpath=ancestor::table[1]")


def test_billing_report_shows_its_chart_and_amounts(
    webserver: str, offline_page: OfflinePage, tmp_path: Path
) -> None:
    page = offline_page.page
    # Dagster's "join the community" dialog, shown once per browser, would cover the page.
    page.context.add_init_script("localStorage.setItem('communityNux', JSON.stringify('1'))")
    page.goto(f"{webserver}/assets/billing_report?view=events&partition={DAY.isoformat()}")
    page.get_by_text(f"Partition {DAY.isoformat()} materialized").wait_for(timeout=60_000)
    # The amounts: a Markdown table in the metadata, rendered as an HTML table.
    amounts = table_headed(page, "outstanding_past_due").locator("td")
    # The metadata renders after the event line, later on a loaded machine: all_inner_texts
    # reads what is there now, so wait for the cells first.
    amounts.nth(2).wait_for(timeout=30_000)
    assert amounts.all_inner_texts()[:3] == ["USD", "47.00", "38.00"]
    months = table_headed(page, "reactivation")
    assert "2026-10" in months.inner_text() and "68.00" in months.inner_text()
    assert page.get_by_text("mrr-2026-10-26.png").is_visible()  # mrr_chart_file
    screenshot(page, tmp_path / "billing_report_metadata.png")
    # The chart: the UI offers large Markdown behind a link, in a dialog.
    page.get_by_text("[Show Markdown]").first.click()
    chart = page.locator("img[src^='data:image/png;base64,']")
    chart.wait_for(state="visible", timeout=30_000)
    width, height = chart.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert (width, height) == (800, 600)  # the PNG decoded: matplotlib's 8 x 6 in at 100 dpi
    shot = screenshot(page, tmp_path / "billing_report_chart.png")
    assert shot.stat().st_size > 10_000
    # Dagster's UI itself may ask the internet for nothing but telemetry.
    assert not [u for u in offline_page.blocked if "telemetry" not in u], offline_page.blocked


def test_billing_runs_checks_and_the_marts_column_docs_show(
    webserver: str, offline_page: OfflinePage, tmp_path: Path
) -> None:
    page = offline_page.page
    page.context.add_init_script("localStorage.setItem('communityNux', JSON.stringify('1'))")
    # The billing partition: its amounts per currency in the materialization's metadata.
    page.goto(f"{webserver}/assets/billing_run?view=events&partition={DAY.isoformat()}")
    page.get_by_text(f"Partition {DAY.isoformat()} materialized").wait_for(timeout=60_000)
    assert "USD" in table_headed(page, "outstanding_past_due").inner_text()
    # And the day's failed invoices: the declined renewal, its attempt and next retry.
    failed = table_headed(page, "next retry")
    assert failed.locator("tbody tr").count() >= 1, failed.inner_text()
    assert "9.00 USD" in failed.inner_text()
    screenshot(page, tmp_path / "billing_run_partition.png")
    failed.scroll_into_view_if_needed()
    screenshot(page, tmp_path / "billing_run_failed_invoices.png")
    # Its reconciliation checks, run with it, passed.
    page.goto(f"{webserver}/assets/billing_run?view=checks")
    for check in ("billing_invoiced_once", "billing_paid_matches_charges"):
        page.get_by_text(check).first.wait_for(timeout=60_000)
    screenshot(page, tmp_path / "billing_run_checks.png")
    # A dbt mart's columns, with the docs of its YAML (dagster-dbt reads the manifest).
    page.goto(f"{webserver}/assets/marts/fct_invoices")
    try:
        page.get_by_text("Billing's invoice id.").first.wait_for(timeout=60_000)
    finally:
        screenshot(page, tmp_path / "fct_invoices_columns.png")
    assert page.get_by_text("The subscription invoiced.").first.is_visible()
    assert not [u for u in offline_page.blocked if "telemetry" not in u], offline_page.blocked
