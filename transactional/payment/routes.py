"""The payment API: accounts, payment methods, payments and refunds."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from transactional.common.customer_lookup import CustomerLookup
from transactional.common.headers import IDEMPOTENCY_KEY_RESPONSES, IdempotencyKey
from transactional.common.problems import PROBLEM_JSON, Problem, ProblemModel
from transactional.common.security import Principal
from transactional.payment import service
from transactional.payment.access import OPERATOR, READ, WRITE
from transactional.payment.deps import customers, database, gateway
from transactional.payment.models import (
    Account,
    AccountCreate,
    Payment,
    PaymentCreate,
    PaymentMethodAttach,
    PendingSweep,
    Refund,
    RefundCreate,
)
from transactional.payment.reconciliation import Reconciliation, reconcile
from transactional.payment.stripe_gateway import Gateway, Unavailable

router = APIRouter(prefix="/v1", tags=["payments"])


def _problem(description: str) -> dict[str, Any]:
    return {"model": ProblemModel, "content": {PROBLEM_JSON: {}}, "description": description}


def _answer(status: int, body: dict[str, Any]) -> JSONResponse:
    media = PROBLEM_JSON if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media)


@router.post(
    "/accounts",
    response_model=Account,
    status_code=201,
    summary="Create the customer's payment account (and Stripe customer), once",
    responses={
        200: {"model": Account, "description": "The account already existed"},
        404: _problem("No such customer visible to the caller"),
        503: _problem("Stripe or the customer service unreachable; retry"),
    },
)
def create_account(
    body: AccountCreate,
    response: Response,
    principal: Principal = Depends(WRITE),
    db: Engine = Depends(database),
    stripe: Gateway = Depends(gateway),
    lookup: CustomerLookup = Depends(customers),
) -> Account:
    account, created = service.create_account(db, stripe, lookup, principal, body)
    if not created:
        response.status_code = 200
    return account


@router.post(
    "/accounts/{customer_id}/payment-methods",
    response_model=Account,
    summary="Attach a Stripe PaymentMethod and make it the default",
    responses={
        404: _problem("Unknown customer"),
        503: _problem("Stripe unreachable; retry"),
    },
)
def attach_payment_method(
    body: PaymentMethodAttach,
    customer_id: str = Path(max_length=64),
    principal: Principal = Depends(WRITE),
    db: Engine = Depends(database),
    stripe: Gateway = Depends(gateway),
) -> Account:
    return service.attach_payment_method(db, stripe, principal, customer_id, body.payment_method_id)


@router.post(
    "/payments",
    response_model=Payment,
    status_code=201,
    summary="Charge the customer's default payment method (off session)",
    responses={
        **IDEMPOTENCY_KEY_RESPONSES,
        202: {"model": Payment, "description": "Stripe is still processing; poll or retry"},
        402: _problem("Declined; the body carries decline_code and the failed payment"),
        404: _problem("Unknown customer"),
        409: _problem("The same Idempotency-Key is in flight; retry shortly"),
        503: _problem("Stripe unreachable; retry with the same Idempotency-Key"),
    },
)
def create_payment(
    body: PaymentCreate,
    idempotency_key: IdempotencyKey,
    principal: Principal = Depends(WRITE),
    db: Engine = Depends(database),
    stripe: Gateway = Depends(gateway),
) -> JSONResponse:
    return _answer(*service.create_payment(db, stripe, principal, idempotency_key, body))


@router.post(
    "/operations/payment-recovery",
    response_model=PendingSweep,
    summary="Settle payments left pending (internal; the recovery schedule)",
)
def recover_pending(
    _: Annotated[Principal, Depends(OPERATOR)],
    db: Engine = Depends(database),
    stripe: Gateway = Depends(gateway),
    older_than_seconds: Annotated[int, Query(ge=0, le=30 * 24 * 3600)] = 300,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> PendingSweep:
    return service.recover_pending(db, stripe, timedelta(seconds=older_than_seconds), limit)


@router.get(
    "/operations/reconciliation",
    response_model=Reconciliation,
    summary="Stripe's charges against the payments table, for one UTC day (internal)",
)
def reconciliation(
    _: Annotated[Principal, Depends(OPERATOR)],
    date_: Annotated[date, Query(alias="date", description="UTC day, YYYY-MM-DD")],
    db: Engine = Depends(database),
    stripe: Gateway = Depends(gateway),
) -> Reconciliation:
    try:
        return reconcile(db, stripe, date_)
    except Unavailable as exc:
        raise Problem(
            503,
            "Payment processor unavailable",
            str(exc),
            type_="https://paywall.dev/problems/processor-unavailable",
            headers={"Retry-After": "30"},
        ) from None


@router.get(
    "/payments/{payment_id}",
    response_model=Payment,
    summary="A payment",
    responses={404: _problem("Unknown payment")},
)
def get_payment(
    payment_id: uuid.UUID,
    principal: Principal = Depends(READ),
    db: Engine = Depends(database),
) -> Payment:
    return service.get_payment(db, principal, payment_id)


@router.post(
    "/payments/{payment_id}/refunds",
    response_model=Refund,
    status_code=201,
    summary="Refund all or part of a payment",
    responses={
        **IDEMPOTENCY_KEY_RESPONSES,
        404: _problem("Unknown payment"),
        409: _problem("The same Idempotency-Key is in flight; retry shortly"),
        503: _problem("Stripe unreachable; retry with the same Idempotency-Key"),
    },
)
def create_refund(
    payment_id: uuid.UUID,
    idempotency_key: IdempotencyKey,
    body: RefundCreate | None = None,
    principal: Principal = Depends(WRITE),
    db: Engine = Depends(database),
    stripe: Gateway = Depends(gateway),
) -> JSONResponse:
    request = body or RefundCreate(amount=None)
    return _answer(
        *service.create_refund(db, stripe, principal, payment_id, idempotency_key, request)
    )
