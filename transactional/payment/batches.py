"""Many charges in one request (billing runs): each made exactly as its own
`POST /v1/payments` would make it.

Each item is `service.create_payment` under its own Idempotency-Key, in transactions of its
own: an item refused (no account, another tenant's customer, declined) leaves the others
made, and a batch asked again answers every item it made from what was stored, so a lost
answer or a timeout is retried whole, safely. A batch saves the request around each charge
(routing, the token check, the HTTP round trip on both sides), not any of a charge's steps.

Once Stripe answers "busy" or cannot be reached, the batch's remaining items are not tried:
they are answered 503 with the same Retry-After, as their own calls would soon be, so a
batch never holds its request open through one Stripe timeout after another.
"""

from __future__ import annotations

from sqlalchemy import Engine

from transactional.common import errors
from transactional.common.errors import DomainError
from transactional.common.security import Principal
from transactional.payment import service
from transactional.payment.models import PaymentBatch, PaymentOutcome, PaymentResults
from transactional.payment.stripe_gateway import Gateway

# Where each item's problem says it was asked: the call it stands for.
INSTANCE = "/v1/payments"


def create_payments(
    engine: Engine, gateway: Gateway, principal: Principal, batch: PaymentBatch
) -> PaymentResults:
    results: list[PaymentOutcome] = []
    busy: DomainError | None = None
    for item in batch.payments:
        key = item.idempotency_key
        if busy is not None:
            results.append(_refused(key, busy))
            continue
        try:
            answer = service.create_payment(engine, gateway, principal, key, item)
        except DomainError as refused:
            results.append(_refused(key, refused))
            if refused.problem is errors.PROCESSOR_UNAVAILABLE:
                busy = DomainError(
                    errors.PROCESSOR_UNAVAILABLE,
                    "not tried: Stripe was busy or unreachable for an earlier charge of this "
                    "batch; retry with the same Idempotency-Key after Retry-After",
                    headers=refused.headers,
                )
        else:
            results.append(
                PaymentOutcome(
                    idempotency_key=key, status=answer.status, body=answer.body, retry_after=None
                )
            )
    return PaymentResults(results=results)


def _refused(key: str, refused: DomainError) -> PaymentOutcome:
    told = (refused.headers or {}).get("Retry-After")
    return PaymentOutcome(
        idempotency_key=key,
        status=refused.problem.status,
        body=refused.body(INSTANCE),
        retry_after=float(told) if told is not None else None,
    )
