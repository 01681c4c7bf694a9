"""A subscription canceled now with `prorate`: a credit note for the unused seconds of the
paid period, refunded to the card (internal: the subscription service asks).

The amount is the period invoice's total times the seconds left over the seconds in the
period, rounded half up (paywall/pricing.py's one rule), capped at what the invoice can
still give back. The request key names the subscription and the period
(`cancel:<subscription>:<period start>`) and the fingerprint leaves the moment out, so a
retried cancellation (a moment later) finds the note the first one made and never
refunds twice; a refund whose outcome is unknown is finished like any other note's. The
note keeps `pending_action = cancel_subscription` until the recovery sweep sees the
subscription canceled (or cancels it: refunded, the subscription service's commit lost).
"""

from __future__ import annotations

from sqlalchemy import Engine

from paywall import pricing
from paywall.service_client import ServiceClient
from transactional.billing import credit_notes
from transactional.billing import credit_repository as cr
from transactional.billing import repository as repo
from transactional.billing.credit_models import CancellationCredit
from transactional.common import errors, idempotency
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer

INSTANCE = "/v1/cancellation_credits"


def unused_share(total: int, body: CancellationCredit) -> int:
    """The period price's unused part at `body.at`, by the second (pricing's rule)."""
    return pricing.prorate(total, 0, body.period_start, body.period_end, body.at).credit


def create(engine: Engine, payments: ServiceClient, body: CancellationCredit) -> Answer:
    key = f"cancel:{body.subscription_id}:{body.period_start.isoformat()}"
    asked = idempotency.fingerprint(
        {"subscription_id": str(body.subscription_id), "period_start": body.period_start}
    )
    with idempotency.held(engine, key):
        with engine.begin() as conn:
            note = cr.by_request_key(conn, key)
            replayed = note is not None
            if note is not None:
                idempotency.check_same(note["request_fingerprint"], asked)
            else:
                found = cr.paid_period_invoice(conn, body.subscription_id, body.period_start)
                # Locked: two credit notes of one invoice are checked one after the other.
                invoice = repo.get(conn, found["id"], lock=True) if found is not None else None
                if invoice is None:
                    raise DomainError(
                        errors.NOT_FOUND, "no paid invoice for this period: nothing to credit"
                    )
                amount = min(
                    unused_share(int(invoice["total"]), body),
                    credit_notes.creditable(conn, invoice),
                )
                if amount <= 0:
                    raise DomainError(errors.NOT_FOUND, "nothing of this period is left to credit")
                _, refunded = cr.credited(conn, invoice["id"])
                to_card = (
                    credit_notes.charged(invoice)
                    and amount <= int(invoice["amount_paid"]) - refunded
                )
                note = credit_notes.issue(
                    conn,
                    invoice,
                    amount,
                    [{"description": "Unused time after cancellation", "amount": amount}],
                    # Paid with customer credit (or nothing charged): the credit goes back there.
                    settlement="refund" if to_card else "customer_balance",
                    reason=None,
                    memo=None,
                    origin="cancellation",
                    request_key=key,
                    request_fingerprint=asked,
                )
                # Until the subscription is known canceled (see credit_notes.recover).
                cr.set_pending_action(conn, note["id"], "cancel_subscription")
        note = credit_notes.settle(engine, payments, note)
        return credit_notes.answer(engine, note, INSTANCE, replayed)
