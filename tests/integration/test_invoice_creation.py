"""The billing run's set-based invoice stage on a real PostgreSQL: what one statement makes
for a day's staged rows (invoices, their lines, their two events each) and what a re-run
of the same rows makes (nothing)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from assets.billing.invoicing import DueRow, create_invoices, stage
from paywall import db
from paywall.settings import Settings
from streaming import contracts

DAY = date(2026, 4, 2)
START = datetime(2026, 4, 2, 9, 30, 0, 250_000, tzinfo=UTC)


@pytest.fixture
def database(scratch_database: Settings) -> Settings:
    db.upgrade(scratch_database)
    return scratch_database


def due(i: int, *, priced: bool = False) -> DueRow:
    row = DueRow(
        subscription_id=uuid.uuid4(),
        customer_id=f"cus_{i}",
        tenant_id=f"tenant-{i % 3}",
        plan_id="pro-monthly",
        kind="trial_conversion" if i % 5 == 0 else "renewal",
        amount=2900,
        currency="usd",
        period_start=START + timedelta(seconds=i),
        period_end=START + timedelta(days=30, seconds=i),
    )
    if not priced:
        return row
    lines = [
        {
            "kind": "subscription",
            "description": "pro-monthly",
            "plan_id": "pro-monthly",
            "amount": 2900,
            "tax_amount": 232,
        },
        {
            "kind": "discount",
            "description": "SPRING",
            "plan_id": None,
            "amount": -290,
            "tax_amount": -23,
        },
    ]
    return DueRow(
        **{k: getattr(row, k) for k in row.__dataclass_fields__ if getattr(row, k) is not None},
        subtotal=2900,
        discount=290,
        tax=209,
        tax_inclusive=False,
        total=2819,
        lines=json.dumps(lines),
    )


def run_stage(settings: Settings, rows: list[DueRow]) -> tuple[int, int]:
    with db.engine(settings).begin() as conn:
        stage(conn, rows)
        return create_invoices(conn, DAY)


def rows_of(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query).fetchall()


def test_each_staged_row_gets_its_invoice_lines_and_events_once(database: Settings) -> None:
    rows = [due(i, priced=i % 50 == 7) for i in range(300)]
    assert run_stage(database, rows) == (300, 0)

    invoices = {
        str(sub): (str(inv), total)
        for inv, sub, total in rows_of(
            database, "SELECT id, subscription_id, total FROM billing.invoices"
        )
    }
    assert len(invoices) == 300
    lines: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for invoice_id, position, kind, description, plan_id, amount, tax in rows_of(
        database,
        "SELECT invoice_id, position, kind, description, plan_id, amount, tax_amount "
        "FROM billing.invoice_lines ORDER BY invoice_id, position",
    ):
        lines[str(invoice_id)].append((position, kind, description, plan_id, amount, tax))
    for row in rows:
        invoice_id, total = invoices[str(row.subscription_id)]
        if row.lines is None:  # the plan's price, one line
            assert total == 2900
            assert lines[invoice_id] == [(1, "subscription", "pro-monthly", "pro-monthly", 2900, 0)]
        else:  # the priced lines, in their order
            assert total == 2819
            assert lines[invoice_id] == [
                (1, "subscription", "pro-monthly", "pro-monthly", 2900, 232),
                (2, "discount", "SPRING", None, -290, -23),
            ]

    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for aggregate_type, aggregate_id, event_type, event_id, payload in rows_of(
        database,
        "SELECT aggregate_type, aggregate_id, type, id, payload FROM billing.outbox ORDER BY seq",
    ):
        contracts.validate(payload)
        assert (aggregate_type, event_type, str(event_id)) == (
            "invoice",
            payload["event_type"],
            payload["event_id"],
        )
        events[aggregate_id].append(payload)
    assert len(events) == 300
    for subscription_id, (invoice_id, _) in invoices.items():
        created, finalized = events[invoice_id]  # created first, in the relay's order
        assert (created["event_type"], finalized["event_type"]) == (
            "invoice.created",
            "invoice.finalized",
        )
        assert created["event_id"] != finalized["event_id"]
        assert created["key"] == finalized["key"] == invoice_id
        assert created["data"] == finalized["data"]
        assert created["data"]["subscription_id"] == subscription_id
        assert created["occurred_at"] == finalized["occurred_at"]

    # The same rows again: every one already invoiced, nothing new anywhere.
    assert run_stage(database, rows) == (0, 300)
    counts = rows_of(
        database,
        "SELECT (SELECT count(*) FROM billing.invoices), "
        "(SELECT count(*) FROM billing.invoice_lines), (SELECT count(*) FROM billing.outbox)",
    )
    assert counts == [(300, 300 + 6, 600)]


def test_the_stage_table_is_emptied_for_the_next_shard(database: Settings) -> None:
    with db.engine(database).begin() as conn:
        stage(conn, [due(1)])
        assert create_invoices(conn, DAY) == (1, 0)
        stage(conn, [due(2)])
        assert create_invoices(conn, DAY) == (1, 0)
        assert conn.execute(text("SELECT count(*) FROM billing.invoices")).scalar_one() == 2
