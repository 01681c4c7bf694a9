"""Customer API: a caller only ever sees its own customer, or its tenant's."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from paywall.db import engine
from paywall.settings import get_settings
from transactional.common.problems import Problem
from transactional.common.security import Principal, require
from transactional.customer import cache, repository
from transactional.customer.models import Customer, CustomerCreate, CustomerPage, CustomerUpdate

router = APIRouter(prefix="/v1/customers", tags=["customers"])

Reader = Annotated[Principal, Depends(require("customers:read"))]
Writer = Annotated[Principal, Depends(require("customers:write"))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such customer visible to the caller"}
}


def _visible(principal: Principal, customer: Customer) -> bool:
    if principal.internal:
        return True
    if principal.customer_id is not None:
        return principal.customer_id == str(customer.id)
    return principal.tenant_id is not None and principal.tenant_id == customer.tenant_id


def _not_found(customer_id: uuid.UUID) -> Problem:
    # The same answer for "absent" and "not yours": existence is not leaked.
    return Problem(404, "Customer Not Found", f"no customer {customer_id}")


def _load_visible(principal: Principal, customer_id: uuid.UUID) -> Customer:
    customer = cache.get(str(customer_id))
    if customer is None:
        with engine(get_settings()).connect() as conn:
            customer = repository.get(conn, customer_id)
        if customer is not None:
            cache.put(customer)
    if customer is None or not _visible(principal, customer):
        raise _not_found(customer_id)
    return customer


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Customer,
    responses={409: {"description": "A live customer of this tenant has that email"}},
)
def create_customer(body: CustomerCreate, principal: Writer, response: Response) -> Customer:
    if body.tenant_id is not None and not principal.internal:
        raise Problem(403, "Forbidden", "tenant_id may only be set by internal services")
    tenant = body.tenant_id if principal.internal else principal.tenant_id
    try:
        with engine(get_settings()).begin() as conn:
            customer = repository.create(conn, body, tenant)
    except repository.EmailTaken as exc:
        raise Problem(
            409,
            "Email Taken",
            "a customer with this email exists",
            type_="https://paywall.dev/problems/email-taken",
            customer_id=str(exc.existing_id) if principal.internal else None,
        ) from exc
    response.headers["Location"] = f"/v1/customers/{customer.id}"
    return customer


@router.get("/{customer_id}", response_model=Customer, responses=NOT_FOUND)
def get_customer(customer_id: uuid.UUID, principal: Reader) -> Customer:
    return _load_visible(principal, customer_id)


@router.patch("/{customer_id}", response_model=Customer, responses=NOT_FOUND)
def update_customer(customer_id: uuid.UUID, body: CustomerUpdate, principal: Writer) -> Customer:
    _load_visible(principal, customer_id)
    with engine(get_settings()).begin() as conn:
        customer = repository.update(conn, customer_id, body)
    cache.invalidate(str(customer_id))  # after commit, so no reader re-caches the old row
    if customer is None:
        raise _not_found(customer_id)
    return customer


@router.delete("/{customer_id}", status_code=204, responses=NOT_FOUND)
def delete_customer(customer_id: uuid.UUID, principal: Writer) -> Response:
    _load_visible(principal, customer_id)
    with engine(get_settings()).begin() as conn:
        deleted = repository.soft_delete(conn, customer_id)
    cache.invalidate(str(customer_id))
    if deleted is None:
        raise _not_found(customer_id)
    return Response(status_code=204)


@router.post(
    "/{customer_id}/erase",
    response_model=Customer,
    responses={**NOT_FOUND, 409: {"description": "Already erased"}},
    summary="Erase personal data (GDPR art. 17)",
)
def erase_customer(customer_id: uuid.UUID, principal: Writer) -> Customer:
    _load_visible(principal, customer_id)
    with engine(get_settings()).begin() as conn:
        customer = repository.erase(conn, customer_id)
    cache.invalidate(str(customer_id))
    if customer is None:
        raise Problem(409, "Already Erased", f"customer {customer_id} was already erased")
    return customer


@router.get("", response_model=CustomerPage)
def list_customers(
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> CustomerPage:
    if principal.customer_id is not None and not principal.internal:
        return CustomerPage(
            data=[_load_visible(principal, uuid.UUID(principal.customer_id))], next_cursor=None
        )
    if email is not None:
        with engine(get_settings()).connect() as conn:
            found = repository.find_by_email(conn, email, principal.tenant_id)
        return CustomerPage(data=[found] if found else [], next_cursor=None)
    after = _decode_cursor(cursor) if cursor else None
    with engine(get_settings()).connect() as conn:
        rows = repository.page(conn, principal.tenant_id, after, limit + 1)
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return CustomerPage(data=rows[:limit], next_cursor=next_cursor)


def _encode_cursor(last: Customer) -> str:
    raw = json.dumps([last.created_at.isoformat(), str(last.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, cid = json.loads(raw)
        return datetime.fromisoformat(ts), uuid.UUID(cid)
    except (ValueError, TypeError) as exc:
        raise Problem(400, "Bad Cursor", "cursor is not one this API returned") from exc
