"""Subscription API: plans, subscribe, change plan, cancel, pause and resume; and billing's
internal moves. Thin: the rules are in service.py."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from paywall.shards import MAX_SHARDS, Shard
from transactional.common import customer_lookup, errors, idempotency, tenancy
from transactional.common.api_document import problems_answered
from transactional.common.customer_lookup import CustomerLookup
from transactional.common.deps import Db, ReadConn, Transaction
from transactional.common.idempotency import OptionalIdempotencyKey
from transactional.common.pagination import Cursor, Limit, Page
from transactional.common.security import Principal, optional_principal
from transactional.subscription import (
    cancellation,
    catalog,
    catalog_routes,
    listing,
    repository,
    service,
)
from transactional.subscription.billing import Billing, billing
from transactional.subscription.models import (
    Activate,
    Cancel,
    DuePage,
    Expire,
    PastDue,
    PeriodAdvance,
    Plan,
    PlanChange,
    PlanChanged,
    RenewalBatch,
    RenewalResults,
    Subscription,
    SubscriptionCreate,
    SubscriptionStatus,
    UpgradeApply,
)

router = APIRouter(tags=["subscriptions"])
Reader = Annotated[Principal, Depends(tenancy.member("subscriptions:read"))]
Writer = Annotated[Principal, Depends(tenancy.member("subscriptions:write"))]
Internal = Annotated[Principal, Depends(tenancy.member("subscriptions:write", "internal"))]
InternalReader = Annotated[Principal, Depends(tenancy.member("subscriptions:read", "internal"))]
Customers = Annotated[CustomerLookup, Depends(customer_lookup.as_service("subscription"))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such subscription visible to the caller"}
}
CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"description": "The change is not allowed in the subscription's state"},
}


CatalogTenant = Annotated[
    str | None,
    Query(
        max_length=100,
        description="Operators and internal services: that tenant's price list (others may "
        "name only their own)",
    ),
]


@router.get(
    "/v1/plans",
    response_model=Page[Plan],
    tags=["plans"],
    responses={403: {"description": "tenant_id names another tenant"}},
    openapi_extra=problems_answered(errors.INVALID_TOKEN, errors.FORBIDDEN_TENANT),
)
def list_plans(
    db: ReadConn,
    caller: Annotated[Principal | None, Depends(optional_principal)],
    limit: Limit = 20,
    cursor: Cursor = None,
    tenant_id: CatalogTenant = None,
) -> Page[Plan]:
    """The price list on sale, cheapest first: the platform's plans, and with a tenant's
    token that tenant's own too."""
    return listing.plans(db, catalog.reader(caller, tenant_id), limit, cursor)


@router.get(
    "/v1/plans/{plan_id}",
    response_model=Plan,
    tags=["plans"],
    responses={
        403: {"description": "tenant_id names another tenant"},
        404: {
            "description": "No such plan on sale visible to the caller "
            "(with price_version: archived ones too)"
        },
    },
    openapi_extra=problems_answered(
        errors.NOT_FOUND, errors.INVALID_TOKEN, errors.FORBIDDEN_TENANT
    ),
)
def get_plan(
    plan_id: Annotated[str, Path(max_length=100)],
    db: ReadConn,
    caller: Annotated[Principal | None, Depends(optional_principal)],
    tenant_id: CatalogTenant = None,
    price_version: Annotated[
        int | None,
        Query(ge=1, le=2_000_000_000, description="An earlier price: what its subscribers pay"),
    ] = None,
) -> Plan:
    """One plan of the price list, at its current price (or an earlier version)."""
    return listing.plan(db, plan_id, catalog.reader(caller, tenant_id), price_version)


@router.post(
    "/v1/subscriptions",
    status_code=201,
    response_model=Subscription,
    responses={
        **idempotency.RESPONSES,
        404: {"description": "No such customer visible to the caller"},
        409: {
            "description": "The customer already has a live subscription, or the same key "
            "is still in progress"
        },
        503: {"description": "The customer service could not be asked; retry"},
    },
    openapi_extra=problems_answered(errors.ALREADY_SUBSCRIBED, errors.UNKNOWN_PLAN),
)
def create_subscription(
    body: SubscriptionCreate,
    principal: Writer,
    db: Db,
    customers: Customers,
    key: OptionalIdempotencyKey = None,
) -> JSONResponse:
    answer = service.create(db, customers, principal, key, body)
    response = idempotency.respond(answer)
    response.headers["Location"] = f"/v1/subscriptions/{answer.body['id']}"
    return response


@router.get("/v1/subscriptions", response_model=Page[Subscription])
def list_subscriptions(
    principal: Reader,
    db: ReadConn,
    limit: Limit = 20,
    cursor: Cursor = None,
    customer_id: uuid.UUID | None = None,
    status: SubscriptionStatus | None = None,
    plan_id: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[Subscription]:
    """The caller's subscriptions, newest first (a user: its own customer's)."""
    filters = repository.Filters(customer_id=customer_id, status=status, plan_id=plan_id)
    return listing.subscriptions(db, principal, filters, limit, cursor)


@router.get("/v1/subscriptions/{sub_id}", response_model=Subscription, responses=NOT_FOUND)
def get_subscription(sub_id: uuid.UUID, principal: Reader, db: ReadConn) -> Subscription:
    return service.get(db, principal, sub_id)


@router.get(
    "/v1/customers/{customer_id}/subscriptions",
    response_model=Page[Subscription],
    responses={
        404: {"description": "No such customer visible to the caller"},
        503: {"description": "The customer service could not be asked; retry"},
    },
)
def customer_subscriptions(
    customer_id: uuid.UUID,
    principal: Reader,
    db: ReadConn,
    customers: Customers,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[Subscription]:
    """One customer's subscriptions, newest first."""
    return listing.for_customer(db, customers, principal, customer_id, limit, cursor)


@router.post(
    "/v1/subscriptions/{sub_id}/activate",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="Activate after the first charge (internal)",
)
def activate(
    sub_id: uuid.UUID, body: Activate, principal: Internal, db: Transaction
) -> Subscription:
    return service.activate(db, principal, sub_id, body.payment_id)


@router.post(
    "/v1/subscriptions/{sub_id}/change-plan",
    response_model=PlanChanged,
    responses=CHANGE_ERRORS,
    openapi_extra=problems_answered(
        errors.TRANSITION,
        errors.SAME_PLAN,
        errors.UNKNOWN_PLAN,
        errors.INCOMPATIBLE_PLAN,
        errors.PAYMENT_DECLINED,
        errors.PRORATION_IN_PROGRESS,
        errors.IDEMPOTENCY_KEY_REUSED,
        errors.DEPENDENCY_UNAVAILABLE,
    ),
    summary="Upgrade now, charged (prorated by the second), or downgrade at period end",
)
def change_plan(
    sub_id: uuid.UUID,
    body: PlanChange,
    principal: Writer,
    db: Db,
    billing_: Annotated[Billing, Depends(billing)],
    key: OptionalIdempotencyKey = None,
) -> JSONResponse:
    return idempotency.respond(
        service.change_plan(db, billing_, principal, sub_id, body.plan_id, key)
    )


@router.post(
    "/v1/subscriptions/{sub_id}/apply-upgrade",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="An upgrade billing was paid for and was never applied (internal; recovery)",
)
def apply_upgrade(
    sub_id: uuid.UUID, body: UpgradeApply, principal: Internal, db: Transaction
) -> Subscription:
    return service.apply_upgrade(db, principal, sub_id, body)


@router.post(
    "/v1/subscriptions/{sub_id}/cancel",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    openapi_extra=problems_answered(errors.TRANSITION),
)
def cancel(
    sub_id: uuid.UUID,
    body: Cancel,
    principal: Writer,
    db: Transaction,
    billing_: Annotated[Billing, Depends(billing)],
) -> Subscription:
    return cancellation.cancel(db, billing_, principal, sub_id, body)


@router.post(
    "/v1/subscriptions/{sub_id}/pause",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    openapi_extra=problems_answered(errors.TRANSITION),
)
def pause(sub_id: uuid.UUID, principal: Writer, db: Transaction) -> Subscription:
    return service.pause(db, principal, sub_id)


@router.post(
    "/v1/subscriptions/{sub_id}/resume",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    openapi_extra=problems_answered(errors.TRANSITION),
)
def resume(sub_id: uuid.UUID, principal: Writer, db: Transaction) -> Subscription:
    return service.resume(db, principal, sub_id)


# -- internal: what billing needs (no other service reads the subscription tables) --------


def due_shard(index: int, count: int) -> Shard:
    try:
        return Shard(index, count)
    except ValueError as exc:
        raise errors.DomainError(errors.VALIDATION, str(exc)) from exc


@router.get(
    "/v1/due-subscriptions",
    response_model=DuePage,
    summary="Subscriptions whose period ends on a day (internal; billing runs)",
)
def due_subscriptions(
    _: InternalReader,
    db: ReadConn,
    date_: Annotated[date, Query(alias="date", description="UTC day, YYYY-MM-DD")],
    after: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    shard: Annotated[int, Query(ge=0, description="this shard of the day (paywall/shards.py)")] = 0,
    shards: Annotated[int, Query(ge=1, le=MAX_SHARDS, description="the day's shard count")] = 1,
) -> DuePage:
    return service.due(db, date_, after, limit, due_shard(shard, shards))


@router.post(
    "/v1/subscriptions/{sub_id}/renew",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="Start the next period after billing collected it (internal)",
)
def renew(
    sub_id: uuid.UUID, body: PeriodAdvance, principal: Internal, db: Transaction
) -> Subscription:
    return service.renew(db, principal, sub_id, body)


@router.post(
    "/v1/subscriptions/{sub_id}/reactivate",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="Paid during dunning: back to active, into the period just paid (internal)",
)
def reactivate(
    sub_id: uuid.UUID, body: PeriodAdvance, principal: Internal, db: Transaction
) -> Subscription:
    return service.reactivate(db, principal, sub_id, body)


@router.post(
    "/v1/subscription-renewals",
    response_model=RenewalResults,
    summary="Renew or reactivate many subscriptions, each as its own call would "
    "(internal; billing runs)",
)
def renew_many(body: RenewalBatch, principal: Internal, db: Db) -> RenewalResults:
    return service.renew_many(db, principal, body)


@router.post(
    "/v1/subscriptions/{sub_id}/mark-past-due",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="The renewal charge failed; dunning retries follow (internal)",
)
def mark_past_due(
    sub_id: uuid.UUID, body: PastDue, principal: Internal, db: Transaction
) -> Subscription:
    return service.mark_past_due(db, principal, sub_id, body.invoice_id, body.decline_code)


@router.post(
    "/v1/subscriptions/{sub_id}/expire",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="End it: canceled at period end, or dunning exhausted (internal)",
)
def expire(sub_id: uuid.UUID, body: Expire, principal: Internal, db: Transaction) -> Subscription:
    return service.expire(db, principal, sub_id, body.at)


# Catalog administration (catalog_routes.py), served with the rest of the plans' routes.
router.include_router(catalog_routes.router)
