"""Customer API: a caller only ever sees its own customer, or its tenant's (see service)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from transactional.common import errors, tenancy
from transactional.common.api_document import problems_answered
from transactional.common.deps import Db, Transaction
from transactional.common.security import Principal
from transactional.customer import service
from transactional.customer.models import Customer, CustomerCreate, CustomerPage, CustomerUpdate

router = APIRouter(prefix="/v1/customers", tags=["customers"])

Reader = Annotated[Principal, Depends(tenancy.member("customers:read"))]
Writer = Annotated[Principal, Depends(tenancy.member("customers:write"))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such customer visible to the caller"}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Customer,
    responses={409: {"description": "A live customer of this tenant has that email"}},
    openapi_extra=problems_answered(errors.EMAIL_TAKEN),
)
def create_customer(
    body: CustomerCreate, principal: Writer, conn: Transaction, response: Response
) -> Customer:
    customer = service.create(conn, principal, body)
    response.headers["Location"] = f"/v1/customers/{customer.id}"
    return customer


@router.get("/{customer_id}", response_model=Customer, responses=NOT_FOUND)
def get_customer(customer_id: uuid.UUID, principal: Reader, db: Db) -> Customer:
    return service.visible(db, principal, customer_id)


@router.patch("/{customer_id}", response_model=Customer, responses=NOT_FOUND)
def update_customer(
    customer_id: uuid.UUID, body: CustomerUpdate, principal: Writer, db: Db
) -> Customer:
    return service.update(db, principal, customer_id, body)


@router.delete("/{customer_id}", status_code=204, responses=NOT_FOUND)
def delete_customer(customer_id: uuid.UUID, principal: Writer, db: Db) -> Response:
    service.delete(db, principal, customer_id)
    return Response(status_code=204)


@router.post(
    "/{customer_id}/erase",
    response_model=Customer,
    responses={**NOT_FOUND, 409: {"description": "Already erased"}},
    openapi_extra=problems_answered(errors.ALREADY_ERASED),
    summary="Erase personal data (GDPR art. 17)",
)
def erase_customer(customer_id: uuid.UUID, principal: Writer, db: Db) -> Customer:
    return service.erase(db, principal, customer_id)


@router.get("", response_model=CustomerPage)
def list_customers(
    principal: Reader,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> CustomerPage:
    """The caller's tenant's live customers (a user: its own customer only).

    An internal caller has no tenant, so it lists the customers that belong to no tenant;
    it reaches a tenant's customers by id.
    """
    return service.listed(db, principal, limit=limit, cursor=cursor, email=email)
