"""Request and response bodies of the billing API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from transactional.billing.credit_models import CreditNoteSweep
from transactional.common.money import MAX_AMOUNT, Currency
from transactional.common.pagination import Page

InvoiceStatus = Literal["draft", "open", "paid", "uncollectible", "void"]


class InvoiceLine(BaseModel):
    id: UUID
    kind: Literal["subscription", "proration_credit", "proration_charge", "discount"]
    description: str
    plan_id: str | None
    amount: int = Field(description="Minor units; a credit or a discount is negative")
    tax_amount: int = Field(0, description="The line's share of the invoice's tax")
    period_start: datetime
    period_end: datetime


class PaymentAttempt(BaseModel):
    attempt: int
    attempted_on: date
    status: Literal["pending", "succeeded", "failed"]
    payment_id: str | None
    decline_code: str | None
    created_at: datetime
    finished_at: datetime | None


class Invoice(BaseModel):
    id: UUID
    tenant_id: str | None
    customer_id: str
    subscription_id: UUID
    kind: Literal["renewal", "trial_conversion", "proration", "first_period"]
    status: InvoiceStatus
    currency: str
    plan_id: str
    previous_plan_id: str | None
    period_start: datetime
    period_end: datetime
    billing_date: date
    subtotal: int
    discount: int
    tax: int
    tax_inclusive: bool = Field(False, description="The tax is in the prices: not added")
    total: int
    credit_applied: int = Field(
        description="Customer credit (from credit notes) this invoice consumed when collected"
    )
    amount_paid: int = Field(description="What was charged: total - credit_applied once paid")
    amount_due: int = Field(description="What is still to be charged: total - credit_applied")
    payment_id: str | None
    decline_code: str | None
    created_at: datetime
    finalized_at: datetime | None
    paid_on: date | None
    voided_at: datetime | None
    lines: list[InvoiceLine]
    payment_attempts: list[PaymentAttempt]


InvoicePage = Page[Invoice]


class ProrationCreate(BaseModel):
    """What the subscription service asks for when an upgrade takes effect now (internal)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subscription_id": "0b4c8a53-1f0e-4a57-9d8a-7d2f3f1c2e10",
                    "customer_id": "6f1c2f9e-4f7b-4b43-9a51-6f0d2d0c8e11",
                    "currency": "usd",
                    "from_plan_id": "basic-monthly",
                    "from_amount": 900,
                    "plan_id": "pro-monthly",
                    "amount": 2900,
                }
            ]
        },
    )

    subscription_id: UUID
    customer_id: str = Field(min_length=1, max_length=100)
    tenant_id: str | None = Field(None, max_length=100)
    currency: str = Field(min_length=3, max_length=3)
    from_plan_id: str = Field(min_length=1, max_length=100)
    from_amount: int = Field(ge=0)
    plan_id: str = Field(min_length=1, max_length=100, description="The plan upgraded to")
    amount: int = Field(ge=0, description="The new plan's price per period")
    period_start: AwareDatetime
    period_end: AwareDatetime
    at: AwareDatetime = Field(description="The moment the change takes effect")

    @model_validator(mode="after")
    def _ordered(self) -> ProrationCreate:
        if not self.period_start <= self.at < self.period_end:
            raise ValueError("at must fall within [period_start, period_end)")
        return self


class FirstPeriodCreate(BaseModel):
    """A signup's first charge, to be recorded as its first period's paid invoice (internal:
    the registration saga, right after the charge)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subscription_id": "0b4c8a53-1f0e-4a57-9d8a-7d2f3f1c2e10",
                    "customer_id": "6f1c2f9e-4f7b-4b43-9a51-6f0d2d0c8e11",
                    "tenant_id": None,
                    "plan_id": "pro-monthly",
                    "amount": 2900,
                    "currency": "usd",
                    "period_start": "2026-11-30T10:00:00+00:00",
                    "period_end": "2026-12-30T10:00:00+00:00",
                    "payment_id": "3c9d1a0e-6b1f-4f55-8f6e-2a1d0c9b8e77",
                    "charged": 2900,
                    "payment_key": "subscription:0b4c8a53-1f0e-4a57-9d8a-7d2f3f1c2e10:first-period",
                }
            ]
        },
    )

    subscription_id: UUID
    customer_id: str = Field(min_length=1, max_length=100)
    tenant_id: str | None = Field(None, max_length=100)
    plan_id: str = Field(min_length=1, max_length=100)
    amount: int = Field(
        ge=0, le=MAX_AMOUNT, description="The plan's price per period, before discount and tax"
    )
    currency: Currency
    period_start: AwareDatetime
    period_end: AwareDatetime
    payment_id: str = Field(
        min_length=1,
        max_length=200,
        description="The payment service's id of the first charge (`free:<subscription>` when "
        "a coupon left nothing to charge)",
    )
    charged: int = Field(ge=0, le=MAX_AMOUNT, description="What the charge took, in minor units")
    payment_key: str | None = Field(
        None, max_length=300, description="The charge's Idempotency-Key, kept on its attempt"
    )

    @model_validator(mode="after")
    def _ordered(self) -> FirstPeriodCreate:
        if not self.period_start < self.period_end:
            raise ValueError("period_start must come before period_end")
        return self


class InvoiceSweep(BaseModel):
    """What one recovery sweep over proration invoices found and did."""

    examined: int = 0
    paid: int = 0
    voided: int = 0
    still_open: int = 0
    applied: int = 0
    refused: int = 0
    errors: int = 0
    credit_notes: CreditNoteSweep = Field(
        default_factory=CreditNoteSweep,
        description="Credit notes whose refund outcome was unknown, asked again",
    )
