"""fct_invoices_match_billing: the warehouse's invoices against the billing schema's, on a
database of its own (the check covers every invoice) and a real DuckDB warehouse file."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import psycopg
import pytest

from assets.warehouse.billing_match import invoices_match
from assets.warehouse.resources import WarehouseResource
from paywall.db import engine, upgrade
from paywall.settings import Settings

pytestmark = pytest.mark.integration

LOADED_UP_TO = datetime(2026, 3, 2, 12, tzinfo=UTC)
BEFORE = datetime(2026, 3, 1, 9, tzinfo=UTC)
AFTER = datetime(2026, 3, 3, 9, tzinfo=UTC)  # changed since the warehouse's last load
# id, currency, status, total, paid, due, last changed
INVOICES = [
    (uuid.uuid4(), "usd", "paid", 1900, 1900, 0, BEFORE),
    (uuid.uuid4(), "usd", "paid", 900, 900, 0, BEFORE),
    (uuid.uuid4(), "usd", "open", 2900, 0, 2900, BEFORE),
    (uuid.uuid4(), "eur", "paid", 1500, 1500, 0, BEFORE),
    (uuid.uuid4(), "usd", "paid", 4900, 4900, 0, AFTER),
]


@pytest.fixture
def database(scratch_database: Settings) -> Settings:
    """A migrated database of its own (the check covers every invoice) holding INVOICES."""
    upgrade(scratch_database)
    with psycopg.connect(scratch_database.database_url or "") as conn:
        for invoice_id, currency, status, total, paid, due, changed in INVOICES:
            conn.execute(
                "INSERT INTO billing.invoices (id, subscription_id, customer_id, plan_id, "
                "kind, amount, currency, period_start, period_end, billing_date, status, "
                "subtotal, discount, tax, total, amount_paid, amount_due, created_at, "
                "updated_at) VALUES (%s, %s, 'c1', 'pro-monthly', 'renewal', %s, %s, "
                "%s, %s, %s, %s, %s, 0, 0, %s, %s, %s, %s, %s)",
                (
                    invoice_id,
                    uuid.uuid4(),
                    total,
                    currency,
                    BEFORE,
                    AFTER,
                    date(2026, 3, 1),
                    status,
                    total,
                    total,
                    paid,
                    due,
                    BEFORE,
                    changed,
                ),
            )
    return scratch_database


def warehouse(settings: Settings, path: Path, rows: list[tuple[object, ...]]) -> WarehouseResource:
    """A warehouse file holding `rows` as fct_invoices, loaded up to LOADED_UP_TO."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS staging; CREATE SCHEMA IF NOT EXISTS marts")
        con.execute(
            "CREATE OR REPLACE TABLE staging.stg_invoice_events "
            "(event_type VARCHAR, occurred_at TIMESTAMP)"
        )
        # invoice.paid is loaded a day further than invoice.created: the earlier one counts.
        for event_type, at in (("invoice.created", LOADED_UP_TO), ("invoice.paid", AFTER)):
            con.execute(
                "INSERT INTO staging.stg_invoice_events VALUES (?, ?)",
                [event_type, at.replace(tzinfo=None)],
            )
        con.execute(
            "CREATE OR REPLACE TABLE marts.fct_invoices (invoice_id VARCHAR, currency VARCHAR, "
            "invoice_status VARCHAR, total_amount DECIMAL(18, 2), amount_paid DECIMAL(18, 2), "
            "amount_due DECIMAL(18, 2))"
        )
        for invoice_id, currency, status, total, paid, due, _ in rows:
            con.execute(
                "INSERT INTO marts.fct_invoices VALUES (?, ?, ?, ?, ?, ?)",
                [str(invoice_id), currency, status, total / 100, paid / 100, due / 100],
            )
    return WarehouseResource(settings.model_copy(update={"warehouse_path": path}))


def test_the_same_invoices_match_and_a_later_change_is_left_out(
    database: Settings, tmp_path: Path
) -> None:
    # The warehouse saw the last invoice before its payment (open); billing has it paid
    # since: changed after the load, it is left out on both sides.
    *loaded, later = INVOICES
    stale = (later[0], "usd", "open", 4900, 0, 4900, BEFORE)
    found = invoices_match(
        engine(database), warehouse(database, tmp_path / "w.duckdb", [*loaded, stale])
    )
    assert found.passed, found.problems
    assert found.numbers == {"invoices_compared": 4, "changed_since_load": 1}


def test_a_lost_invoice_event_fails_naming_currency_and_status(
    database: Settings, tmp_path: Path
) -> None:
    lost = [inv for inv in INVOICES if inv[1] != "eur"]
    found = invoices_match(engine(database), warehouse(database, tmp_path / "w.duckdb", lost))
    assert not found.passed
    assert "eur paid: invoices billing 1 vs warehouse 0" in found.problems
    assert "eur paid: total billing 1500 vs warehouse 0" in found.problems


def test_a_doubled_invoice_fails(database: Settings, tmp_path: Path) -> None:
    doubled = [*INVOICES[:4], INVOICES[0]]
    found = invoices_match(engine(database), warehouse(database, tmp_path / "w.duckdb", doubled))
    assert not found.passed
    assert "usd paid: total billing 2800 vs warehouse 4700" in found.problems
