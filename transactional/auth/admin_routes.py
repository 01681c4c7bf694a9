"""The admin API: tenants and their clients, for the platform operator (scope `admin`).

Inside the mesh only, like the operations endpoints: Kong does not route it, and it is
not in the public OpenAPI document. Thin: the rules are in `admin`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from transactional.auth import admin
from transactional.auth.admin_models import (
    ClientCreate,
    ClientOut,
    ClientPage,
    ClientWithSecret,
    Tenant,
    TenantCreate,
    TenantPage,
)
from transactional.auth.config import ADMIN_SCOPE
from transactional.common import errors, idempotency
from transactional.common.deps import ReadConn, Transaction
from transactional.common.errors import DomainError
from transactional.common.idempotency import IdempotencyKey
from transactional.common.security import Principal, require

router = APIRouter(tags=["admin"])
_admin = require(ADMIN_SCOPE)


def operator(principal: Principal = Depends(_admin)) -> Principal:
    """An admin of no tenant: a tenant's token never manages tenants, whatever its scopes."""
    if principal.tenant_id:
        raise DomainError(errors.FORBIDDEN_TENANT, "the admin API is the platform operator's")
    return principal


Operator = Annotated[Principal, Depends(operator)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such client"}}


@router.post(
    "/v1/tenants",
    status_code=201,
    response_model=Tenant,
    responses={**idempotency.RESPONSES, 409: {"description": "The tenant id is taken"}},
)
def create_tenant(
    body: TenantCreate, principal: Operator, conn: Transaction, key: IdempotencyKey
) -> JSONResponse:
    answer = admin.create_tenant(conn, body, idempotency.scoped(principal, key))
    return idempotency.respond(answer)


@router.get("/v1/tenants", response_model=TenantPage)
def list_tenants(
    principal: Operator, conn: ReadConn, limit: Limit = 20, cursor: Cursor = None
) -> TenantPage:
    return admin.list_tenants(conn, limit, cursor)


@router.post(
    "/v1/clients",
    status_code=201,
    response_model=ClientWithSecret,
    responses={**idempotency.RESPONSES},
)
def create_client(
    body: ClientCreate, principal: Operator, conn: Transaction, key: IdempotencyKey
) -> JSONResponse:
    answer = admin.create_client_for(conn, body, idempotency.scoped(principal, key))
    response = idempotency.respond(answer)
    response.headers["Cache-Control"] = "no-store"  # it carries a secret
    return response


@router.get("/v1/clients", response_model=ClientPage)
def list_clients(
    principal: Operator,
    conn: ReadConn,
    tenant_id: Annotated[str | None, Query(max_length=63)] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ClientPage:
    return admin.list_clients(conn, tenant_id, limit, cursor)


@router.get("/v1/clients/{client_id}", response_model=ClientOut, responses=_NOT_FOUND)
def get_client(client_id: str, principal: Operator, conn: ReadConn) -> ClientOut:
    return admin.get_client(conn, client_id)


@router.post(
    "/v1/clients/{client_id}/rotate-secret",
    response_model=ClientWithSecret,
    responses={**_NOT_FOUND, 409: {"description": "The client is disabled"}},
)
def rotate_secret(client_id: str, principal: Operator, conn: Transaction) -> JSONResponse:
    rotated = admin.rotate_secret(conn, client_id)
    return JSONResponse(rotated.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.post("/v1/clients/{client_id}/disable", response_model=ClientOut, responses=_NOT_FOUND)
def disable_client(client_id: str, principal: Operator, conn: Transaction) -> ClientOut:
    return admin.disable_client(conn, client_id)
