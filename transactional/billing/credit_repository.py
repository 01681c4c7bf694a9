"""SQL for credit notes and the customer balance ledger (billing schema)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, text

from transactional.billing.credit_models import CreditNote, CreditNoteLine

NOTE_COLUMNS = (
    "id, invoice_id, customer_id, tenant_id, currency, amount, reason, memo, settlement, "
    "origin, status, refund_key, refund_id, failure, request_key, request_fingerprint, "
    "created_at, updated_at, issued_at, pending_action"
)


def get(conn: Connection, note_id: uuid.UUID, lock: bool = False) -> RowMapping | None:
    sql = f"SELECT {NOTE_COLUMNS} FROM billing.credit_notes WHERE id = :id"
    return (
        conn.execute(text(sql + (" FOR UPDATE" if lock else "")), {"id": note_id})
        .mappings()
        .first()
    )


def by_request_key(conn: Connection, key: str) -> RowMapping | None:
    return (
        conn.execute(
            text(f"SELECT {NOTE_COLUMNS} FROM billing.credit_notes WHERE request_key = :k"),
            {"k": key},
        )
        .mappings()
        .first()
    )


def credited(conn: Connection, invoice_id: uuid.UUID) -> tuple[int, int]:
    """What the invoice's notes gave back or are giving back (pending counts: its refund
    may have happened): (all of it, the part refunded to the card)."""
    row = conn.execute(
        text(
            "SELECT coalesce(sum(amount), 0), "
            "coalesce(sum(amount) FILTER (WHERE settlement = 'refund'), 0) "
            "FROM billing.credit_notes WHERE invoice_id = :i AND status IN ('pending', 'issued')"
        ),
        {"i": invoice_id},
    ).one()
    return int(row[0]), int(row[1])


def line_credits(conn: Connection, invoice_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """What earlier notes credited of each invoice line."""
    rows = conn.execute(
        text(
            "SELECT l.invoice_line_id, sum(l.amount) FROM billing.credit_note_lines l "
            "JOIN billing.credit_notes n ON n.id = l.credit_note_id WHERE n.invoice_id = :i "
            "AND n.status IN ('pending', 'issued') AND l.invoice_line_id IS NOT NULL "
            "GROUP BY l.invoice_line_id"
        ),
        {"i": invoice_id},
    ).all()
    return {r[0]: int(r[1]) for r in rows}


def invoice_lines(conn: Connection, invoice_id: uuid.UUID) -> dict[uuid.UUID, RowMapping]:
    rows = conn.execute(
        text("SELECT id, description, amount FROM billing.invoice_lines WHERE invoice_id = :i"),
        {"i": invoice_id},
    ).mappings()
    return {r["id"]: r for r in rows}


def insert(
    conn: Connection, invoice: RowMapping, lines: list[dict[str, Any]], **fields: Any
) -> RowMapping:
    """A credit note of `invoice` with its lines; `fields` are the note's own columns."""
    note_id = uuid.uuid4()
    row: RowMapping = (
        conn.execute(
            text(
                "INSERT INTO billing.credit_notes (id, invoice_id, customer_id, tenant_id, "
                "currency, amount, reason, memo, settlement, origin, status, refund_key, "
                "request_key, request_fingerprint, issued_at) VALUES (:id, :invoice, :customer, "
                ":tenant, :currency, :amount, :reason, :memo, :settlement, :origin, :status, "
                ":refund_key, :request_key, :request_fingerprint, "
                "CASE WHEN :status = 'issued' THEN now() END) "
                f"RETURNING {NOTE_COLUMNS}"
            ),
            {
                "id": note_id,
                "invoice": invoice["id"],
                "customer": invoice["customer_id"],
                "tenant": invoice["tenant_id"],
                "currency": invoice["currency"],
                # A refund is asked under a key naming the note: one refund per note.
                "refund_key": f"credit_note:{note_id}"
                if fields["settlement"] == "refund"
                else None,
                **fields,
            },
        )
        .mappings()
        .one()
    )
    for position, line in enumerate(lines, start=1):
        conn.execute(
            text(
                "INSERT INTO billing.credit_note_lines (credit_note_id, position, "
                "invoice_line_id, description, amount) VALUES (:n, :p, :l, :d, :a)"
            ),
            {
                "n": note_id,
                "p": position,
                "l": line.get("invoice_line_id"),
                "d": line["description"],
                "a": line["amount"],
            },
        )
    return row


def finish(conn: Connection, note_id: uuid.UUID, **changes: Any) -> RowMapping:
    sets = ", ".join(f"{column} = :{column}" for column in changes)
    row: RowMapping = (
        conn.execute(
            text(
                f"UPDATE billing.credit_notes SET {sets}, updated_at = now(), "
                "issued_at = CASE WHEN :status = 'issued' THEN now() END "
                f"WHERE id = :id RETURNING {NOTE_COLUMNS}"
            ),
            {**changes, "id": note_id},
        )
        .mappings()
        .one()
    )
    return row


def grant(conn: Connection, note: RowMapping) -> None:
    """The note's amount as customer credit (once: the ledger is unique per note)."""
    conn.execute(
        text(
            "INSERT INTO billing.customer_balance (id, customer_id, tenant_id, currency, amount, "
            "credit_note_id) VALUES (:id, :c, :t, :cur, :a, :n) ON CONFLICT DO NOTHING"
        ),
        {
            "id": uuid.uuid4(),
            "c": note["customer_id"],
            "t": note["tenant_id"],
            "cur": note["currency"],
            "a": note["amount"],
            "n": note["id"],
        },
    )


def full(conn: Connection, rows: list[RowMapping]) -> list[CreditNote]:
    ids = [r["id"] for r in rows]
    lines: dict[uuid.UUID, list[CreditNoteLine]] = {i: [] for i in ids}
    for line in conn.execute(
        text(
            "SELECT credit_note_id, invoice_line_id, description, amount "
            "FROM billing.credit_note_lines WHERE credit_note_id = ANY(:ids) "
            "ORDER BY credit_note_id, position"
        ),
        {"ids": ids},
    ).mappings():
        lines[line["credit_note_id"]].append(CreditNoteLine.model_validate(dict(line)))
    return [CreditNote.model_validate({**r, "lines": lines[r["id"]]}) for r in rows]


def page(
    conn: Connection,
    scope: dict[str, Any],
    filters: dict[str, Any],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RowMapping]:
    """Credit notes newest first; `scope` is the tenancy filter, as for invoices (each
    condition its own parameter, so a filter only narrows what the scope allows)."""
    where = ["true"]
    params: dict[str, Any] = {"limit": limit}
    conditions = [*scope.items()] + [(c, v) for c, v in filters.items() if v is not None]
    for n, (column, value) in enumerate(conditions):
        where.append(f"{column} = :p{n}")
        params[f"p{n}"] = value
    if after is not None:
        where.append("(created_at, id) < (:after_ts, :after_id)")
        params.update(after_ts=after[0], after_id=after[1])
    return list(
        conn.execute(
            text(
                f"SELECT {NOTE_COLUMNS} FROM billing.credit_notes WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, id DESC LIMIT :limit"
            ),
            params,
        ).mappings()
    )


def customer_tenant(conn: Connection, customer_id: str) -> tuple[bool, str | None]:
    """(billing knows the customer, its tenant), from its invoices."""
    row = conn.execute(
        text("SELECT tenant_id FROM billing.invoices WHERE customer_id = :c LIMIT 1"),
        {"c": customer_id},
    ).first()
    return (row is not None, row[0] if row is not None else None)


def balances(conn: Connection, customer_id: str) -> dict[str, int]:
    rows = conn.execute(
        text(
            "SELECT currency, sum(amount) FROM billing.customer_balance WHERE customer_id = :c "
            "GROUP BY currency ORDER BY currency"
        ),
        {"c": customer_id},
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}


def stale_pending(conn: Connection, older_than: timedelta, limit: int) -> list[RowMapping]:
    return list(
        conn.execute(
            text(
                f"SELECT {NOTE_COLUMNS} FROM billing.credit_notes WHERE status = 'pending' "
                "AND updated_at < now() - :age ORDER BY updated_at LIMIT :limit"
            ),
            {"age": older_than, "limit": limit},
        ).mappings()
    )


def paid_period_invoice(
    conn: Connection, subscription_id: uuid.UUID, period_start: datetime
) -> RowMapping | None:
    """The paid invoice of the subscription's period starting at `period_start`, locked."""
    return (
        conn.execute(
            text(
                "SELECT id FROM billing.invoices WHERE subscription_id = :s "
                "AND period_start = :p AND kind <> 'proration' AND status = 'paid' "
                "ORDER BY created_at DESC LIMIT 1"
            ),
            {"s": subscription_id, "p": period_start},
        )
        .mappings()
        .first()
    )


def set_pending_action(conn: Connection, note_id: uuid.UUID, action: str | None) -> None:
    conn.execute(
        text("UPDATE billing.credit_notes SET pending_action = :a WHERE id = :id"),
        {"a": action, "id": note_id},
    )


def unconfirmed_cancellations(
    conn: Connection, older_than: timedelta, limit: int
) -> list[RowMapping]:
    """Prorated cancellations' notes whose subscription is not yet known canceled, with
    the subscription they are for."""
    return list(
        conn.execute(
            text(
                "SELECT n.id, i.subscription_id FROM billing.credit_notes n "
                "JOIN billing.invoices i ON i.id = n.invoice_id "
                "WHERE n.pending_action = 'cancel_subscription' AND n.status <> 'pending' "
                "AND n.updated_at < now() - :age ORDER BY n.updated_at LIMIT :limit"
            ),
            {"age": older_than, "limit": limit},
        ).mappings()
    )
