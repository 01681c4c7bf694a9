"""The payment API: accounts, payment methods, payments and refunds; operators' sweeps."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from transactional.common import customer_lookup, errors, idempotency, tenancy
from transactional.common.api_document import problems_answered
from transactional.common.customer_lookup import CustomerLookup
from transactional.common.deps import Db
from transactional.common.errors import DomainError
from transactional.common.idempotency import IdempotencyKey
from transactional.common.pagination import Cursor, Limit, Page
from transactional.common.problems import PROBLEM_JSON, ProblemModel
from transactional.common.security import Principal, require
from transactional.payment import batches, refunds, service
from transactional.payment.models import (
    Account,
    AccountCreate,
    Payment,
    PaymentBatch,
    PaymentCreate,
    PaymentMethodAttach,
    PaymentResults,
    PaymentStatus,
    PendingSweep,
    Refund,
    RefundCreate,
)
from transactional.payment.reconciliation import Reconciliation, reconcile
from transactional.payment.stripe_gateway import StripeGateway, Unavailable

router = APIRouter(prefix="/v1", tags=["payments"])
# Module-level so tests can swap them with app.dependency_overrides.
WRITE = tenancy.member("payments:write")
READ = tenancy.member("payments:read")
# A customer's own token changes its card, and nothing else of its payments.
CARD = tenancy.member_any("payments:write", "payment_methods:write")
OPERATOR = require("operations", "internal")
# Batches are for the billing run, never through Kong.
BATCH = tenancy.member("payments:write", "internal")
Writer = Annotated[Principal, Depends(WRITE)]
Reader = Annotated[Principal, Depends(READ)]
CardWriter = Annotated[Principal, Depends(CARD)]
Operator = Annotated[Principal, Depends(OPERATOR)]
BatchWriter = Annotated[Principal, Depends(BATCH)]
Customers = Annotated[CustomerLookup, Depends(customer_lookup.as_service("payment"))]


def _problem(description: str) -> dict[str, Any]:
    return {"model": ProblemModel, "content": {PROBLEM_JSON: {}}, "description": description}


@router.post(
    "/accounts",
    response_model=Account,
    status_code=201,
    summary="Create the customer's payment account (and Stripe customer), once; with "
    "`payment_method_id`, its default card too",
    responses={
        200: {"model": Account, "description": "The account already existed"},
        404: _problem("No such customer visible to the caller"),
        503: _problem("Stripe or the customer service unreachable; retry"),
    },
    openapi_extra=problems_answered(
        errors.PAYMENT_DECLINED, errors.PROCESSOR_REJECTED, errors.PROCESSOR_UNAVAILABLE
    ),
)
def create_account(
    body: AccountCreate,
    response: Response,
    principal: Writer,
    db: Db,
    stripe: StripeGateway,
    customers: Customers,
) -> Account:
    account, created = service.create_account(db, stripe, customers, principal, body)
    if not created:
        response.status_code = 200
    return account


@router.get(
    "/accounts/{customer_id}",
    response_model=Account,
    summary="The customer's payment account: its default payment method",
    responses={404: _problem("No such account visible to the caller")},
)
def get_account(
    customer_id: Annotated[str, Path(max_length=64)], principal: Reader, db: Db
) -> Account:
    return service.get_account(db, principal, customer_id)


@router.post(
    "/accounts/{customer_id}/payment-methods",
    response_model=Account,
    summary="Attach a Stripe PaymentMethod and make it the default",
    responses={
        404: _problem("Unknown customer"),
        503: _problem("Stripe unreachable; retry"),
    },
    openapi_extra=problems_answered(
        errors.TENANT_REQUIRED,
        errors.PAYMENT_DECLINED,
        errors.PROCESSOR_REJECTED,
        errors.PROCESSOR_UNAVAILABLE,
    ),
)
def attach_payment_method(
    body: PaymentMethodAttach,
    customer_id: Annotated[str, Path(max_length=64)],
    principal: CardWriter,
    db: Db,
    stripe: StripeGateway,
) -> Account:
    return service.attach_payment_method(db, stripe, principal, customer_id, body.payment_method_id)


@router.post(
    "/payments",
    response_model=Payment,
    status_code=201,
    summary="Charge the customer's default payment method (off session)",
    responses={
        **idempotency.RESPONSES,
        202: {"model": Payment, "description": "Stripe is still processing; poll or retry"},
        402: _problem("Declined; the body carries decline_code and the failed payment"),
        404: _problem("Unknown customer"),
        503: _problem("Stripe unreachable; retry with the same Idempotency-Key"),
    },
    openapi_extra=problems_answered(
        errors.PAYMENT_DECLINED,
        errors.NO_PAYMENT_METHOD,
        errors.PROCESSOR_REJECTED,
        errors.PROCESSOR_UNAVAILABLE,
    ),
)
def create_payment(
    body: PaymentCreate, key: IdempotencyKey, principal: Writer, db: Db, stripe: StripeGateway
) -> JSONResponse:
    return idempotency.respond(service.create_payment(db, stripe, principal, key, body))


@router.post(
    "/payment-batches",
    response_model=PaymentResults,
    summary="Many charges, each made as its own `POST /v1/payments` would make it, under its "
    "own Idempotency-Key (internal; billing runs)",
    responses={422: _problem("Invalid body: each item is a payment with its key, keys distinct")},
)
def create_payments(
    body: PaymentBatch, principal: BatchWriter, db: Db, stripe: StripeGateway
) -> PaymentResults:
    return batches.create_payments(db, stripe, principal, body)


@router.get("/payments", response_model=Page[Payment], summary="The caller's payments")
def list_payments(
    principal: Reader,
    db: Db,
    limit: Limit = 20,
    cursor: Cursor = None,
    customer_id: Annotated[str | None, Query(max_length=100)] = None,
    status: PaymentStatus | None = None,
) -> Page[Payment]:
    """Newest first; a user sees its own customer's only."""
    filters = {"customer_id": customer_id, "status": status}
    return service.list_payments(db, principal, filters, limit, cursor)


@router.get(
    "/payments/{payment_id}",
    response_model=Payment,
    summary="A payment",
    responses={404: _problem("Unknown payment")},
)
def get_payment(payment_id: uuid.UUID, principal: Reader, db: Db) -> Payment:
    return service.get_payment(db, principal, payment_id)


@router.post(
    "/payments/{payment_id}/refunds",
    response_model=Refund,
    status_code=201,
    summary="Refund all or part of a payment",
    responses={
        **idempotency.RESPONSES,
        404: _problem("Unknown payment"),
        503: _problem("Stripe unreachable; retry with the same Idempotency-Key"),
    },
    openapi_extra=problems_answered(
        errors.NOT_REFUNDABLE,
        errors.REFUND_EXCEEDS_PAYMENT,
        errors.REFUND_REJECTED,
        errors.PROCESSOR_UNAVAILABLE,
    ),
)
def create_refund(
    payment_id: uuid.UUID,
    key: IdempotencyKey,
    principal: Writer,
    db: Db,
    stripe: StripeGateway,
    body: RefundCreate | None = None,
) -> JSONResponse:
    request = body or RefundCreate(amount=None)
    return idempotency.respond(
        refunds.create_refund(db, stripe, principal, payment_id, key, request)
    )


@router.post(
    "/operations/payment-recovery",
    response_model=PendingSweep,
    summary="Settle payments left pending (internal; the recovery schedule)",
)
def recover_pending(
    _: Operator,
    db: Db,
    stripe: StripeGateway,
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
    _: Operator,
    date_: Annotated[date, Query(alias="date", description="UTC day, YYYY-MM-DD")],
    db: Db,
    stripe: StripeGateway,
) -> Reconciliation:
    try:
        return reconcile(db, stripe, date_)
    except Unavailable as exc:
        raise DomainError(
            errors.PROCESSOR_UNAVAILABLE, str(exc), headers={"Retry-After": "30"}
        ) from None
