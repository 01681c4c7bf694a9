"""Billing API: invoices for their owners; void and pay-now for operators; the proration
charge the subscription service asks for; a signup's first-period invoice the registration
saga asks for; the recovery sweep. Thin: see service.py, prorations.py and
first_period.py."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AwareDatetime

from transactional.billing import credit_notes, documents, first_period, prorations, service
from transactional.billing.clients import Collecting, Customers, Payments, Subscriptions
from transactional.billing.models import (
    FirstPeriodCreate,
    Invoice,
    InvoicePage,
    InvoiceStatus,
    InvoiceSweep,
    ProrationCreate,
)
from transactional.billing.repository import Filters
from transactional.common import idempotency, tenancy
from transactional.common.deps import Db
from transactional.common.idempotency import IdempotencyKey
from transactional.common.problems import PROBLEM_JSON, ProblemModel
from transactional.common.security import Principal, require

router = APIRouter(prefix="/v1", tags=["invoices"])
Reader = Annotated[Principal, Depends(tenancy.member("invoices:read"))]
# Operators: void and pay now reach any tenant's invoice (Dagster's client, the ops team).
Operator = Annotated[Principal, Depends(require("operations", "internal"))]
Internal = Annotated[Principal, Depends(require("invoices:write", "internal"))]


def _problem(description: str) -> dict[str, Any]:
    return {"model": ProblemModel, "content": {PROBLEM_JSON: {}}, "description": description}


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _problem("No such invoice visible to the caller")
}


@router.get("/invoices", response_model=InvoicePage, summary="The caller's invoices, newest first")
def list_invoices(
    principal: Reader,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    customer_id: Annotated[str | None, Query(max_length=100)] = None,
    subscription_id: uuid.UUID | None = None,
    status: InvoiceStatus | None = None,
    period_from: Annotated[
        AwareDatetime | None, Query(description="Periods that end after this")
    ] = None,
    period_to: Annotated[
        AwareDatetime | None, Query(description="Periods that start before this")
    ] = None,
) -> InvoicePage:
    filters = Filters(customer_id, subscription_id, status, period_from, period_to)
    return service.listed(db, principal, filters, limit, cursor)


# Before the JSON route: `/invoices/{invoice_id}` would otherwise take "<id>.pdf" as an id.
@router.get(
    "/invoices/{invoice_id}.html",
    response_class=HTMLResponse,
    summary="The invoice as a web page (the same template as the PDF)",
    responses={**NOT_FOUND, 200: {"content": {"text/html": {}}}},
)
def invoice_page(invoice_id: uuid.UUID, principal: Reader, db: Db) -> HTMLResponse:
    return HTMLResponse(documents.html(service.get(db, principal, invoice_id)))


@router.get(
    "/invoices/{invoice_id}.pdf",
    response_class=Response,
    summary="The invoice as a PDF a customer can keep",
    responses={**NOT_FOUND, 200: {"content": {"application/pdf": {}}}},
)
def invoice_pdf(invoice_id: uuid.UUID, principal: Reader, db: Db) -> Response:
    invoice = service.get(db, principal, invoice_id)
    return Response(
        documents.pdf(invoice),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="invoice-{invoice.id}.pdf"'},
    )


@router.get("/invoices/{invoice_id}", response_model=Invoice, responses=NOT_FOUND)
def get_invoice(invoice_id: uuid.UUID, principal: Reader, db: Db) -> Invoice:
    return service.get(db, principal, invoice_id)


@router.post(
    "/invoices/{invoice_id}/void",
    response_model=Invoice,
    summary="Void an invoice: nothing is owed on it (operators)",
    responses={
        **idempotency.RESPONSES,
        **NOT_FOUND,
        409: _problem("Paid (refund it instead), a charge in flight, or the key in use"),
    },
)
def void_invoice(
    invoice_id: uuid.UUID, key: IdempotencyKey, principal: Operator, db: Db
) -> Invoice:
    return service.void_invoice(db, principal, invoice_id, key)


@router.post(
    "/invoices/{invoice_id}/pay",
    response_model=Invoice,
    summary="Charge the amount due now (operators); the answer says paid or not",
    responses={
        **idempotency.RESPONSES,
        **NOT_FOUND,
        409: _problem("Void or draft, or the key in use"),
    },
)
def pay_invoice(
    invoice_id: uuid.UUID, key: IdempotencyKey, principal: Operator, db: Db, collector: Collecting
) -> Invoice:
    return service.pay(db, collector, principal, invoice_id, key)


@router.post(
    "/prorations",
    response_model=Invoice,
    status_code=201,
    summary="An upgrade's proration invoice, charged now (internal: the subscription service)",
    responses={
        **idempotency.RESPONSES,
        402: _problem("Declined: the invoice is void, the plan must not change"),
        404: _problem("Looked up by key (same plan asked): nothing made under it"),
        409: _problem("Another plan change of the subscription is being charged"),
        503: _problem("The charge's outcome is not known yet: retry with the same key"),
    },
)
def create_proration(
    body: ProrationCreate,
    key: IdempotencyKey,
    principal: Internal,
    db: Db,
    collector: Collecting,
    customers: Customers,
) -> JSONResponse:
    return idempotency.respond(prorations.create(db, collector, customers, principal, key, body))


@router.post(
    "/first_period_invoices",
    response_model=Invoice,
    status_code=201,
    summary="A signup's first charge as its first period's paid invoice (internal: "
    "registration); one per subscription, 200 with it when asked again",
    responses={
        200: {"model": Invoice, "description": "Made by an earlier request for this charge"},
        409: _problem("The first period is invoiced already, for another charge"),
        503: _problem("The customer service could not be asked (the tax rate): retry"),
    },
)
def create_first_period_invoice(
    body: FirstPeriodCreate, _: Internal, db: Db, customers: Customers
) -> JSONResponse:
    return idempotency.respond(first_period.create(db, customers, body))


@router.post(
    "/operations/invoice-recovery",
    response_model=InvoiceSweep,
    summary="Finish proration invoices left open or paid but not applied, and credit notes "
    "whose refund outcome is unknown (internal)",
)
def recover_invoices(
    _: Operator,
    db: Db,
    collector: Collecting,
    subscriptions: Subscriptions,
    payments: Payments,
    older_than_seconds: Annotated[int, Query(ge=0, le=30 * 24 * 3600)] = 300,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> InvoiceSweep:
    age = timedelta(seconds=older_than_seconds)
    report = prorations.recover(db, collector, subscriptions, age, limit)
    report.credit_notes = credit_notes.recover(db, payments, subscriptions, age, limit)
    return report
