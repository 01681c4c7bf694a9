"""Request and response bodies of the credit note API (Stripe's shape, trimmed)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from transactional.common.pagination import Page

Reason = Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory"]
Settlement = Literal["refund", "customer_balance"]
CreditNoteStatus = Literal["pending", "issued", "void"]


class CreditNoteLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_line_id: UUID
    amount: int = Field(gt=0, description="Minor units of that line to credit")


class CreditNoteCreate(BaseModel):
    """All the invoice (neither `amount` nor `lines`), an amount, or amounts per line."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"amount": 500, "reason": "product_unsatisfactory", "settlement": "refund"},
                {
                    "lines": [
                        {"invoice_line_id": "7d0c9b1e-2f9a-4d6b-8a41-0f5e3c2b1a10", "amount": 300}
                    ],
                    "reason": "order_change",
                    "memo": "Seats removed",
                    "settlement": "customer_balance",
                },
            ]
        },
    )

    amount: int | None = Field(None, gt=0, description="Minor units; none: all that is left")
    lines: list[CreditNoteLineIn] | None = Field(None, min_length=1, max_length=100)
    reason: Reason | None = None
    memo: str | None = Field(None, max_length=500)
    settlement: Settlement = Field(
        "refund",
        description="`refund`: back to the card the invoice was paid with; "
        "`customer_balance`: kept as credit the customer's next invoices consume",
    )

    @model_validator(mode="after")
    def _one_way(self) -> CreditNoteCreate:
        if self.amount is not None and self.lines is not None:
            raise ValueError("give amount or lines, not both")
        return self


class CreditNoteLine(BaseModel):
    invoice_line_id: UUID | None
    description: str
    amount: int


class CreditNote(BaseModel):
    id: UUID
    invoice_id: UUID
    customer_id: str
    tenant_id: str | None
    currency: str
    amount: int = Field(description="Minor units given back")
    reason: Reason | None
    memo: str | None
    settlement: Settlement
    origin: Literal["api", "cancellation"]
    status: CreditNoteStatus = Field(
        description="`pending`: the refund's outcome is not known yet (retry with the same "
        "Idempotency-Key, or the recovery sweep finishes it); `void`: the refund was refused"
    )
    refund_id: str | None = Field(description="The payment service's refund")
    failure: str | None
    created_at: datetime
    issued_at: datetime | None
    lines: list[CreditNoteLine]


CreditNotePage = Page[CreditNote]


class CustomerBalance(BaseModel):
    customer_id: str
    balances: dict[str, int] = Field(
        description="Customer credit per currency, minor units; the next invoices consume it"
    )


class CancellationCredit(BaseModel):
    """The subscription service canceling now with `prorate`: the unused time of the paid
    period, refunded (internal)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subscription_id": "0b4c8a53-1f0e-4a57-9d8a-7d2f3f1c2e10",
                    "period_start": "2026-11-01T00:00:00Z",
                    "period_end": "2026-12-01T00:00:00Z",
                    "at": "2026-11-16T00:00:00Z",
                }
            ]
        },
    )

    subscription_id: UUID
    period_start: AwareDatetime
    period_end: AwareDatetime
    at: AwareDatetime = Field(description="The moment the cancellation takes effect")

    @model_validator(mode="after")
    def _ordered(self) -> CancellationCredit:
        if not self.period_start <= self.at <= self.period_end:
            raise ValueError("at must fall within [period_start, period_end]")
        return self


class CreditNoteSweep(BaseModel):
    """What one recovery sweep over credit notes with an unknown refund found and did."""

    examined: int = 0
    issued: int = 0
    voided: int = 0
    still_pending: int = 0
    cancellations_confirmed: int = Field(
        default=0, description="Prorated cancellations' subscriptions found (or made) canceled"
    )
    errors: int = 0
