"""Charging an invoice through the payment service, so that no retry charges twice.

An attempt is a row (`billing.attempts`) with its payment Idempotency-Key, committed
before the call; the call sends that key (`invoice:<id>:<attempt>`, or the billing run's
`billing:<id>:<attempt>` when the run made the row); the outcome is booked under the
invoice's row lock, once. An attempt whose outcome never came back (a lost answer, a
crash, the payment service down) stays `pending`, and whoever comes next (a retried
request, an operator's "pay now", the recovery sweep) asks again with the same key: the
payment service answers what Stripe made of the first request instead of charging again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, RowMapping

from paywall.logs import get_logger
from paywall.service_client import ServiceClient, ServiceError
from streaming import invoice_credit, invoice_events
from transactional.billing import repository as repo

log = get_logger(__name__)
CHARGEABLE = ("open", "uncollectible")


def payment_key(invoice_id: uuid.UUID, attempt: int) -> str:
    """The payment service's Idempotency-Key for one attempt at an invoice."""
    return f"invoice:{invoice_id}:{attempt}"


@dataclass(frozen=True)
class Outcome:
    kind: str  # succeeded | failed | unknown
    payment_id: str | None = None
    decline_code: str | None = None
    detail: str | None = None


class Collector:
    def __init__(self, engine: Engine, payments: ServiceClient) -> None:
        self.engine = engine
        self.payments = payments

    def collect(self, invoice_id: uuid.UUID, request_key: str | None = None) -> RowMapping:
        """Charge the invoice's amount due (or ask again about its pending attempt) and
        book the outcome; the invoice as it is after."""
        with self.engine.begin() as conn:
            invoice = repo.get(conn, invoice_id, lock=True)
            assert invoice is not None
            if invoice["status"] not in CHARGEABLE:
                return invoice
            if not repo.charge_in_flight(conn, invoice_id):
                # A new attempt: the customer's credit first (a pending one is asked again
                # for the amount it was sent with).
                invoice = invoice_credit.apply(conn, invoice)
            attempt, key = repo.open_attempt(conn, invoice, payment_key, request_key)
        return self.settle(invoice, attempt, key)

    def settle(self, invoice: RowMapping, attempt: int, key: str) -> RowMapping:
        """Ask the payment service about one attempt (its key) and book what it says."""
        outcome = self._ask(invoice, attempt, key)
        with self.engine.begin() as conn:
            return book(conn, invoice["id"], attempt, outcome)

    def _ask(self, invoice: RowMapping, attempt: int, key: str) -> Outcome:
        if invoice["amount_due"] == 0:
            return Outcome("succeeded", payment_id=None)
        body = {
            "customer_id": invoice["customer_id"],
            "amount": invoice["amount_due"],
            "currency": invoice["currency"],
            "description": f"invoice {invoice['id']} ({invoice['kind']}, {invoice['plan_id']})",
            "metadata": {
                "invoice_id": str(invoice["id"]),
                "subscription_id": str(invoice["subscription_id"]),
                "attempt": str(attempt),
            },
        }
        try:
            status, answer = self.payments.call(
                "POST", "/v1/payments", json=body, idempotency_key=key
            )
        except ServiceError as exc:
            return Outcome("unknown", detail=str(exc))
        if status == 201:
            return Outcome("succeeded", payment_id=str(answer["id"]))
        if status == 402:
            code = answer.get("decline_code") or answer.get("failure_code") or "declined"
            return Outcome("failed", answer.get("payment_id"), str(code))
        if status in (404, 422):  # no payment account or method: nothing was charged
            reason = str(answer.get("type", "")).rsplit("/", 1)[-1] or f"http_{status}"
            return Outcome("failed", None, reason, str(answer.get("detail")))
        # 202 (Stripe still processing), 409, 5xx: not known yet; the next asker asks again.
        log.warning("billing.charge_unknown", invoice_id=str(invoice["id"]), status=status)
        return Outcome("unknown", detail=f"payment service answered {status}")


def book(conn: Connection, invoice_id: uuid.UUID, attempt: int, outcome: Outcome) -> RowMapping:
    """Record an attempt's outcome on the invoice, once (a second booking changes nothing)."""
    invoice = repo.get(conn, invoice_id, lock=True)
    assert invoice is not None
    if outcome.kind == "unknown" or repo.attempt_status(conn, invoice_id, attempt) != "pending":
        return invoice
    repo.finish_attempt(
        conn, invoice_id, attempt, outcome.kind, outcome.payment_id, outcome.decline_code
    )
    attempts = max(int(invoice["attempts"]), attempt)
    proration = invoice["kind"] == "proration"
    if outcome.kind == "succeeded":
        dunning = repo.in_dunning(conn, invoice_id)
        repo.end_dunning(conn, invoice_id, "recovered")
        paid = repo.update(
            conn,
            invoice_id,
            status="paid",
            attempts=attempts,
            payment_id=outcome.payment_id,
            decline_code=None,
            amount_paid=invoice["total"] - invoice["credit_applied"],
            amount_due=0,
            paid_on=repo.today(),
            # What the subscription service is still to be told (see the recovery sweep
            # for prorations, the billing run's actions for the others).
            pending_action="apply_upgrade" if proration else "reactivate" if dunning else "renew",
        )
        invoice_events.emit(conn, paid, "invoice.paid", payment_id=outcome.payment_id)
        return paid
    failed = repo.update(conn, invoice_id, attempts=attempts, decline_code=outcome.decline_code)
    invoice_events.emit(
        conn,
        failed,
        "invoice.payment_failed",
        payment_id=outcome.payment_id,
        decline_code=outcome.decline_code,
        attempt=attempt,
    )
    if proration:  # pending_if_incomplete: a declined upgrade is not owed, the plan stays
        return void(conn, failed, "upgrade_declined")
    return failed


def void(conn: Connection, invoice: RowMapping, reason: str) -> RowMapping:
    voided = repo.update(
        conn,
        invoice["id"],
        status="void",
        amount_due=0,
        voided_at=repo.now(),
        pending_action=None,
    )
    repo.end_dunning(conn, invoice["id"], "abandoned")
    invoice_events.emit(conn, voided, "invoice.voided", reason=reason)
    return voided
