"""Request and response bodies of coupons, discounts and tax rates (billing API)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from transactional.common.text import non_blank

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Tenant = Annotated[str, StringConstraints(max_length=100)]
Duration = Literal["once", "repeating", "forever"]
MAX_AMOUNT = 10**12  # minor units: far above any price, far below bigint


def basis_points(percent: float) -> int:
    """A percentage as whole basis points (12.345 → 1235), from its decimal form: a float's
    binary error never moves it (str() of a float is its shortest decimal)."""
    return int((Decimal(str(percent)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class CouponCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "SPRING25",
                    "name": "25 % off for three months",
                    "percent_off": 25,
                    "duration": "repeating",
                    "duration_periods": 3,
                    "max_redemptions": 100,
                }
            ]
        },
    )

    code: Code
    name: Annotated[str, non_blank(200)]
    percent_off: float | None = Field(
        None,
        ge=0.01,
        le=100,
        description="Percent off each invoice it discounts (to two decimals, half up)",
    )
    amount_off: int | None = Field(
        None, gt=0, le=MAX_AMOUNT, description="Minor units off, in `currency`"
    )
    currency: Currency | None = Field(None, description="With amount_off only")
    duration: Duration
    duration_periods: int | None = Field(None, ge=1, le=120, description="With repeating only")
    max_redemptions: int | None = Field(None, ge=1, le=2_000_000_000)
    redeem_by: AwareDatetime | None = None
    tenant_id: Tenant | None = Field(
        None, description="Internal services name any tenant; others only their own"
    )

    @model_validator(mode="after")
    def _consistent(self) -> CouponCreate:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("give exactly one of percent_off and amount_off")
        if (self.amount_off is None) != (self.currency is None):
            raise ValueError("currency goes with amount_off, and only with it")
        if (self.duration == "repeating") != (self.duration_periods is not None):
            raise ValueError("duration_periods goes with duration repeating, and only with it")
        return self

    @property
    def percent_off_bp(self) -> int | None:
        return None if self.percent_off is None else basis_points(self.percent_off)


class Coupon(BaseModel):
    id: UUID
    tenant_id: str | None
    code: str
    name: str
    percent_off: float | None
    amount_off: int | None
    currency: str | None
    duration: Duration
    duration_periods: int | None
    max_redemptions: int | None
    times_redeemed: int
    redeem_by: datetime | None
    archived_at: datetime | None
    created_at: datetime
    redeemable: bool = Field(description="Not archived, not expired, not used up")


class CouponPage(BaseModel):
    data: list[Coupon]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class DiscountCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"subscription_id": "0b4c8a53-1f0e-4a57-9d8a-7d2f3f1c2e10", "coupon": "SPRING25"}
            ]
        },
    )

    subscription_id: UUID
    coupon: Code = Field(description="The coupon's code")


class Discount(BaseModel):
    id: UUID
    tenant_id: str | None
    customer_id: str
    subscription_id: UUID
    coupon: Coupon
    start: datetime
    periods: int | None = Field(description="Invoices it discounts in all; null: forever")
    periods_used: int
    periods_remaining: int | None
    created_at: datetime


class TaxRateCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"country": "DE", "percentage": 19, "inclusive": True, "display_name": "MwSt."}
            ]
        },
    )

    country: Country
    region: Annotated[str, StringConstraints(min_length=1, max_length=50)] | None = None
    percentage: float = Field(ge=0, le=100, description="To two decimals, half up")
    inclusive: bool = Field(description="Prices already include it (VAT style) or not")
    display_name: Annotated[str, non_blank(100)]
    tenant_id: Tenant | None = Field(
        None, description="Internal services name any tenant; others only their own"
    )

    @property
    def percentage_bp(self) -> int:
        return basis_points(self.percentage)


class TaxRate(BaseModel):
    id: UUID
    tenant_id: str | None
    country: str
    region: str | None
    percentage: float
    inclusive: bool
    display_name: str
    archived_at: datetime | None
    created_at: datetime


class TaxRatePage(BaseModel):
    data: list[TaxRate]
    next_cursor: str | None = None


class QuoteCreate(BaseModel):
    """What a first charge costs (internal: the registration service, before it charges)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subscription_id": "0b4c8a53-1f0e-4a57-9d8a-7d2f3f1c2e10",
                    "customer_id": "6f1c2f9e-4f7b-4b43-9a51-6f0d2d0c8e11",
                    "tenant_id": "acme",
                    "plan_id": "pro-monthly",
                    "amount": 2900,
                    "currency": "usd",
                    "period_start": "2026-05-01T00:00:00Z",
                    "period_end": "2026-06-01T00:00:00Z",
                }
            ]
        },
    )

    subscription_id: UUID
    customer_id: str = Field(min_length=1, max_length=100)
    tenant_id: Tenant | None = None
    plan_id: str = Field(min_length=1, max_length=100)
    amount: int = Field(ge=0, le=MAX_AMOUNT)
    currency: Currency
    period_start: AwareDatetime
    period_end: AwareDatetime


class QuoteLine(BaseModel):
    kind: Literal["subscription", "discount"]
    description: str
    amount: int
    tax_amount: int


class Quote(BaseModel):
    subtotal: int
    discount: int
    tax: int
    tax_inclusive: bool
    total: int
    currency: str
    discount_id: UUID | None
    lines: list[QuoteLine]
