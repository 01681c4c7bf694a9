"""Billing's coupon, discount and tax-rate tables: the only code in the services that
writes them (the billing run reads them through streaming/invoice_terms.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, text

from transactional.billing.coupon_models import (
    Coupon,
    CouponCreate,
    Discount,
    TaxRate,
    TaxRateCreate,
)

COUPON = (
    "c.id, c.tenant_id, c.code, c.name, c.percent_off_bp, c.amount_off, c.currency, c.duration, "
    "c.duration_periods, c.max_redemptions, c.times_redeemed, c.redeem_by, c.archived_at, "
    "c.created_at, c.request_fingerprint, "
    "(c.archived_at IS NULL AND (c.redeem_by IS NULL OR c.redeem_by > now()) AND "
    "(c.max_redemptions IS NULL OR c.times_redeemed < c.max_redemptions)) AS redeemable"
)
TAX = (
    "id, tenant_id, country, region, percentage_bp, inclusive, display_name, archived_at, "
    "created_at, request_fingerprint"
)


def coupon(row: RowMapping) -> Coupon:
    bp = row["percent_off_bp"]
    return Coupon.model_validate({**row, "percent_off": None if bp is None else bp / 100})


def tax_rate(row: RowMapping) -> TaxRate:
    return TaxRate.model_validate({**row, "percentage": row["percentage_bp"] / 100})


def insert_coupon(
    conn: Connection, tenant_id: str | None, body: CouponCreate, key: str, fingerprint: str
) -> RowMapping | None:
    """The new coupon; None when its code is taken in the tenant."""
    made = conn.execute(
        text(
            "INSERT INTO billing.coupons AS c (id, tenant_id, code, name, percent_off_bp, "
            "amount_off, currency, duration, duration_periods, max_redemptions, redeem_by, "
            "request_key, request_fingerprint) VALUES (:id, :tenant, :code, :name, :bp, "
            ":amount_off, :currency, :duration, :periods, :max, :redeem_by, :key, :fp) "
            f"ON CONFLICT DO NOTHING RETURNING {COUPON}"
        ),
        {
            "id": uuid.uuid4(),
            "tenant": tenant_id,
            "code": body.code,
            "name": body.name,
            "bp": body.percent_off_bp,
            "amount_off": body.amount_off,
            "currency": body.currency,
            "duration": body.duration,
            "periods": body.duration_periods,
            "max": body.max_redemptions,
            "redeem_by": body.redeem_by,
            "key": key,
            "fp": fingerprint,
        },
    )
    return made.mappings().first()


def coupon_by(conn: Connection, column: str, value: Any) -> RowMapping | None:
    assert column in ("id", "request_key")
    return (
        conn.execute(
            text(f"SELECT {COUPON} FROM billing.coupons c WHERE c.{column} = :v"), {"v": value}
        )
        .mappings()
        .first()
    )


def coupon_by_code(conn: Connection, tenant_id: str | None, code: str) -> RowMapping | None:
    return (
        conn.execute(
            text(
                f"SELECT {COUPON} FROM billing.coupons c WHERE coalesce(c.tenant_id, '') = "
                "coalesce(:tenant, '') AND lower(c.code) = lower(:code)"
            ),
            {"tenant": tenant_id, "code": code},
        )
        .mappings()
        .first()
    )


def coupons_page(
    conn: Connection,
    scope: dict[str, Any],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    code: str | None = None,
) -> list[RowMapping]:
    """A tenant's coupons, newest first (`scope` {} for an internal caller)."""
    where: list[str] = ["true"]
    params: dict[str, Any] = {"limit": limit}
    if "tenant_id" in scope:
        # A scope of None matches nothing: a caller bound to no tenant sees no coupons.
        where.append("c.tenant_id = :tenant")
        params["tenant"] = scope["tenant_id"]
    if code is not None:
        where.append("lower(c.code) = lower(:code)")
        params["code"] = code
    if after is not None:
        where.append("(c.created_at, c.id) < (:after_ts, :after_id)")
        params.update(after_ts=after[0], after_id=after[1])
    return list(
        conn.execute(
            text(
                f"SELECT {COUPON} FROM billing.coupons c WHERE {' AND '.join(where)} "
                "ORDER BY c.created_at DESC, c.id DESC LIMIT :limit"
            ),
            params,
        ).mappings()
    )


def archive_coupon(conn: Connection, coupon_id: uuid.UUID) -> RowMapping:
    row: RowMapping = (
        conn.execute(
            text(
                "UPDATE billing.coupons c SET archived_at = coalesce(archived_at, now()) "
                f"WHERE id = :id RETURNING {COUPON}"
            ),
            {"id": coupon_id},
        )
        .mappings()
        .one()
    )
    return row


def take_redemption(conn: Connection, coupon_id: uuid.UUID) -> bool:
    """One redemption of the coupon, if one is left: a single conditional UPDATE, so of two
    requests racing for the last one, the row lock lets exactly one through."""
    taken = conn.execute(
        text(
            "UPDATE billing.coupons SET times_redeemed = times_redeemed + 1 WHERE id = :id "
            "AND archived_at IS NULL AND (redeem_by IS NULL OR redeem_by > now()) "
            "AND (max_redemptions IS NULL OR times_redeemed < max_redemptions)"
        ),
        {"id": coupon_id},
    )
    return taken.rowcount == 1


# -- discounts -------------------------------------------------------------------------------

DISCOUNT = (
    "d.id, d.tenant_id, d.customer_id, d.subscription_id, d.coupon_id, d.start, d.periods, "
    "d.created_at, d.request_fingerprint, "
    "(SELECT count(*) FROM billing.discount_uses u WHERE u.discount_id = d.id) AS periods_used"
)


def insert_discount(
    conn: Connection,
    *,
    tenant_id: str | None,
    customer_id: str,
    subscription_id: uuid.UUID,
    coupon_row: RowMapping,
    start: datetime,
    key: str,
    fingerprint: str,
) -> RowMapping | None:
    """The subscription's discount; None when it already has one."""
    periods = {"once": 1, "repeating": coupon_row["duration_periods"], "forever": None}
    made = conn.execute(
        text(
            "INSERT INTO billing.discounts (id, tenant_id, customer_id, subscription_id, "
            "coupon_id, start, periods, request_key, request_fingerprint) VALUES (:id, :tenant, "
            ":customer, :sub, :coupon, :start, :periods, :key, :fp) ON CONFLICT DO NOTHING "
            "RETURNING id"
        ),
        {
            "id": uuid.uuid4(),
            "tenant": tenant_id,
            "customer": customer_id,
            "sub": subscription_id,
            "coupon": coupon_row["id"],
            "start": start,
            "periods": periods[coupon_row["duration"]],
            "key": key,
            "fp": fingerprint,
        },
    ).first()
    return None if made is None else discount_by(conn, "id", made[0])


def discount_by(conn: Connection, column: str, value: Any) -> RowMapping | None:
    assert column in ("id", "request_key", "subscription_id")
    return (
        conn.execute(
            text(f"SELECT {DISCOUNT} FROM billing.discounts d WHERE d.{column} = :v"), {"v": value}
        )
        .mappings()
        .first()
    )


def discount(conn: Connection, row: RowMapping) -> Discount:
    found = coupon_by(conn, "id", row["coupon_id"])
    assert found is not None
    periods, used = row["periods"], row["periods_used"]
    return Discount.model_validate(
        {
            **row,
            "coupon": coupon(found),
            "periods_remaining": None if periods is None else max(periods - used, 0),
        }
    )


# -- tax rates -------------------------------------------------------------------------------


def insert_tax_rate(
    conn: Connection, tenant_id: str | None, body: TaxRateCreate, key: str, fingerprint: str
) -> RowMapping | None:
    """The new rate; None when the tenant has a live one for the place."""
    return (
        conn.execute(
            text(
                "INSERT INTO billing.tax_rates (id, tenant_id, country, region, percentage_bp, "
                "inclusive, display_name, request_key, request_fingerprint) VALUES (:id, "
                ":tenant, :country, :region, :bp, :inclusive, :name, :key, :fp) "
                f"ON CONFLICT DO NOTHING RETURNING {TAX}"
            ),
            {
                "id": uuid.uuid4(),
                "tenant": tenant_id,
                "country": body.country,
                "region": body.region,
                "bp": body.percentage_bp,
                "inclusive": body.inclusive,
                "name": body.display_name,
                "key": key,
                "fp": fingerprint,
            },
        )
        .mappings()
        .first()
    )


def tax_rate_by(conn: Connection, column: str, value: Any) -> RowMapping | None:
    assert column in ("id", "request_key")
    return (
        conn.execute(text(f"SELECT {TAX} FROM billing.tax_rates WHERE {column} = :v"), {"v": value})
        .mappings()
        .first()
    )


def tax_rates(conn: Connection, scope: dict[str, Any]) -> list[RowMapping]:
    """A tenant's rates (a handful per tenant: one page), live first, by place."""
    where, params = "true", {}
    if "tenant_id" in scope:
        where, params = "tenant_id = :tenant", {"tenant": scope["tenant_id"]}
    return list(
        conn.execute(
            text(
                f"SELECT {TAX} FROM billing.tax_rates WHERE {where} ORDER BY archived_at "
                "IS NOT NULL, country, region NULLS FIRST, created_at DESC LIMIT 500"
            ),
            params,
        ).mappings()
    )


def archive_tax_rate(conn: Connection, rate_id: uuid.UUID) -> RowMapping:
    row: RowMapping = (
        conn.execute(
            text(
                "UPDATE billing.tax_rates SET archived_at = coalesce(archived_at, now()) "
                f"WHERE id = :id RETURNING {TAX}"
            ),
            {"id": rate_id},
        )
        .mappings()
        .one()
    )
    return row
