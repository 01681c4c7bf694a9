"""The billing schema: the only code in the services that reads or writes it (the Dagster
billing run writes renewal invoices set-based, assets/billing)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, text

from paywall.pricing import Amounts
from streaming.invoice_terms import Terms
from transactional.billing.models import Invoice, InvoiceLine, PaymentAttempt

SCHEMA = "billing"
COLUMNS = (
    "id, tenant_id, customer_id, subscription_id, kind, status, currency, plan_id, "
    "previous_plan_id, period_start, period_end, billing_date, subtotal, discount, tax, total, "
    "amount_paid, amount_due, payment_id, decline_code, created_at, finalized_at, paid_on, "
    "voided_at, attempts, pending_action, request_fingerprint, credit_applied, tax_inclusive, "
    "discount_id, tax_rate_id"
)


def get(conn: Connection, invoice_id: uuid.UUID, lock: bool = False) -> RowMapping | None:
    sql = f"SELECT {COLUMNS} FROM billing.invoices WHERE id = :id"
    return (
        conn.execute(text(sql + (" FOR UPDATE" if lock else "")), {"id": invoice_id})
        .mappings()
        .first()
    )


def by_request_key(conn: Connection, key: str) -> RowMapping | None:
    return (
        conn.execute(
            text(f"SELECT {COLUMNS} FROM billing.invoices WHERE request_key = :k"), {"k": key}
        )
        .mappings()
        .first()
    )


def proration_in_flight(conn: Connection, subscription_id: uuid.UUID) -> RowMapping | None:
    """The subscription's proration invoice not yet settled or not yet applied, locked."""
    return (
        conn.execute(
            text(
                f"SELECT {COLUMNS} FROM billing.invoices WHERE subscription_id = :s "
                "AND kind = 'proration' AND (status IN ('draft', 'open') "
                "OR pending_action IS NOT NULL) FOR UPDATE"
            ),
            {"s": subscription_id},
        )
        .mappings()
        .first()
    )


def full(conn: Connection, row: RowMapping) -> Invoice:
    """The invoice as the API shows it: with its lines and payment attempts."""
    return many(conn, [row])[0]


def many(conn: Connection, rows: list[RowMapping]) -> list[Invoice]:
    """Invoices with their lines and attempts: two queries for the whole page."""
    ids = [r["id"] for r in rows]
    lines: dict[uuid.UUID, list[InvoiceLine]] = {i: [] for i in ids}
    attempts: dict[uuid.UUID, list[PaymentAttempt]] = {i: [] for i in ids}
    for line in conn.execute(
        text(
            "SELECT invoice_id, id, kind, description, plan_id, amount, tax_amount, "
            "period_start, period_end FROM billing.invoice_lines WHERE invoice_id = ANY(:ids) "
            "ORDER BY invoice_id, position"
        ),
        {"ids": ids},
    ).mappings():
        lines[line["invoice_id"]].append(InvoiceLine.model_validate(dict(line)))
    for attempt in conn.execute(
        text(
            "SELECT invoice_id, attempt, attempted_on, status, payment_id, decline_code, "
            "created_at, finished_at FROM billing.attempts WHERE invoice_id = ANY(:ids) "
            "ORDER BY invoice_id, attempt"
        ),
        {"ids": ids},
    ).mappings():
        attempts[attempt["invoice_id"]].append(PaymentAttempt.model_validate(dict(attempt)))
    return [
        Invoice.model_validate(
            {**r, "lines": lines[r["id"]], "payment_attempts": attempts[r["id"]]}
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Filters:
    customer_id: str | None = None
    subscription_id: uuid.UUID | None = None
    status: str | None = None
    period_from: datetime | None = None  # periods that end after this
    period_to: datetime | None = None  # periods that start before this


def page(
    conn: Connection,
    scope: dict[str, Any],
    filters: Filters,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RowMapping]:
    """Invoices newest first; `scope` is the tenancy filter ({} for an internal caller,
    else a tenant_id or a customer_id)."""
    where: list[str] = ["true"]
    params: dict[str, Any] = {"limit": limit}
    # The scope and the filters may name the same column (a user filtering by customer):
    # each gets its own parameter, so a filter can only narrow what the scope allows. A
    # scope value is always applied (None matches nothing); a filter only when given.
    conditions = [*scope.items()] + [
        (column, value)
        for column, value in (
            ("customer_id", filters.customer_id),
            ("subscription_id", filters.subscription_id),
            ("status", filters.status),
        )
        if value is not None
    ]
    for n, (column, value) in enumerate(conditions):
        where.append(f"{column} = :p{n}")
        params[f"p{n}"] = value
    if filters.period_from is not None:
        where.append("period_end > :period_from")
        params["period_from"] = filters.period_from
    if filters.period_to is not None:
        where.append("period_start < :period_to")
        params["period_to"] = filters.period_to
    if after is not None:
        where.append("(created_at, id) < (:after_ts, :after_id)")
        params.update(after_ts=after[0], after_id=after[1])
    return list(
        conn.execute(
            text(
                f"SELECT {COLUMNS} FROM billing.invoices WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, id DESC LIMIT :limit"
            ),
            params,
        ).mappings()
    )


def insert_proration(
    conn: Connection,
    *,
    request_key: str,
    fingerprint: str,
    subscription_id: uuid.UUID,
    customer_id: str,
    tenant_id: str | None,
    currency: str,
    plan_id: str,
    previous_plan_id: str,
    period_start: datetime,
    period_end: datetime,
    lines: list[dict[str, Any]],
    amounts: Amounts,
    terms: Terms,
) -> RowMapping | None:
    """An open (finalized) proration invoice with its lines (discount and tax included,
    `amounts` from paywall/pricing.py); None when the subscription already has one in
    flight (the partial unique index) or the key was used."""
    invoice_id = uuid.uuid4()
    row = (
        conn.execute(
            text(
                "INSERT INTO billing.invoices (id, subscription_id, customer_id, tenant_id, "
                "plan_id, previous_plan_id, kind, amount, subtotal, discount, tax, tax_inclusive, "
                "total, amount_due, currency, period_start, period_end, billing_date, status, "
                "finalized_at, request_key, request_fingerprint, discount_id, tax_rate_id) "
                "VALUES (:id, :sub, :customer, :tenant, :plan, :previous, 'proration', :total, "
                ":subtotal, :discount, :tax, :inclusive, :total, :total, :currency, :start, :end, "
                ":day, 'open', now(), :key, :fingerprint, :discount_id, :tax_rate_id) "
                "ON CONFLICT DO NOTHING "
                f"RETURNING {COLUMNS}"
            ),
            {
                "id": invoice_id,
                "sub": subscription_id,
                "customer": customer_id,
                "tenant": tenant_id,
                "plan": plan_id,
                "previous": previous_plan_id,
                "total": amounts.total,
                "subtotal": amounts.subtotal,
                "discount": amounts.discount,
                "tax": amounts.tax,
                "inclusive": amounts.inclusive,
                "discount_id": terms.discount_id if amounts.discount else None,
                "tax_rate_id": terms.tax_rate_id,
                "currency": currency,
                "start": period_start,
                "end": period_end,
                "day": datetime.now(UTC).date(),
                "key": request_key,
                "fingerprint": fingerprint,
            },
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    insert_lines(conn, invoice_id, lines)
    return row


def insert_lines(conn: Connection, invoice_id: uuid.UUID, lines: list[dict[str, Any]]) -> None:
    for position, line in enumerate(lines, start=1):
        conn.execute(
            text(
                "INSERT INTO billing.invoice_lines (id, invoice_id, position, kind, description, "
                "plan_id, amount, tax_amount, period_start, period_end) VALUES "
                "(gen_random_uuid(), :i, :p, :kind, :description, :plan_id, :amount, "
                ":tax_amount, :period_start, :period_end)"
            ),
            {"i": invoice_id, "p": position, **line},
        )


def insert_first_period(
    conn: Connection,
    *,
    request_key: str,
    fingerprint: str,
    subscription_id: uuid.UUID,
    customer_id: str,
    tenant_id: str | None,
    currency: str,
    plan_id: str,
    period_start: datetime,
    period_end: datetime,
    payment_id: str,
    lines: list[dict[str, Any]],
    amounts: Amounts,
    terms: Terms,
) -> RowMapping | None:
    """A signup's first-period invoice, paid by the charge `payment_id` already made (so
    nothing is left for anyone to do: no pending action, nothing due); None when the
    subscription's first period already has an invoice (the unique key of invoices per
    subscription and period) or the key was used."""
    invoice_id = uuid.uuid4()
    row = (
        conn.execute(
            text(
                "INSERT INTO billing.invoices (id, subscription_id, customer_id, tenant_id, "
                "plan_id, kind, amount, subtotal, discount, tax, tax_inclusive, total, "
                "amount_paid, amount_due, currency, period_start, period_end, billing_date, "
                "status, finalized_at, paid_on, payment_id, request_key, request_fingerprint, "
                "discount_id, tax_rate_id) "
                "VALUES (:id, :sub, :customer, :tenant, :plan, 'first_period', :total, "
                ":subtotal, :discount, :tax, :inclusive, :total, :total, 0, :currency, :start, "
                ":end, :day, 'paid', now(), :day, :payment, :key, :fingerprint, :discount_id, "
                ":tax_rate_id) ON CONFLICT DO NOTHING "
                f"RETURNING {COLUMNS}"
            ),
            {
                "id": invoice_id,
                "sub": subscription_id,
                "customer": customer_id,
                "tenant": tenant_id,
                "plan": plan_id,
                "total": amounts.total,
                "subtotal": amounts.subtotal,
                "discount": amounts.discount,
                "tax": amounts.tax,
                "inclusive": amounts.inclusive,
                "discount_id": terms.discount_id if amounts.discount else None,
                "tax_rate_id": terms.tax_rate_id,
                "currency": currency,
                "start": period_start,
                "end": period_end,
                "day": today(),
                "payment": payment_id,
                "key": request_key,
                "fingerprint": fingerprint,
            },
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    insert_lines(conn, invoice_id, lines)
    return row


def live_invoice_of_period(
    conn: Connection, subscription_id: uuid.UUID, period_start: datetime
) -> RowMapping | None:
    """The invoice (not a proration) holding the subscription's period from `period_start`."""
    return (
        conn.execute(
            text(
                f"SELECT {COLUMNS} FROM billing.invoices WHERE subscription_id = :s "
                "AND period_start = :p AND kind <> 'proration'"
            ),
            {"s": subscription_id, "p": period_start},
        )
        .mappings()
        .first()
    )


def record_paid_attempt(
    conn: Connection, invoice_id: uuid.UUID, idempotency_key: str, payment_id: str
) -> None:
    """The charge someone else made for the invoice (the signup's), as its one attempt."""
    conn.execute(
        text(
            "INSERT INTO billing.attempts (invoice_id, attempt, attempted_on, idempotency_key, "
            "status, payment_id, finished_at) VALUES (:i, 1, :d, :k, 'succeeded', :p, now()) "
            "ON CONFLICT DO NOTHING"
        ),
        {"i": invoice_id, "d": today(), "k": idempotency_key, "p": payment_id},
    )
    conn.execute(text("UPDATE billing.invoices SET attempts = 1 WHERE id = :i"), {"i": invoice_id})


# -- charge attempts -------------------------------------------------------------------------


def open_attempt(
    conn: Connection,
    invoice: RowMapping,
    key_of: Callable[[uuid.UUID, int], str],
    request_key: str | None,
) -> tuple[int, str]:
    """The attempt to (re)ask the payment service about: one still pending (its outcome
    never recorded), else a new one. Its key is read back from the row, whoever wrote it
    (a billing run or this service), so two callers of one attempt send one key."""
    pending = conn.execute(
        text(
            "SELECT attempt, idempotency_key FROM billing.attempts WHERE invoice_id = :i "
            "AND status = 'pending' ORDER BY attempt DESC LIMIT 1"
        ),
        {"i": invoice["id"]},
    ).first()
    if pending is not None:
        return int(pending[0]), str(pending[1])
    attempt = int(invoice["attempts"]) + 1
    conn.execute(
        text(
            "INSERT INTO billing.attempts (invoice_id, attempt, attempted_on, idempotency_key, "
            "request_key) VALUES (:i, :a, :d, :k, :r) ON CONFLICT DO NOTHING"
        ),
        {
            "i": invoice["id"],
            "a": attempt,
            "d": datetime.now(UTC).date(),
            "k": key_of(invoice["id"], attempt),
            "r": request_key,
        },
    )
    key: str = conn.execute(
        text("SELECT idempotency_key FROM billing.attempts WHERE invoice_id = :i AND attempt = :a"),
        {"i": invoice["id"], "a": attempt},
    ).scalar_one()
    return attempt, key


def attempt_by_request_key(conn: Connection, request_key: str) -> RowMapping | None:
    return (
        conn.execute(
            text("SELECT invoice_id, attempt, status FROM billing.attempts WHERE request_key = :r"),
            {"r": request_key},
        )
        .mappings()
        .first()
    )


def attempt_status(conn: Connection, invoice_id: uuid.UUID, attempt: int) -> str | None:
    found: str | None = conn.execute(
        text("SELECT status FROM billing.attempts WHERE invoice_id = :i AND attempt = :a"),
        {"i": invoice_id, "a": attempt},
    ).scalar()
    return found


def finish_attempt(
    conn: Connection,
    invoice_id: uuid.UUID,
    attempt: int,
    status: str,
    payment_id: str | None,
    decline_code: str | None,
) -> None:
    conn.execute(
        text(
            "UPDATE billing.attempts SET status = :s, payment_id = :p, decline_code = :c, "
            "finished_at = now() WHERE invoice_id = :i AND attempt = :a"
        ),
        {"s": status, "p": payment_id, "c": decline_code, "i": invoice_id, "a": attempt},
    )


def update(conn: Connection, invoice_id: uuid.UUID, **changes: Any) -> RowMapping:
    sets = ", ".join(f"{column} = :{column}" for column in changes)
    row: RowMapping = (
        conn.execute(
            text(
                f"UPDATE billing.invoices SET {sets}, updated_at = now() WHERE id = :id "
                f"RETURNING {COLUMNS}"
            ),
            {**changes, "id": invoice_id},
        )
        .mappings()
        .one()
    )
    return row


def end_dunning(conn: Connection, invoice_id: uuid.UUID, status: str) -> None:
    conn.execute(
        text(
            "UPDATE billing.dunning SET status = :s, next_attempt_on = NULL, updated_at = now() "
            "WHERE invoice_id = :i AND status = 'retrying'"
        ),
        {"s": status, "i": invoice_id},
    )


def dunning_status(conn: Connection, invoice_id: uuid.UUID) -> str | None:
    """retrying, recovered, exhausted or abandoned; None for an invoice never in dunning."""
    found: str | None = conn.execute(
        text("SELECT status FROM billing.dunning WHERE invoice_id = :i"), {"i": invoice_id}
    ).scalar()
    return found


def in_dunning(conn: Connection, invoice_id: uuid.UUID) -> bool:
    return bool(
        conn.execute(
            text("SELECT 1 FROM billing.dunning WHERE invoice_id = :i"), {"i": invoice_id}
        ).first()
    )


# -- the recovery sweep ------------------------------------------------------------------


def stale_prorations(conn: Connection, older_than: timedelta, limit: int) -> list[RowMapping]:
    """Proration invoices whose request stopped: still open, or paid but not yet applied."""
    return list(
        conn.execute(
            text(
                f"SELECT {COLUMNS} FROM billing.invoices WHERE kind = 'proration' "
                "AND (status = 'open' OR pending_action = 'apply_upgrade') "
                "AND updated_at < :before ORDER BY updated_at LIMIT :limit"
            ),
            {"before": datetime.now(UTC) - older_than, "limit": limit},
        ).mappings()
    )


def today() -> date:
    return datetime.now(UTC).date()


def now() -> datetime:
    return datetime.now(UTC)


def charge_in_flight(conn: Connection, invoice_id: uuid.UUID) -> bool:
    return bool(
        conn.execute(
            text("SELECT 1 FROM billing.attempts WHERE invoice_id = :i AND status = 'pending'"),
            {"i": invoice_id},
        ).first()
    )


def attempt_key(conn: Connection, invoice_id: uuid.UUID, attempt: int) -> str:
    key: str = conn.execute(
        text("SELECT idempotency_key FROM billing.attempts WHERE invoice_id = :i AND attempt = :a"),
        {"i": invoice_id, "a": attempt},
    ).scalar_one()
    return key
