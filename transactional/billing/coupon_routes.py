"""Coupons, discounts, tax rates and first-charge quotes on the billing API. Thin: see
coupons.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from transactional.billing import coupons
from transactional.billing.clients import Customers, Subscriptions
from transactional.billing.coupon_models import (
    Coupon,
    CouponCreate,
    CouponPage,
    Discount,
    DiscountCreate,
    Quote,
    QuoteCreate,
    TaxRate,
    TaxRateCreate,
    TaxRatePage,
)
from transactional.common import idempotency, tenancy
from transactional.common.deps import Db
from transactional.common.idempotency import IdempotencyKey
from transactional.common.problems import PROBLEM_JSON, ProblemModel
from transactional.common.security import Principal, require

router = APIRouter(prefix="/v1")
CouponReader = Annotated[Principal, Depends(tenancy.member("coupons:read"))]
CouponWriter = Annotated[Principal, Depends(tenancy.member("coupons:write"))]
RateReader = Annotated[Principal, Depends(tenancy.member("tax_rates:read"))]
RateWriter = Annotated[Principal, Depends(tenancy.member("tax_rates:write"))]
SubReader = Annotated[Principal, Depends(tenancy.member("subscriptions:read"))]
SubWriter = Annotated[Principal, Depends(tenancy.member("subscriptions:write"))]
Internal = Annotated[Principal, Depends(require("invoices:write", "internal"))]


def _problem(description: str) -> dict[str, Any]:
    return {"model": ProblemModel, "content": {PROBLEM_JSON: {}}, "description": description}


def _not_found(kind: str) -> dict[int | str, dict[str, Any]]:
    return {404: _problem(f"No such {kind} visible to the caller")}


KEYED = idempotency.RESPONSES


@router.post(
    "/coupons",
    response_model=Coupon,
    status_code=201,
    tags=["coupons"],
    summary="Create a coupon of the caller's tenant",
    responses={**KEYED, 409: _problem("The code is taken in the tenant, or the key in use")},
)
def create_coupon(
    body: CouponCreate, key: IdempotencyKey, principal: CouponWriter, db: Db
) -> JSONResponse:
    return idempotency.respond(coupons.create_coupon(db, principal, key, body))


@router.get(
    "/coupons", response_model=CouponPage, tags=["coupons"], summary="Coupons, newest first"
)
def list_coupons(
    principal: CouponReader,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=64)] = None,
) -> CouponPage:
    return coupons.list_coupons(db, principal, limit, cursor, code)


@router.get(
    "/coupons/{coupon_id}", response_model=Coupon, tags=["coupons"], responses=_not_found("coupon")
)
def get_coupon(coupon_id: uuid.UUID, principal: CouponReader, db: Db) -> Coupon:
    return coupons.get_coupon(db, principal, coupon_id)


@router.post(
    "/coupons/{coupon_id}/archive",
    response_model=Coupon,
    tags=["coupons"],
    summary="No more redemptions; discounts made keep running",
    responses={**KEYED, **_not_found("coupon")},
)
def archive_coupon(
    coupon_id: uuid.UUID, key: IdempotencyKey, principal: CouponWriter, db: Db
) -> Coupon:
    return coupons.archive_coupon(db, principal, coupon_id, key)


@router.post(
    "/discounts",
    response_model=Discount,
    status_code=201,
    tags=["coupons"],
    summary="Apply a coupon to a subscription: its next invoices are discounted",
    responses={
        **KEYED,
        **_not_found("subscription"),
        409: _problem("The subscription already has a discount, or the key is in use"),
        422: _problem("Unknown, expired, archived or used-up coupon; or an invalid body"),
    },
)
def redeem(
    body: DiscountCreate,
    key: IdempotencyKey,
    principal: SubWriter,
    db: Db,
    subscriptions: Subscriptions,
) -> JSONResponse:
    return idempotency.respond(coupons.redeem(db, subscriptions, principal, key, body))


@router.get(
    "/discounts/{discount_id}",
    response_model=Discount,
    tags=["coupons"],
    responses=_not_found("discount"),
)
def get_discount(discount_id: uuid.UUID, principal: SubReader, db: Db) -> Discount:
    return coupons.get_discount(db, principal, discount_id)


@router.post(
    "/tax-rates",
    response_model=TaxRate,
    status_code=201,
    tags=["tax rates"],
    summary="A tax rate of the caller's tenant, for a country (and region)",
    responses={**KEYED, 409: _problem("A live rate exists for the place, or the key in use")},
)
def create_tax_rate(
    body: TaxRateCreate, key: IdempotencyKey, principal: RateWriter, db: Db
) -> JSONResponse:
    return idempotency.respond(coupons.create_tax_rate(db, principal, key, body))


@router.get("/tax-rates", response_model=TaxRatePage, tags=["tax rates"], summary="Tax rates")
def list_tax_rates(principal: RateReader, db: Db) -> TaxRatePage:
    return coupons.list_tax_rates(db, principal)


@router.post(
    "/tax-rates/{tax_rate_id}/archive",
    response_model=TaxRate,
    tags=["tax rates"],
    summary="Invoices made from now on no longer use the rate",
    responses={**KEYED, **_not_found("tax rate")},
)
def archive_tax_rate(
    tax_rate_id: uuid.UUID, key: IdempotencyKey, principal: RateWriter, db: Db
) -> TaxRate:
    return coupons.archive_tax_rate(db, principal, tax_rate_id, key)


@router.post(
    "/quotes",
    response_model=Quote,
    tags=["invoices"],
    summary="A first period's price with discount and tax (internal: registration)",
)
def quote(body: QuoteCreate, _: Internal, db: Db, customers: Customers) -> Quote:
    return coupons.quote(db, customers, body)
