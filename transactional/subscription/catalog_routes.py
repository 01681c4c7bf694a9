"""Catalog administration on the subscription API: a tenant's plans and prices. Thin: the
rules are in catalog.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Security
from fastapi.responses import JSONResponse

from transactional.common import idempotency
from transactional.common.deps import Db
from transactional.common.idempotency import IdempotencyKey
from transactional.common.security import Principal, require
from transactional.subscription import catalog
from transactional.subscription.catalog_models import Migrated, PlanCreate, PlanMigrate, PriceCreate
from transactional.subscription.models import Plan

router = APIRouter(prefix="/v1/plans", tags=["plans"])


def _writer(principal: Principal = Security(require(), scopes=[catalog.WRITE_SCOPE])) -> Principal:
    # Documented as plans:write, the partners' scope; an operator (admin, internal) may too.
    return catalog.writer(principal)


Writer = Annotated[Principal, Depends(_writer)]
PlanId = Annotated[str, Path(max_length=100)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such plan of the caller's tenant"}
}


@router.post(
    "",
    status_code=201,
    response_model=Plan,
    summary="Create a plan of the caller's tenant, at price version 1",
    responses=idempotency.RESPONSES,
)
def create_plan(body: PlanCreate, key: IdempotencyKey, principal: Writer, db: Db) -> JSONResponse:
    answer = catalog.create_plan(db, principal, key, body)
    response = idempotency.respond(answer)
    response.headers["Location"] = f"/v1/plans/{answer.body['id']}"
    return response


@router.post(
    "/{plan_id}/archive",
    response_model=Plan,
    summary="Stop selling a plan; its subscribers keep renewing at their price",
    responses={**idempotency.RESPONSES, **NOT_FOUND},
)
def archive_plan(plan_id: PlanId, key: IdempotencyKey, principal: Writer, db: Db) -> JSONResponse:
    return idempotency.respond(catalog.archive(db, principal, key, plan_id))


@router.post(
    "/{plan_id}/prices",
    status_code=201,
    response_model=Plan,
    summary="A new price version: what new subscribers pay (existing ones keep theirs)",
    responses={**idempotency.RESPONSES, **NOT_FOUND},
)
def add_price(
    plan_id: PlanId, body: PriceCreate, key: IdempotencyKey, principal: Writer, db: Db
) -> JSONResponse:
    return idempotency.respond(catalog.add_price(db, principal, key, plan_id, body))


@router.post(
    "/{plan_id}/migrate",
    response_model=Migrated,
    summary="Move subscribers (all, or one) to the current price at their next renewal",
    responses={**idempotency.RESPONSES, **NOT_FOUND},
)
def migrate(
    plan_id: PlanId, body: PlanMigrate, key: IdempotencyKey, principal: Writer, db: Db
) -> JSONResponse:
    return idempotency.respond(catalog.migrate(db, principal, key, plan_id, body))
