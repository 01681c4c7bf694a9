"""SQL for the payment schema's refunds (one aggregate; the rest is in repository.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from streaming.outbox import emit
from transactional.payment.repository import (
    SCHEMA,
    get_payment,
    payment_event,
    record_refunded_total,
)


def get_refund_by_key(conn: Connection, idempotency_key: str) -> RowMapping | None:
    return (
        conn.execute(
            text(f"SELECT * FROM {SCHEMA}.refunds WHERE idempotency_key = :k"),
            {"k": idempotency_key},
        )
        .mappings()
        .first()
    )


def reserved_refunds(conn: Connection, payment_id: uuid.UUID) -> int:
    """Money already refunded or being refunded: a new refund must fit beside it."""
    total: int = conn.execute(
        text(
            f"SELECT coalesce(sum(amount), 0) FROM {SCHEMA}.refunds "
            "WHERE payment_id = :p AND status IN ('pending', 'succeeded')"
        ),
        {"p": payment_id},
    ).scalar_one()
    return int(total)


def insert_refund(
    conn: Connection, payment_id: uuid.UUID, idempotency_key: str, fingerprint: str, amount: int
) -> RowMapping:
    return (
        conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.refunds (id, payment_id, idempotency_key, "
                "request_fingerprint, amount) VALUES (:id, :p, :k, :f, :a) RETURNING *"
            ),
            {
                "id": uuid.uuid4(),
                "p": payment_id,
                "k": idempotency_key,
                "f": fingerprint,
                "a": amount,
            },
        )
        .mappings()
        .one()
    )


def get_refund(conn: Connection, refund_id: uuid.UUID, *, lock: bool = False) -> RowMapping | None:
    sql = f"SELECT * FROM {SCHEMA}.refunds WHERE id = :id" + (" FOR UPDATE" if lock else "")
    return conn.execute(text(sql), {"id": refund_id}).mappings().first()


def finish_refund(
    conn: Connection,
    refund_id: uuid.UUID,
    *,
    stripe_refund_id: str | None,
    failure_message: str | None = None,
) -> tuple[RowMapping, RowMapping]:
    """Mark a pending refund done (or failed), update the payment and emit the event."""
    refund = get_refund(conn, refund_id, lock=True)
    assert refund is not None, "callers pass an existing refund"
    payment_id = refund["payment_id"]
    if refund["status"] != "pending":
        payment = get_payment(conn, payment_id)
        assert payment is not None
        return refund, payment
    status = "succeeded" if stripe_refund_id else "failed"
    refund = (
        conn.execute(
            text(
                f"UPDATE {SCHEMA}.refunds SET status = :s, stripe_refund_id = :r, "
                "failure_message = :fm, updated_at = now() WHERE id = :id RETURNING *"
            ),
            {"id": refund_id, "s": status, "r": stripe_refund_id, "fm": failure_message},
        )
        .mappings()
        .one()
    )
    total: int = conn.execute(
        text(
            f"SELECT coalesce(sum(amount), 0) FROM {SCHEMA}.refunds "
            "WHERE payment_id = :p AND status = 'succeeded'"
        ),
        {"p": payment_id},
    ).scalar_one()
    payment = record_refunded_total(conn, payment_id, int(total))
    if status == "succeeded":
        emit(
            conn,
            SCHEMA,
            "payment",
            str(payment_id),
            "payment.refunded",
            payment_event(payment)
            | {
                "refund_id": str(refund_id),
                "refund_amount": refund["amount"],
                "amount_refunded": payment["amount_refunded"],
                "stripe_refund_id": stripe_refund_id,
            },
        )
    return refund, payment


def store_refund_response(
    conn: Connection, refund_id: uuid.UUID, status: int, body: dict[str, Any]
) -> None:
    conn.execute(
        text(
            f"UPDATE {SCHEMA}.refunds SET response_status = :st, response_body = :b "
            "WHERE id = :id AND response_status IS NULL"
        ).bindparams(bindparam("b", type_=JSONB)),
        {"id": refund_id, "st": status, "b": body},
    )
