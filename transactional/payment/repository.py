"""SQL for the payment schema. Functions take a Connection: callers own the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from streaming.outbox import emit
from transactional.payment.models import CardSummary

SCHEMA = "payment"

# Payment statuses only move forward: a late or replayed event can never undo a later
# state (a `payment_failed` that arrives after `succeeded` changes nothing).
RANK = {"pending": 0, "failed": 1, "succeeded": 2, "partially_refunded": 3, "refunded": 4}


def wait_lock(conn: Connection, key: str) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


# -- accounts ----------------------------------------------------------------------------


def get_account(conn: Connection, customer_id: str) -> RowMapping | None:
    return (
        conn.execute(
            text(f"SELECT * FROM {SCHEMA}.accounts WHERE customer_id = :c"), {"c": customer_id}
        )
        .mappings()
        .first()
    )


def insert_account(
    conn: Connection, customer_id: str, tenant_id: str | None, stripe_customer_id: str
) -> RowMapping:
    row = (
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.accounts (customer_id, tenant_id, stripe_customer_id) "
                "VALUES (:c, :t, :s) RETURNING *"
            ),
            {"c": customer_id, "t": tenant_id, "s": stripe_customer_id},
        )
        .mappings()
        .one()
    )
    emit(
        conn,
        SCHEMA,
        "payment_account",
        customer_id,
        "payment.account_created",
        {
            "customer_id": customer_id,
            "tenant_id": tenant_id,
            "stripe_customer_id": stripe_customer_id,
        },
    )
    return row


def set_default_payment_method(
    conn: Connection, customer_id: str, payment_method: str, card: CardSummary | None
) -> RowMapping:
    return (
        conn.execute(
            text(
                f"UPDATE {SCHEMA}.accounts SET default_payment_method = :pm, "
                "card_brand = :brand, card_last4 = :last4, card_exp_month = :month, "
                "card_exp_year = :year, updated_at = now() WHERE customer_id = :c RETURNING *"
            ),
            {
                "c": customer_id,
                "pm": payment_method,
                "brand": card.brand if card else None,
                "last4": card.last4 if card else None,
                "month": card.exp_month if card else None,
                "year": card.exp_year if card else None,
            },
        )
        .mappings()
        .one()
    )


# -- payments ----------------------------------------------------------------------------


def claim_payment(
    conn: Connection,
    *,
    customer_id: str,
    idempotency_key: str,
    fingerprint: str,
    amount: int,
    currency: str,
    description: str | None,
    metadata: dict[str, str],
) -> tuple[RowMapping, bool]:
    """The payment for this key: newly inserted (True) or the one already there (False)."""
    inserted = (
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.payments (id, customer_id, idempotency_key, "
                "request_fingerprint, amount, currency, description, metadata) "
                "VALUES (:id, :c, :k, :f, :a, :cur, :d, :m) "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING *"
            ).bindparams(bindparam("m", type_=JSONB)),
            {
                "id": uuid.uuid4(),
                "c": customer_id,
                "k": idempotency_key,
                "f": fingerprint,
                "a": amount,
                "cur": currency,
                "d": description,
                "m": metadata,
            },
        )
        .mappings()
        .first()
    )
    if inserted is not None:
        return inserted, True
    existing = get_payment_by_key(conn, idempotency_key)
    assert existing is not None, "the conflicting row is committed before ON CONFLICT skips"
    return existing, False


def get_payment_by_key(conn: Connection, idempotency_key: str) -> RowMapping | None:
    return (
        conn.execute(
            text(f"SELECT * FROM {SCHEMA}.payments WHERE idempotency_key = :k"),
            {"k": idempotency_key},
        )
        .mappings()
        .first()
    )


def get_payment(
    conn: Connection, payment_id: uuid.UUID, *, lock: bool = False
) -> RowMapping | None:
    sql = f"SELECT * FROM {SCHEMA}.payments WHERE id = :id" + (" FOR UPDATE" if lock else "")
    return conn.execute(text(sql), {"id": payment_id}).mappings().first()


def find_payment_for_intent(
    conn: Connection, payment_intent_id: str, payment_id: str | None
) -> uuid.UUID | None:
    """By PaymentIntent id, else by the payment id we put in its metadata.

    The second way finds a payment whose request crashed before it stored the id.
    """
    found = conn.execute(
        text(f"SELECT id FROM {SCHEMA}.payments WHERE stripe_payment_intent_id = :pi"),
        {"pi": payment_intent_id},
    ).scalar_one_or_none()
    if found is not None or payment_id is None:
        return found
    try:
        candidate = uuid.UUID(payment_id)
    except ValueError:
        return None
    return conn.execute(
        text(
            f"SELECT id FROM {SCHEMA}.payments WHERE id = :id "
            "AND (stripe_payment_intent_id IS NULL OR stripe_payment_intent_id = :pi)"
        ),
        {"id": candidate, "pi": payment_intent_id},
    ).scalar_one_or_none()


def record_charge(
    conn: Connection,
    payment_id: uuid.UUID,
    status: str,
    payment_intent_id: str | None,
    failure_code: str | None = None,
    decline_code: str | None = None,
    failure_message: str | None = None,
) -> RowMapping:
    """Apply a charge outcome if it moves the payment forward; emit the event if it did."""
    current = get_payment(conn, payment_id, lock=True)
    assert current is not None, "callers pass an existing payment"
    moves = RANK[status] > RANK[current["status"]]
    if not moves and (payment_intent_id is None or current["stripe_payment_intent_id"]):
        return current
    row = (
        conn.execute(
            text(
                f"UPDATE {SCHEMA}.payments SET "
                "stripe_payment_intent_id = coalesce(stripe_payment_intent_id, :pi), "
                "status = CASE WHEN :moves THEN :s ELSE status END, "
                "failure_code = CASE WHEN :moves THEN :fc ELSE failure_code END, "
                "decline_code = CASE WHEN :moves THEN :dc ELSE decline_code END, "
                "failure_message = CASE WHEN :moves THEN :fm ELSE failure_message END, "
                "updated_at = now() WHERE id = :id RETURNING *"
            ),
            {
                "id": payment_id,
                "pi": payment_intent_id,
                "moves": moves,
                "s": status,
                "fc": failure_code if status == "failed" else None,
                "dc": decline_code if status == "failed" else None,
                "fm": failure_message if status == "failed" else None,
            },
        )
        .mappings()
        .one()
    )
    if moves and status in ("succeeded", "failed"):
        data = payment_event(row)
        if status == "failed":
            data |= {
                "failure_code": failure_code,
                "decline_code": decline_code,
                "failure_message": failure_message,
            }
        emit(conn, SCHEMA, "payment", str(payment_id), f"payment.{status}", data)
    return row


def record_refunded_total(conn: Connection, payment_id: uuid.UUID, total: int) -> RowMapping:
    """Raise the refunded amount to `total` (never lower it) and the status with it."""
    current = get_payment(conn, payment_id, lock=True)
    assert current is not None, "callers pass an existing payment"
    refunded = min(max(current["amount_refunded"], total), current["amount"])
    status = "refunded" if refunded >= current["amount"] else "partially_refunded"
    if refunded == 0 or RANK[status] < RANK[current["status"]]:
        status = current["status"]
    if refunded == current["amount_refunded"] and status == current["status"]:
        return current
    return (
        conn.execute(
            text(
                f"UPDATE {SCHEMA}.payments SET amount_refunded = :r, status = :s, "
                "updated_at = now() WHERE id = :id RETURNING *"
            ),
            {"id": payment_id, "r": refunded, "s": status},
        )
        .mappings()
        .one()
    )


def store_payment_response(
    conn: Connection, payment_id: uuid.UUID, status: int, body: dict[str, Any]
) -> None:
    # Only the first answer is kept: that is the one every replay must repeat.
    conn.execute(
        text(
            f"UPDATE {SCHEMA}.payments SET response_status = :st, response_body = :b "
            "WHERE id = :id AND response_status IS NULL"
        ).bindparams(bindparam("b", type_=JSONB)),
        {"id": payment_id, "st": status, "b": body},
    )


def payment_event(row: RowMapping) -> dict[str, Any]:
    return {
        "payment_id": str(row["id"]),
        "customer_id": row["customer_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "stripe_payment_intent_id": row["stripe_payment_intent_id"],
    }


# -- webhooks ----------------------------------------------------------------------------


def record_webhook(
    conn: Connection, source: str, event_id: str, event_type: str, payload: dict[str, Any]
) -> bool:
    """True when this event is new; a redelivery inserts nothing and returns False."""
    inserted = conn.execute(
        text(
            f"INSERT INTO {SCHEMA}.webhook_events (source, event_id, type, payload) "
            "VALUES (:s, :e, :t, :p) ON CONFLICT (source, event_id) DO NOTHING "
            "RETURNING event_id"
        ).bindparams(bindparam("p", type_=JSONB)),
        {"s": source, "e": event_id, "t": event_type, "p": payload},
    ).first()
    return inserted is not None


def mark_webhook_processed(conn: Connection, source: str, event_id: str) -> None:
    conn.execute(
        text(
            f"UPDATE {SCHEMA}.webhook_events SET processed_at = now() "
            "WHERE source = :s AND event_id = :e"
        ),
        {"s": source, "e": event_id},
    )


# -- recovery and reconciliation ---------------------------------------------------------


def stale_pending(conn: Connection, older_than: timedelta, limit: int) -> list[RowMapping]:
    """Payments still pending after `older_than`: their request died or was never retried."""
    return list(
        conn.execute(
            text(
                f"SELECT * FROM {SCHEMA}.payments WHERE status = 'pending' "
                "AND updated_at < now() - :age ORDER BY updated_at LIMIT :n"
            ),
            {"age": older_than, "n": limit},
        ).mappings()
    )


def payments_to_reconcile(
    conn: Connection,
    start: datetime,
    end: datetime,
    intent_ids: list[str],
    payment_ids: list[uuid.UUID],
) -> list[RowMapping]:
    """Payments made in [start, end), and those Stripe's intents of the day point at."""
    return list(
        conn.execute(
            text(
                f"SELECT * FROM {SCHEMA}.payments WHERE (created_at >= :s AND created_at < :e) "
                "OR stripe_payment_intent_id = ANY(:intents) OR id = ANY(:ids)"
            ),
            {"s": start, "e": end, "intents": intent_ids, "ids": payment_ids},
        ).mappings()
    )


def payments_page(
    conn: Connection,
    scope: dict[str, str | None],
    filters: dict[str, str | None],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RowMapping]:
    """Payments newest first. `scope` (tenancy.list_scope) filters on the account's tenant
    or the payment's customer; `filters` narrow within it (each its own parameter)."""
    columns = {"tenant_id": "a.tenant_id", "customer_id": "p.customer_id", "status": "p.status"}
    conditions = [*scope.items()] + [(k, v) for k, v in filters.items() if v is not None]
    where = ["true"] + [f"{columns[k]} = :p{n}" for n, (k, _) in enumerate(conditions)]
    params: dict[str, Any] = {f"p{n}": value for n, (_, value) in enumerate(conditions)}
    params["limit"] = limit
    if after is not None:
        where.append("(p.created_at, p.id) < (:after_ts, :after_id)")
        params.update(after_ts=after[0], after_id=after[1])
    return list(
        conn.execute(
            text(
                f"SELECT p.* FROM {SCHEMA}.payments p "
                f"JOIN {SCHEMA}.accounts a ON a.customer_id = p.customer_id "
                f"WHERE {' AND '.join(where)} ORDER BY p.created_at DESC, p.id DESC LIMIT :limit"
            ),
            params,
        ).mappings()
    )
