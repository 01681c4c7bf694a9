"""Invoice creation, set-based: stage the day's due subscriptions, then one INSERT … SELECT.

Each staged row may carry its invoice already priced (run.py, with paywall/pricing.py's
one rule and streaming/invoice_terms.py's discount and tax): its totals and its lines as
JSON. A row without them (the benchmark's) is billed at its plan's price, one line, no
discount or tax. A discount is spent on the period (billing.discount_uses) only by the
invoice this statement makes, so a re-run spends nothing twice.

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
PRICED_COLUMNS = (
    "subtotal",
    "discount",
    "tax",
    "tax_inclusive",
    "total",
    "discount_id",
    "tax_rate_id",
    "lines",
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
    subtotal: int | None = None
    discount: int | None = None
    tax: int | None = None
    tax_inclusive: bool | None = None
    total: int | None = None
    discount_id: uuid.UUID | None = None
    tax_rate_id: uuid.UUID | None = None
    lines: str | None = None  # JSON: [{kind, description, plan_id, amount, tax_amount}]

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in (*STAGE_COLUMNS, *PRICED_COLUMNS))


def create_stage(conn: Connection) -> None:
    conn.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (subscription_id uuid NOT NULL, "
            "customer_id text NOT NULL, tenant_id text, plan_id text NOT NULL, kind text NOT NULL, "
            "amount integer NOT NULL, currency text NOT NULL, period_start timestamptz NOT NULL, "
            "period_end timestamptz NOT NULL, subtotal bigint, discount bigint, tax bigint, "
            "tax_inclusive boolean, total bigint, discount_id uuid, tax_rate_id uuid, "
            "lines jsonb) ON COMMIT DROP"
        )
    )


def stage(conn: Connection, rows: Iterable[DueRow | tuple[Any, ...]]) -> None:
    """COPY rows into the transaction's stage table (created if needed)."""
    create_stage(conn)
    raw = conn.connection.driver_connection
    assert raw is not None
    columns = ", ".join((*STAGE_COLUMNS, *PRICED_COLUMNS))
    unpriced = (None,) * len(PRICED_COLUMNS)
    with raw.cursor() as cur, cur.copy(f"COPY {STAGE} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row.values() if isinstance(row, DueRow) else (*row, *unpriced))


def create_invoices(conn: Connection, billing_date: date) -> tuple[int, int]:
    """Invoices for everything staged, each open (finalized) with its lines, its totals
    (all of the total due) and its `invoice.created` and `invoice.finalized` events in
    billing's outbox, all in one statement: (created, already invoiced before)."""
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
            "tenant_id, plan_id, kind, amount, subtotal, discount, tax, tax_inclusive, total, "
            "amount_due, currency, period_start, period_end, billing_date, status, "
            "finalized_at, discount_id, tax_rate_id) "
            "SELECT gen_random_uuid(), subscription_id, customer_id, tenant_id, plan_id, kind, "
            "coalesce(total, amount), coalesce(subtotal, amount), coalesce(discount, 0), "
            "coalesce(tax, 0), coalesce(tax_inclusive, false), coalesce(total, amount), "
            "coalesce(total, amount), currency, period_start, period_end, :day, 'open', now(), "
            f"discount_id, tax_rate_id FROM {STAGE} "
            # the key holds for the run's invoices, not upgrades' prorations (0026)
            "ON CONFLICT (subscription_id, period_start) WHERE kind <> 'proration' "
            "DO NOTHING RETURNING *), "
            f"lines AS ({LINES}), "
            "uses AS (INSERT INTO billing.discount_uses (discount_id, period_start, invoice_id) "
            "SELECT discount_id, period_start, id FROM made WHERE discount_id IS NOT NULL "
            "ON CONFLICT DO NOTHING), "
            f"created AS ({CREATED}), "
            f"finalized AS ({FINALIZED}) "
            "SELECT count(*) FROM made"
        ),
        {"day": billing_date},
    ).scalar_one()
    conn.execute(text(f"TRUNCATE {STAGE}"))
    return created, staged - created


# Each made invoice's lines: the staged JSON's, or (no JSON: the usual renewal) one line at
# the plan's price, made without building JSON only to read it back.
LINES = (
    "INSERT INTO billing.invoice_lines (id, invoice_id, position, kind, description, plan_id, "
    "amount, tax_amount, period_start, period_end) SELECT gen_random_uuid(), m.id, l.n, "
    "l.kind, l.description, l.plan_id, l.amount, coalesce(l.tax_amount, 0), m.period_start, "
    f"m.period_end FROM made m JOIN {STAGE} s ON s.subscription_id = m.subscription_id "
    "AND s.period_start = m.period_start CROSS JOIN LATERAL (SELECT j.kind, j.description, "
    "j.plan_id, j.amount, j.tax_amount, j.n FROM ROWS FROM (jsonb_to_recordset(s.lines) AS ("
    "kind text, description text, plan_id text, amount bigint, tax_amount bigint)) WITH "
    "ORDINALITY AS j(kind, description, plan_id, amount, tax_amount, n) "
    "WHERE s.lines IS NOT NULL UNION ALL SELECT 'subscription', s.plan_id, s.plan_id, "
    "s.amount::bigint, 0::bigint, 1::bigint WHERE s.lines IS NULL) AS l"
)
_UTC = """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'"""

# The envelope streaming/outbox.py writes (streaming/contracts: invoice.created and
# invoice.finalized, version 2), built set-based. invoice.created's rows are built from the
# made invoices; invoice.finalized's from what that INSERT returned (the same `data`, another
# event id and type), so each finalized row is inserted after its created row and takes a
# later `seq` (the relay's order) without a sort, and `data` is built once per invoice.
# tests/integration/test_billing.py validates what a run writes against the contracts.
CREATED = (
    "INSERT INTO billing.outbox (id, aggregate_type, aggregate_id, type, payload) "
    "SELECT e.event_id, 'invoice', e.key, 'invoice.created', jsonb_build_object("
    "'event_id', e.event_id, 'event_type', 'invoice.created', 'schema_version', 2, "
    f"'occurred_at', to_char(now() AT TIME ZONE 'UTC', {_UTC}), "
    "'producer', 'billing-service', 'key', e.key, 'data', jsonb_build_object("
    "'invoice_id', e.key, 'customer_id', m.customer_id, 'tenant_id', m.tenant_id, "
    "'subscription_id', m.subscription_id::text, 'kind', m.kind, 'status', m.status, "
    "'currency', m.currency, 'total', m.total, 'amount_paid', m.amount_paid, "
    "'amount_due', m.amount_due, 'subtotal', m.subtotal, 'discount', m.discount, 'tax', m.tax, "
    "'tax_inclusive', m.tax_inclusive, "
    f"'period_start', to_char(m.period_start AT TIME ZONE 'UTC', {_UTC}), "
    f"'period_end', to_char(m.period_end AT TIME ZONE 'UTC', {_UTC}))) "
    "FROM made m CROSS JOIN LATERAL (SELECT gen_random_uuid() AS event_id, m.id::text AS key) e "
    "RETURNING aggregate_id, payload"
)
FINALIZED = (
    "INSERT INTO billing.outbox (id, aggregate_type, aggregate_id, type, payload) "
    "SELECT e.event_id, 'invoice', c.aggregate_id, 'invoice.finalized', c.payload || "
    "jsonb_build_object('event_id', e.event_id, 'event_type', 'invoice.finalized') "
    # The lateral subquery refers to `c`, so each row gets an event id of its own, used twice.
    "FROM created c CROSS JOIN LATERAL (SELECT gen_random_uuid() AS event_id, "
    "c.aggregate_id AS key) e"
)
