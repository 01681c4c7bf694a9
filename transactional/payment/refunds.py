"""Refunds: all or part of a payment, once per Idempotency-Key, never more than was paid.

The same two steps as a charge (service.py): a `pending` refund row committed under the
key, then Stripe under a lock on that row with the outcome recorded in one transaction; a
retry asks Stripe for a refund carrying our id before making another.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from transactional.common import errors, idempotency, tenancy
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer
from transactional.common.security import Principal
from transactional.payment import refund_repository as refund_repo
from transactional.payment import repository as repo
from transactional.payment.models import Refund, RefundCreate
from transactional.payment.service import owned_account, stripe_key
from transactional.payment.stripe_gateway import Gateway, Rejected
from transactional.payment.stripe_problems import stripe_problems


def create_refund(
    engine: Engine,
    gateway: Gateway,
    principal: Principal,
    payment_id: uuid.UUID,
    key: str,
    body: RefundCreate,
) -> Answer:
    fingerprint = idempotency.fingerprint({"payment_id": str(payment_id), "amount": body.amount})
    key = idempotency.scoped(principal, key)
    try:
        with engine.begin() as conn:
            # The payment row lock serialises refunds of one payment: two concurrent
            # refunds cannot both fit in what is left.
            payment = repo.get_payment(conn, payment_id, lock=True)
            if payment is None or owned_account(conn, principal, payment["customer_id"]) is None:
                raise tenancy.not_found("payment", payment_id)
            refund = refund_repo.get_refund_by_key(conn, key)
            created = refund is None
            if refund is None:
                amount = _refundable(conn, payment, body.amount)
                refund = refund_repo.insert_refund(conn, payment_id, key, fingerprint, amount)
    except IntegrityError:
        # The same key, used at the same moment for another payment.
        raise idempotency.reused() from None
    idempotency.check_same(refund["request_fingerprint"], fingerprint)
    if refund["response_status"] is not None:
        return Answer(refund["response_status"], refund["response_body"], replayed=True)
    return _settle_refund(engine, gateway, refund["id"], key, first_attempt=created)


def _refundable(conn: Connection, payment: RowMapping, requested: int | None) -> int:
    if payment["status"] not in ("succeeded", "partially_refunded"):
        raise DomainError(
            errors.NOT_REFUNDABLE, f"a {payment['status']} payment cannot be refunded"
        )
    remaining = payment["amount"] - refund_repo.reserved_refunds(conn, payment["id"])
    amount = remaining if requested is None else requested
    if amount <= 0 or amount > remaining:
        raise DomainError(
            errors.REFUND_EXCEEDS_PAYMENT,
            f"at most {remaining} {payment['currency']} can still be refunded",
            refundable=remaining,
        )
    return amount


def _settle_refund(
    engine: Engine, gateway: Gateway, refund_id: uuid.UUID, scoped_key: str, *, first_attempt: bool
) -> Answer:
    with engine.begin() as conn:
        idempotency.hold(conn, scoped_key)
        refund = refund_repo.get_refund(conn, refund_id)
        assert refund is not None
        if refund["response_status"] is not None:
            return Answer(refund["response_status"], refund["response_body"], replayed=True)
        payment = repo.get_payment(conn, refund["payment_id"])
        assert payment is not None
        rejected: Rejected | None = None
        if refund["status"] == "pending":
            intent = payment["stripe_payment_intent_id"]
            with stripe_problems(refusal_is_outcome=True):
                try:
                    result = None if first_attempt else gateway.find_refund(str(refund_id), intent)
                    if result is None:
                        result = gateway.refund(
                            str(refund_id),
                            stripe_key("refund", refund["idempotency_key"]),
                            intent,
                            refund["amount"],
                        )
                except Rejected as exc:
                    rejected, result = exc, None
            refund, payment = refund_repo.finish_refund(
                conn,
                refund_id,
                stripe_refund_id=result.refund_id if result else None,
                failure_message=rejected.message if rejected else None,
            )
        if refund["status"] == "failed":
            rejected_by_stripe = DomainError(
                errors.REFUND_REJECTED,
                refund["failure_message"] or "Stripe refused the refund.",
                refund_id=str(refund_id),
            )
            answer = Answer(422, rejected_by_stripe.body(f"/v1/payments/{payment['id']}/refunds"))
        else:
            answer = Answer(201, _refund_body(refund, payment))
        refund_repo.store_refund_response(conn, refund_id, answer.status, answer.body)
    return answer


def _refund_body(refund: RowMapping, payment: RowMapping) -> dict[str, Any]:
    return Refund(
        id=refund["id"],
        payment_id=refund["payment_id"],
        amount=refund["amount"],
        currency=payment["currency"],
        status=refund["status"],
        stripe_refund_id=refund["stripe_refund_id"],
        payment_status=payment["status"],
        created_at=refund["created_at"],
    ).model_dump(mode="json")
