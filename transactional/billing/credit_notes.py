"""Credit notes: money given back on a paid invoice, refunded to the card or kept as
customer credit, never more than the invoice brought in.

A refund is made in two steps, like a charge (collect.py): the note is committed
`pending` under the request's Idempotency-Key (unique) with its own refund key
(`credit_note:<id>`), then the payment service is asked to refund under that key and the
outcome is booked under the note's row lock, once. A lost answer, a crash or the payment
service down leaves the note `pending` (its amount still counts against the invoice);
whoever comes next, the client's retry with the same key or the recovery sweep
(`POST /v1/operations/invoice-recovery`), asks again under the same key, and the payment
service answers what it made of the first request instead of refunding again. A note
kept as customer credit is issued at once, with its ledger row.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping

from paywall.logs import get_logger
from paywall.service_client import ServiceClient, ServiceError
from streaming import outbox
from transactional.billing import credit_repository as cr
from transactional.billing import repository as repo
from transactional.billing.credit_models import (
    CreditNote,
    CreditNoteCreate,
    CreditNotePage,
    CreditNoteSweep,
)
from transactional.common import errors, idempotency, pagination, tenancy
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer
from transactional.common.security import Principal

log = get_logger(__name__)
# What the payment service answers when it refuses a refund for good (nothing refunded).
REFUSALS = {
    errors.NOT_REFUNDABLE.uri,
    errors.REFUND_EXCEEDS_PAYMENT.uri,
    errors.REFUND_REJECTED.uri,
}


def create(
    engine: Engine,
    payments: ServiceClient,
    principal: Principal,
    invoice_id: uuid.UUID,
    key: str,
    body: CreditNoteCreate,
) -> Answer:
    scoped = idempotency.scoped(principal, key)
    asked = idempotency.fingerprint({"invoice_id": str(invoice_id), **body.model_dump(mode="json")})
    # Held to the end: a second request with the key waits (409) instead of refunding too.
    with idempotency.held(engine, scoped):
        with engine.begin() as conn:
            note = cr.by_request_key(conn, scoped)
            replayed = note is not None
            if note is not None:
                idempotency.check_same(note["request_fingerprint"], asked)
            else:
                invoice = repo.get(conn, invoice_id, lock=True)
                if invoice is None or not tenancy.owns(
                    principal, invoice["customer_id"], invoice["tenant_id"]
                ):
                    raise tenancy.not_found("invoice", invoice_id)
                amount, lines = _asked(conn, invoice, body)
                note = issue(
                    conn,
                    invoice,
                    amount,
                    lines,
                    settlement=body.settlement,
                    reason=body.reason,
                    memo=body.memo,
                    origin="api",
                    request_key=scoped,
                    request_fingerprint=asked,
                )
        note = settle(engine, payments, note)
        return answer(engine, note, f"/v1/invoices/{invoice_id}/credit_notes", replayed)


def _asked(
    conn: Connection, invoice: RowMapping, body: CreditNoteCreate
) -> tuple[int, list[dict[str, Any]]]:
    """The amount and lines a request asks for, checked against each line's remainder."""
    if body.lines is None:
        amount = body.amount if body.amount is not None else creditable(conn, invoice)
        return amount, [{"description": f"Credit on invoice {invoice['id']}", "amount": amount}]
    known = cr.invoice_lines(conn, invoice["id"])
    earlier = cr.line_credits(conn, invoice["id"])
    lines: list[dict[str, Any]] = []
    for asked in body.lines:
        line = known.get(asked.invoice_line_id)
        if line is None:
            raise DomainError(
                errors.VALIDATION, f"invoice line {asked.invoice_line_id} is not on this invoice"
            )
        left = (
            line["amount"]
            - earlier.get(line["id"], 0)
            - sum(x["amount"] for x in lines if x["invoice_line_id"] == line["id"])
        )
        if asked.amount > left:
            raise DomainError(
                errors.CREDIT_EXCEEDS_INVOICE,
                f"at most {max(left, 0)} {invoice['currency']} of line {line['id']} "
                "can still be credited",
                creditable=max(left, 0),
            )
        lines.append(
            {
                "invoice_line_id": line["id"],
                "description": line["description"],
                "amount": asked.amount,
            }
        )
    return sum(x["amount"] for x in lines), lines


def creditable(conn: Connection, invoice: RowMapping) -> int:
    """What the invoice brought in (charged plus customer credit it consumed) less what
    its notes gave back or are giving back."""
    given, _ = cr.credited(conn, invoice["id"])
    return int(invoice["amount_paid"]) + int(invoice["credit_applied"]) - given


def issue(
    conn: Connection,
    invoice: RowMapping,
    amount: int,
    lines: list[dict[str, Any]],
    **fields: Any,
) -> RowMapping:
    """A new note on `invoice` (locked by the caller): checked against what is left,
    `pending` when refunded (settle() asks), issued with its ledger row when kept."""
    if invoice["status"] != "paid":
        raise DomainError(
            errors.INVOICE_STATE,
            f"a {invoice['status']} invoice cannot be credited; only a paid one",
            status_now=invoice["status"],
        )
    left = creditable(conn, invoice)
    if amount <= 0 or amount > left:
        raise DomainError(
            errors.CREDIT_EXCEEDS_INVOICE,
            f"at most {max(left, 0)} {invoice['currency']} of this invoice can still be credited",
            creditable=max(left, 0),
        )
    if fields["settlement"] == "refund":
        _, refunded = cr.credited(conn, invoice["id"])
        refundable = int(invoice["amount_paid"]) - refunded
        if not charged(invoice):
            raise DomainError(
                errors.NOT_REFUNDABLE,
                "nothing was charged to a card for this invoice; keep the credit as "
                "customer_balance instead",
            )
        if amount > refundable:
            raise DomainError(
                errors.CREDIT_EXCEEDS_INVOICE,
                f"at most {max(refundable, 0)} {invoice['currency']} can still be refunded "
                "to the card; keep the rest as customer_balance",
                creditable=max(refundable, 0),
            )
    status = "pending" if fields["settlement"] == "refund" else "issued"
    note = cr.insert(conn, invoice, lines, amount=amount, status=status, **fields)
    if status == "issued":
        cr.grant(conn, note)
        _created(conn, note, invoice)
    return note


def charged(invoice: RowMapping) -> bool:
    payment_id = invoice["payment_id"]
    return bool(payment_id) and not str(payment_id).startswith("free:")


def settle(engine: Engine, payments: ServiceClient, note: RowMapping) -> RowMapping:
    """Ask the payment service to refund a pending note (again, under its one key) and
    book what it says; a note not pending is answered as it is."""
    if note["status"] != "pending":
        return note
    with engine.connect() as conn:
        invoice = repo.get(conn, note["invoice_id"])
    assert invoice is not None
    try:
        status, reply = payments.call(
            "POST",
            f"/v1/payments/{invoice['payment_id']}/refunds",
            json={"amount": note["amount"]},
            idempotency_key=note["refund_key"],
        )
    except ServiceError:
        status, reply = 503, {}
    with engine.begin() as conn:
        current = cr.get(conn, note["id"], lock=True)
        assert current is not None
        if current["status"] != "pending":
            return current
        if status == 201:
            issued = cr.finish(conn, note["id"], status="issued", refund_id=str(reply["id"]))
            _created(conn, issued, invoice)
            return issued
        if status == 422 and reply.get("type") in REFUSALS:
            log.warning("billing.credit_note_refund_refused", credit_note_id=str(note["id"]))
            return cr.finish(conn, note["id"], status="void", failure=str(reply.get("detail")))
    # 409 (in flight), 5xx, no answer: not known yet; the next asker asks again.
    log.warning("billing.credit_note_refund_unknown", credit_note_id=str(note["id"]), status=status)
    return current


def _created(conn: Connection, note: RowMapping, invoice: RowMapping) -> None:
    refunded = note["amount"] if note["settlement"] == "refund" else 0
    outbox.emit(
        conn,
        "billing",
        "credit_note",
        str(note["id"]),
        "credit_note.created",
        {
            "credit_note_id": str(note["id"]),
            "invoice_id": str(note["invoice_id"]),
            "customer_id": note["customer_id"],
            "tenant_id": note["tenant_id"],
            "subscription_id": str(invoice["subscription_id"]),
            "currency": note["currency"],
            "amount": note["amount"],
            "refunded_amount": refunded,
            "credited_amount": note["amount"] - refunded,
            "settlement": note["settlement"],
            "origin": note["origin"],
            "reason": note["reason"],
            "refund_id": note["refund_id"],
        },
    )


def answer(engine: Engine, note: RowMapping, instance: str, replayed: bool = False) -> Answer:
    """Issued: 201 with the note. Refund refused (void): 422. Not known yet: 503, retry."""
    with engine.connect() as conn:
        body = cr.full(conn, [note])[0].model_dump(mode="json")
    if note["status"] == "issued":
        return Answer(201, body, replayed=replayed)
    if note["status"] == "void":
        refused = DomainError(
            errors.REFUND_REJECTED,
            note["failure"] or "the refund was refused",
            credit_note=body,
        )
        return Answer(422, refused.body(instance), replayed=replayed)
    raise DomainError(
        errors.DEPENDENCY_UNAVAILABLE,
        "the refund's outcome is not known yet; retry with the same Idempotency-Key",
        headers={"Retry-After": "2"},
        dependency="payment-service",
        credit_note_id=str(note["id"]),
    )


def get(engine: Engine, principal: Principal, note_id: uuid.UUID) -> CreditNote:
    with engine.connect() as conn:
        note = cr.get(conn, note_id)
        if note is None or not tenancy.owns(principal, note["customer_id"], note["tenant_id"]):
            raise tenancy.not_found("credit note", note_id)
        return cr.full(conn, [note])[0]


def recover(
    engine: Engine,
    payments: ServiceClient,
    subscriptions: ServiceClient,
    older_than: timedelta,
    limit: int,
) -> CreditNoteSweep:
    """Finish notes whose refund outcome nobody came back for (ask again under their key),
    then make sure each prorated cancellation's subscription is canceled."""
    report = CreditNoteSweep()
    with engine.connect() as conn:
        stale = cr.stale_pending(conn, older_than, limit)
    for note in stale:
        report.examined += 1
        done = settle(engine, payments, note)
        report.issued += done["status"] == "issued"
        report.voided += done["status"] == "void"
        report.still_pending += done["status"] == "pending"
    with engine.connect() as conn:
        unconfirmed = cr.unconfirmed_cancellations(conn, older_than, limit)
    for note in unconfirmed:
        report.examined += 1
        if _canceled(subscriptions, note["subscription_id"]):
            report.cancellations_confirmed += 1
            with engine.begin() as conn:
                cr.set_pending_action(conn, note["id"], None)
        else:
            report.errors += 1
    if report.examined:
        log.info("billing.credit_note_recovery", **report.model_dump())
    return report


def _canceled(subscriptions: ServiceClient, subscription_id: uuid.UUID) -> bool:
    """True once the subscription is canceled: refunded for its unused time, it must not
    stay live because the subscription service's commit was lost after the refund."""
    try:
        status, sub = subscriptions.call("GET", f"/v1/subscriptions/{subscription_id}")
        if status == 200 and sub.get("status") in ("canceled", "expired"):
            return True
        if status != 200:
            return False
        status, _ = subscriptions.call(
            "POST", f"/v1/subscriptions/{subscription_id}/cancel", json={"at_period_end": False}
        )
    except ServiceError:
        return False
    return status == 200


def listed(
    engine: Engine,
    principal: Principal,
    filters: dict[str, Any],
    limit: int,
    cursor: str | None,
) -> CreditNotePage:
    """The caller's credit notes, newest first, under the same tenancy rule as invoices."""
    after = pagination.decode_cursor(cursor)
    with engine.connect() as conn:
        rows = cr.page(conn, tenancy.list_scope(principal), filters, after, limit + 1)
        data = cr.full(conn, rows[:limit])
    last = rows[limit - 1] if len(rows) > limit else None
    return CreditNotePage(
        data=data,
        next_cursor=pagination.encode_cursor(last["created_at"], last["id"]) if last else None,
    )
