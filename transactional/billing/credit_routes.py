"""Credit note API: give money back on a paid invoice (operators, and partners holding
`invoices:write` for their tenant's invoices), read notes and a customer's credit; the
subscription service's prorated cancellation. Thin: see credit_notes.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from transactional.billing import credit_cancellation, credit_notes
from transactional.billing import credit_repository as cr
from transactional.billing.clients import Payments
from transactional.billing.credit_models import (
    CancellationCredit,
    CreditNote,
    CreditNoteCreate,
    CreditNotePage,
    CustomerBalance,
)
from transactional.common import errors, idempotency, tenancy
from transactional.common.api_document import problems_answered
from transactional.common.deps import Db
from transactional.common.errors import DomainError
from transactional.common.idempotency import IdempotencyKey
from transactional.common.pagination import Cursor, Limit
from transactional.common.problems import PROBLEM_JSON, ProblemModel
from transactional.common.security import Principal, require

router = APIRouter(prefix="/v1", tags=["credit notes"])
Reader = Annotated[Principal, Depends(tenancy.member("invoices:read"))]
Internal = Annotated[Principal, Depends(require("invoices:write", "internal"))]
_WRITE = "invoices:write"
_OPERATOR = frozenset({"operations", "internal"})
_token = require()


def credit_writer(principal: Principal = Depends(_token)) -> Principal:
    """An operator (any tenant's invoices) or a client holding invoices:write, bound to
    its tenant (or customer) like every reader of tenant data."""
    if principal.scopes >= _OPERATOR:
        return principal
    if _WRITE in principal.scopes:
        return tenancy.bound(principal)
    raise DomainError(
        errors.INSUFFICIENT_SCOPE,
        f"token lacks scope: {_WRITE}",
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{_WRITE}"'},
    )


Writer = Annotated[Principal, Depends(credit_writer)]


def _problem(description: str) -> dict[str, Any]:
    return {"model": ProblemModel, "content": {PROBLEM_JSON: {}}, "description": description}


@router.post(
    "/invoices/{invoice_id}/credit_notes",
    response_model=CreditNote,
    status_code=201,
    summary="Give money back on a paid invoice: refunded to the card or kept as credit",
    responses={
        **idempotency.RESPONSES,
        404: _problem("No such invoice visible to the caller"),
        409: _problem("The invoice is not paid, or the key is in use"),
        422: _problem("More than the invoice can still give back, or the refund was refused"),
        503: _problem("The refund's outcome is not known yet: retry with the same key"),
    },
    openapi_extra={
        **problems_answered(
            errors.INVOICE_STATE,
            errors.CREDIT_EXCEEDS_INVOICE,
            errors.NOT_REFUNDABLE,
            errors.REFUND_REJECTED,
        ),
        # What a partner needs (operators pass with operations + internal instead).
        "security": [{"OAuth2": [_WRITE]}],
    },
)
def create_credit_note(
    invoice_id: uuid.UUID,
    body: CreditNoteCreate,
    key: IdempotencyKey,
    principal: Writer,
    db: Db,
    payments: Payments,
) -> JSONResponse:
    return idempotency.respond(credit_notes.create(db, payments, principal, invoice_id, key, body))


@router.get(
    "/credit_notes",
    response_model=CreditNotePage,
    summary="The caller's credit notes, newest first",
)
def list_credit_notes(
    principal: Reader,
    db: Db,
    limit: Limit = 20,
    cursor: Cursor = None,
    invoice_id: uuid.UUID | None = None,
    customer_id: Annotated[str | None, Query(max_length=100)] = None,
) -> CreditNotePage:
    filters = {"invoice_id": invoice_id, "customer_id": customer_id}
    return credit_notes.listed(db, principal, filters, limit, cursor)


@router.get(
    "/credit_notes/{credit_note_id}",
    response_model=CreditNote,
    responses={404: _problem("No such credit note visible to the caller")},
)
def get_credit_note(credit_note_id: uuid.UUID, principal: Reader, db: Db) -> CreditNote:
    return credit_notes.get(db, principal, credit_note_id)


@router.get(
    "/customers/{customer_id}/balance",
    response_model=CustomerBalance,
    summary="The customer's credit per currency, which its next invoices consume",
    responses={404: _problem("No customer billing knows visible to the caller")},
)
def customer_balance(
    customer_id: Annotated[str, Path(max_length=100)], principal: Reader, db: Db
) -> CustomerBalance:
    with db.connect() as conn:
        known, tenant_id = cr.customer_tenant(conn, customer_id)
        if not known or not tenancy.owns(principal, customer_id, tenant_id):
            raise tenancy.not_found("customer", customer_id)
        return CustomerBalance(customer_id=customer_id, balances=cr.balances(conn, customer_id))


@router.post(
    "/cancellation_credits",
    response_model=CreditNote,
    status_code=201,
    summary="A prorated cancellation's credit note, refunded (internal: the subscription service)",
    responses={
        404: _problem("No paid invoice of the period, or nothing left of it to credit"),
        422: _problem("The refund was refused"),
        503: _problem("The refund's outcome is not known yet: ask again"),
    },
)
def cancellation_credit(
    body: CancellationCredit, _: Internal, db: Db, payments: Payments
) -> JSONResponse:
    return idempotency.respond(credit_cancellation.create(db, payments, body))
