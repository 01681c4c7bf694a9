"""Coupons, discounts and tax rates, apart from HTTP: a tenant's own, under the tenancy
rule; POSTs under an Idempotency-Key (a replay answers what the first request made).

A coupon is redeemed onto a subscription as its discount: the redemption count is taken
by one conditional UPDATE in the transaction that makes the discount, so an expired,
archived or used-up coupon is refused (422) and two redemptions racing for the last slot
cannot both win. Which invoices the discount then applies to, and the tax rate an invoice
gets, is streaming/invoice_terms.py's; the amounts are paywall/pricing.py's.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, RowMapping

from paywall.service_client import ServiceClient, ServiceError
from streaming import invoice_terms
from transactional.billing import coupon_repository as repo
from transactional.billing.coupon_models import (
    Coupon,
    CouponCreate,
    CouponPage,
    Discount,
    DiscountCreate,
    Quote,
    QuoteCreate,
    QuoteLine,
    TaxRate,
    TaxRateCreate,
    TaxRatePage,
)
from transactional.common import errors, idempotency, tenancy
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer
from transactional.common.security import Principal


def _scope(principal: Principal) -> dict[str, Any]:
    """Coupons and rates are a tenant's: an internal caller sees all, others their own."""
    return {} if principal.internal else {"tenant_id": principal.tenant_id or None}


def _visible(row: RowMapping | None, principal: Principal, kind: str, ident: object) -> RowMapping:
    if row is None or not (
        principal.internal or (principal.tenant_id and principal.tenant_id == row["tenant_id"])
    ):
        raise tenancy.not_found(kind, ident)
    return row


# -- coupons ---------------------------------------------------------------------------------


def create_coupon(engine: Engine, principal: Principal, key: str, body: CouponCreate) -> Answer:
    tenant = tenancy.tenant_for(principal, body.tenant_id)
    scoped = idempotency.scoped(principal, key)
    asked = idempotency.fingerprint({**body.model_dump(mode="json"), "tenant_id": tenant})
    with engine.begin() as conn:
        idempotency.hold(conn, scoped)
        earlier = repo.coupon_by(conn, "request_key", scoped)
        if earlier is not None:
            idempotency.check_same(earlier["request_fingerprint"], asked)
            return Answer(201, repo.coupon(earlier).model_dump(mode="json"), replayed=True)
        made = repo.insert_coupon(conn, tenant, body, scoped, asked)
        if made is None:
            raise DomainError(errors.ALREADY_EXISTS, f"a coupon with code {body.code!r} exists")
        return Answer(201, repo.coupon(made).model_dump(mode="json"))


def get_coupon(engine: Engine, principal: Principal, coupon_id: uuid.UUID) -> Coupon:
    with engine.connect() as conn:
        row = _visible(repo.coupon_by(conn, "id", coupon_id), principal, "coupon", coupon_id)
    return repo.coupon(row)


def list_coupons(
    engine: Engine,
    principal: Principal,
    limit: int,
    cursor: str | None,
    code: str | None,
) -> CouponPage:
    """A partner's own coupons; an internal caller's of every tenant (a signup looks a
    code up and keeps its own tenant's)."""
    scope = _scope(principal)
    after = _decode(cursor) if cursor else None
    with engine.connect() as conn:
        rows = repo.coupons_page(conn, scope, after, limit + 1, code)
    data = [repo.coupon(r) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return CouponPage(data=data, next_cursor=_encode(last) if last is not None else None)


def archive_coupon(engine: Engine, principal: Principal, coupon_id: uuid.UUID, key: str) -> Coupon:
    """No new redemptions; discounts already made keep running. Archiving twice is once."""
    with engine.begin() as conn:
        idempotency.hold(conn, idempotency.scoped(principal, key))
        _visible(repo.coupon_by(conn, "id", coupon_id), principal, "coupon", coupon_id)
        return repo.coupon(repo.archive_coupon(conn, coupon_id))


# -- discounts -------------------------------------------------------------------------------


def redeem(
    engine: Engine,
    subscriptions: ServiceClient,
    principal: Principal,
    key: str,
    body: DiscountCreate,
) -> Answer:
    """The coupon `body.coupon` of the subscription's tenant, applied to it from now (from
    its first period when it has not started: a signup's). One discount per subscription."""
    sub = _subscription(subscriptions, principal, body.subscription_id)
    scoped = idempotency.scoped(principal, key)
    asked = idempotency.fingerprint(body.model_dump(mode="json"))
    with engine.begin() as conn:
        idempotency.hold(conn, scoped)
        earlier = repo.discount_by(conn, "request_key", scoped)
        if earlier is not None:
            idempotency.check_same(earlier["request_fingerprint"], asked)
            return Answer(201, repo.discount(conn, earlier).model_dump(mode="json"), True)
        found = repo.coupon_by_code(conn, sub["tenant_id"], body.coupon)
        if found is None:
            raise not_redeemable(f"no coupon {body.coupon!r}")
        if repo.discount_by(conn, "subscription_id", body.subscription_id) is not None:
            raise DomainError(errors.ALREADY_EXISTS, "the subscription already has a discount")
        if not repo.take_redemption(conn, found["id"]):
            raise not_redeemable(f"coupon {body.coupon!r} is {_why(found)}")
        start = (
            datetime.fromisoformat(sub["current_period_start"])
            if sub["status"] == "incomplete"
            else datetime.now(UTC)
        )
        made = repo.insert_discount(
            conn,
            tenant_id=sub["tenant_id"],
            customer_id=str(sub["customer_id"]),
            subscription_id=body.subscription_id,
            coupon_row=found,
            start=start,
            key=scoped,
            fingerprint=asked,
        )
        if made is None:  # raced by another redemption: the transaction gives its slot back
            raise DomainError(errors.ALREADY_EXISTS, "the subscription already has a discount")
        return Answer(201, repo.discount(conn, made).model_dump(mode="json"))


def get_discount(engine: Engine, principal: Principal, discount_id: uuid.UUID) -> Discount:
    with engine.connect() as conn:
        row = repo.discount_by(conn, "id", discount_id)
        if row is None or not tenancy.owns(principal, row["customer_id"], row["tenant_id"]):
            raise tenancy.not_found("discount", discount_id)
        return repo.discount(conn, row)


def not_redeemable(detail: str) -> DomainError:
    return DomainError(errors.COUPON_NOT_REDEEMABLE, detail)


def _why(row: RowMapping) -> str:
    if row["archived_at"] is not None:
        return "archived"
    if row["redeem_by"] is not None and row["redeem_by"] <= datetime.now(UTC):
        return "expired"
    return "used up: no redemptions left"


def _subscription(
    subscriptions: ServiceClient, principal: Principal, sub_id: uuid.UUID
) -> dict[str, Any]:
    """The subscription as its service has it, if the caller may act for it; else 404."""
    try:
        status, sub = subscriptions.call("GET", f"/v1/subscriptions/{sub_id}")
    except ServiceError as exc:
        raise _unavailable("subscription-service") from exc
    if status == 404 or (
        status == 200 and not tenancy.owns(principal, sub["customer_id"], sub["tenant_id"])
    ):
        raise tenancy.not_found("subscription", sub_id)
    if status != 200:
        raise _unavailable("subscription-service")
    return sub


def _unavailable(dependency: str) -> DomainError:
    return DomainError(
        errors.DEPENDENCY_UNAVAILABLE,
        f"the {dependency} could not be asked; retry shortly",
        headers={"Retry-After": "2"},
        dependency=dependency,
    )


# -- tax rates -------------------------------------------------------------------------------


def create_tax_rate(engine: Engine, principal: Principal, key: str, body: TaxRateCreate) -> Answer:
    tenant = tenancy.tenant_for(principal, body.tenant_id)
    scoped = idempotency.scoped(principal, key)
    asked = idempotency.fingerprint({**body.model_dump(mode="json"), "tenant_id": tenant})
    with engine.begin() as conn:
        idempotency.hold(conn, scoped)
        earlier = repo.tax_rate_by(conn, "request_key", scoped)
        if earlier is not None:
            idempotency.check_same(earlier["request_fingerprint"], asked)
            return Answer(201, repo.tax_rate(earlier).model_dump(mode="json"), replayed=True)
        made = repo.insert_tax_rate(conn, tenant, body, scoped, asked)
        if made is None:
            raise DomainError(
                errors.ALREADY_EXISTS, "a live rate exists for this place; archive it first"
            )
        return Answer(201, repo.tax_rate(made).model_dump(mode="json"))


def list_tax_rates(engine: Engine, principal: Principal) -> TaxRatePage:
    with engine.connect() as conn:
        return TaxRatePage(data=[repo.tax_rate(r) for r in repo.tax_rates(conn, _scope(principal))])


def archive_tax_rate(engine: Engine, principal: Principal, rate_id: uuid.UUID, key: str) -> TaxRate:
    """Invoices made from now on no longer use it; those made keep their tax."""
    with engine.begin() as conn:
        idempotency.hold(conn, idempotency.scoped(principal, key))
        _visible(repo.tax_rate_by(conn, "id", rate_id), principal, "tax rate", rate_id)
        return repo.tax_rate(repo.archive_tax_rate(conn, rate_id))


# -- first charges ---------------------------------------------------------------------------


def quote(engine: Engine, customers: ServiceClient, body: QuoteCreate) -> Quote:
    """What a subscription's first period costs with its discount and tax (internal: the
    registration service, before it charges). The discount's period is spent here, once:
    asked again, the same period gets the same answer."""
    address = tax_address(engine, customers, body.tenant_id, body.customer_id)
    base = [
        {
            "kind": "subscription",
            "description": body.plan_id,
            "plan_id": body.plan_id,
            "amount": body.amount,
            "period_start": body.period_start,
            "period_end": body.period_end,
        }
    ]
    with engine.begin() as conn:
        terms = invoice_terms.find(
            conn,
            tenant_id=body.tenant_id,
            subscription_id=body.subscription_id,
            currency=body.currency,
            period_start=body.period_start,
            address=address,
            lock=True,
        )
        amounts, lines = invoice_terms.lines(base, terms)
        if amounts.discount and terms.discount_id is not None:
            invoice_terms.spend(conn, terms.discount_id, body.period_start, None)
    return Quote(
        subtotal=amounts.subtotal,
        discount=amounts.discount,
        tax=amounts.tax,
        tax_inclusive=amounts.inclusive,
        total=amounts.total,
        currency=body.currency,
        discount_id=terms.discount_id if amounts.discount else None,
        lines=[QuoteLine.model_validate(line) for line in lines],
    )


def tax_address(
    engine: Engine, customers: ServiceClient, tenant_id: str | None, customer_id: str
) -> dict[str, Any] | None:
    """The customer's billing address, which only picks a tax rate: None when the tenant
    has no tax rate in force (the customer service is then not asked: a signup's first
    invoice is one internal call fewer), none was given, or there is no such customer."""
    with engine.connect() as conn:
        if not invoice_terms.taxes(conn, tenant_id):
            return None
    try:
        status, body = customers.call("GET", f"/v1/customers/{customer_id}")
    except ServiceError as exc:
        raise _unavailable("customer-service") from exc
    if status == 404:
        return None
    if status != 200:
        raise _unavailable("customer-service")
    address: dict[str, Any] | None = body.get("address")
    return address


def _encode(last: RowMapping) -> str:
    raw = json.dumps([last["created_at"].isoformat(), str(last["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, iid = json.loads(raw)
        return datetime.fromisoformat(ts), uuid.UUID(iid)
    except (ValueError, TypeError) as exc:
        raise DomainError(errors.BAD_CURSOR, "cursor is not one this API returned") from exc
