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
from transactional.common import tenancy
from transactional.common.problems import Problem
from transactional.common.security import Principal
from transactional.customer import cache, repository
from transactional.customer.models import Customer, CustomerCreate, CustomerPage, CustomerUpdate

router = APIRouter(prefix="/v1/customers", tags=["customers"])

Reader = Annotated[Principal, Depends(tenancy.member("customers:read"))]
Writer = Annotated[Principal, Depends(tenancy.member("customers:write"))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such customer visible to the caller"}
}


def _visible(principal: Principal, customer_id: uuid.UUID, *, deleted: bool) -> Customer | None:
    customer = cache.get(str(customer_id))
    if customer is None:
        with engine(get_settings()).connect() as conn:
            customer = repository.get(conn, customer_id)
        if customer is not None:
            cache.put(customer)
    if (
        customer is None
        or not tenancy.owns(principal, customer.id, customer.tenant_id)
        or (customer.status == "deleted" and not deleted)
    ):
        return None
    return customer


def _load_visible(
    principal: Principal, customer_id: uuid.UUID, *, deleted: bool = False
) -> Customer:
    """The caller's live customer, or 404; a deleted one too when `deleted` (for erasure)."""
    customer = _visible(principal, customer_id, deleted=deleted)
    if customer is None:
        raise tenancy.not_found("customer", customer_id)
    return customer


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Customer,
    responses={409: {"description": "A live customer of this tenant has that email"}},
)
def create_customer(body: CustomerCreate, principal: Writer, response: Response) -> Customer:
    tenant = tenancy.tenant_for(principal, body.tenant_id)
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
        raise tenancy.not_found("customer", customer_id)
    return customer


@router.delete("/{customer_id}", status_code=204, responses=NOT_FOUND)
def delete_customer(customer_id: uuid.UUID, principal: Writer) -> Response:
    _load_visible(principal, customer_id)
    with engine(get_settings()).begin() as conn:
        deleted = repository.soft_delete(conn, customer_id)
    cache.invalidate(str(customer_id))
    if deleted is None:
        raise tenancy.not_found("customer", customer_id)
    return Response(status_code=204)


@router.post(
    "/{customer_id}/erase",
    response_model=Customer,
    responses={**NOT_FOUND, 409: {"description": "Already erased"}},
    summary="Erase personal data (GDPR art. 17)",
)
def erase_customer(customer_id: uuid.UUID, principal: Writer) -> Customer:
    _load_visible(principal, customer_id, deleted=True)
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
    """The caller's tenant's live customers (a user: its own customer only).

    An internal caller has no tenant, so it lists the customers that belong to no tenant;
    it reaches a tenant's customers by id.
    """
    if principal.customer_id and not principal.internal:
        try:
            own_id = uuid.UUID(principal.customer_id)
        except ValueError:  # a login for a customer this service never made
            return CustomerPage(data=[], next_cursor=None)
        own = _visible(principal, own_id, deleted=False)
        return CustomerPage(data=[own] if own else [], next_cursor=None)
    tenant = tenancy.tenant_for(principal)
    if email is not None:
        with engine(get_settings()).connect() as conn:
            found = repository.find_by_email(conn, email, tenant)
        return CustomerPage(data=[found] if found else [], next_cursor=None)
    after = _decode_cursor(cursor) if cursor else None
    with engine(get_settings()).connect() as conn:
        rows = repository.page(conn, tenant, after, limit + 1)
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
