"""Invoice creation, set-based: stage the day's due subscriptions, then one INSERT … SELECT.

The unique key (subscription_id, period_start) makes a second invoice for the same
subscription and period impossible, whatever the scheduler does; ON CONFLICT DO NOTHING
turns a re-run into a count of what was already invoiced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

STAGE = "billing_due_stage"
STAGE_COLUMNS = (
    "subscription_id",
    "customer_id",
    "tenant_id",
    "plan_id",
    "kind",
    "amount",
    "currency",
    "period_start",
    "period_end",
)


@dataclass(frozen=True)
class DueRow:
    """One subscription whose period ends on the billing day, and what to bill next."""

    subscription_id: uuid.UUID
    customer_id: str
    tenant_id: str | None
    plan_id: str
    kind: str  # renewal | trial_conversion
    amount: int
    currency: str
    period_start: datetime
    period_end: datetime

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in STAGE_COLUMNS)


def create_stage(conn: Connection) -> None:
    conn.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (subscription_id uuid NOT NULL, "
            "customer_id text NOT NULL, tenant_id text, plan_id text NOT NULL, kind text NOT NULL, "
            "amount integer NOT NULL, currency text NOT NULL, period_start timestamptz NOT NULL, "
            "period_end timestamptz NOT NULL) ON COMMIT DROP"
        )
    )


def stage(conn: Connection, rows: Iterable[DueRow | tuple[Any, ...]]) -> None:
    """COPY rows into the transaction's stage table (created if needed)."""
    create_stage(conn)
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {STAGE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row.values() if isinstance(row, DueRow) else row)


def create_invoices(conn: Connection, billing_date: date) -> tuple[int, int]:
    """Invoices for everything staged, each open (finalized) with its one line, its totals
    (no discount or tax yet: total = subtotal = the plan's price, all of it due) and its
    `invoice.created` and `invoice.finalized` events in billing's outbox, all in one
    statement: (created, already invoiced before)."""
    staged: int = conn.execute(text(f"SELECT count(*) FROM {STAGE}")).scalar_one()
    # What this run was given, kept for reconciliation (assets/billing/reconciliation.py).
    conn.execute(
        text(
            "INSERT INTO billing.due_seen (billing_date, subscription_id, period_start, kind, "
            f"amount, currency) SELECT :day, subscription_id, period_start, kind, amount, "
            f"currency FROM {STAGE} ON CONFLICT DO NOTHING"
        ),
        {"day": billing_date},
    )
    created: int = conn.execute(
        text(
            "WITH made AS (INSERT INTO billing.invoices (id, subscription_id, customer_id, "
            "tenant_id, plan_id, kind, amount, subtotal, total, amount_due, currency, "
            "period_start, period_end, billing_date, status, finalized_at) "
            "SELECT gen_random_uuid(), subscription_id, customer_id, tenant_id, plan_id, kind, "
            "amount, amount, amount, amount, currency, period_start, period_end, :day, 'open', "
            f"now() FROM {STAGE} ON CONFLICT (subscription_id, period_start) DO NOTHING "
            "RETURNING *), "
            "lines AS (INSERT INTO billing.invoice_lines (id, invoice_id, position, kind, "
            "description, plan_id, amount, period_start, period_end) SELECT gen_random_uuid(), "
            "id, 1, 'subscription', plan_id, plan_id, amount, period_start, period_end "
            "FROM made), "
            f"events AS ({EVENTS}) "
            "SELECT count(*) FROM made"
        ),
        {"day": billing_date},
    ).scalar_one()
    conn.execute(text(f"TRUNCATE {STAGE}"))
    return created, staged - created


# The envelope streaming/outbox.py writes (streaming/contracts: invoice.created and
# invoice.finalized, version 1), built set-based: one JSON object per invoice and event.
# tests/integration/test_billing.py validates what a run writes against the contracts.
EVENTS = (
    "INSERT INTO billing.outbox (id, aggregate_type, aggregate_id, type, payload) "
    "SELECT e.event_id, 'invoice', e.key, e.type, jsonb_build_object('event_id', e.event_id, "
    "'event_type', e.type, 'schema_version', 1, 'occurred_at', "
    """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), """
    "'producer', 'billing-service', 'key', e.key, 'data', jsonb_build_object("
    "'invoice_id', e.key, 'customer_id', m.customer_id, 'tenant_id', m.tenant_id, "
    "'subscription_id', m.subscription_id::text, 'kind', m.kind, 'status', m.status, "
    "'currency', m.currency, 'total', m.total, 'amount_paid', m.amount_paid, "
    "'amount_due', m.amount_due)) "
    "FROM made m CROSS JOIN LATERAL (SELECT gen_random_uuid() AS event_id, m.id::text AS key, "
    "t.type, t.n FROM (VALUES (1, 'invoice.created'), (2, 'invoice.finalized')) AS t(n, type)) e "
    "ORDER BY m.id, e.n"
)
