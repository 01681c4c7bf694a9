"""Request and response bodies of the payment API (what OpenAPI shows)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from transactional.common.money import Amount, Currency, PaymentMethodId
from transactional.common.text import non_blank

CustomerId = Annotated[str, non_blank(64)]
TenantId = Annotated[str, non_blank(64)]
PaymentStatus = Literal["pending", "succeeded", "failed", "refunded", "partially_refunded"]
EMAIL_PATTERN = r"^[^@ \t\n\r\f\v]+@[^@ \t\n\r\f\v]+\.[^@ \t\n\r\f\v]+$"


class AccountCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "5f0c6f0e-6a1e-4d38-9a51-0b7f4b1c2d3e",
                    "email": "ada@example.com",
                    "name": "Ada Lovelace",
                    "tenant_id": "acme",
                }
            ]
        },
    )

    customer_id: CustomerId
    # Whitespace spelled out: `\s` means more in pydantic's regex engine than in the JSON
    # Schema (ECMA-262) one the OpenAPI document promises, so they disagreed on U+0085.
    email: Annotated[str, StringConstraints(max_length=254, pattern=EMAIL_PATTERN)]
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    tenant_id: TenantId | None = Field(
        None,
        description="Optional; when given it must be the customer's tenant, and only "
        "internal services may name a tenant other than their own",
    )
    payment_method_id: PaymentMethodId | None = Field(
        None,
        description="Optional: a Stripe PaymentMethod to attach and make the default in the "
        "same call, as `POST /v1/accounts/{customer_id}/payment-methods` does",
    )


class CardSummary(BaseModel):
    """The default card as its holder may be shown it (Stripe's PaymentMethod.card)."""

    brand: str = Field(description="visa, mastercard, amex, …")
    last4: str
    exp_month: int | None
    exp_year: int | None


class Account(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "5f0c6f0e-6a1e-4d38-9a51-0b7f4b1c2d3e",
                    "tenant_id": "acme",
                    "stripe_customer_id": "cus_Q2x9fLwYq1",
                    "default_payment_method": "pm_1PqXyz",
                    "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
                    "created_at": "2026-11-25T10:00:00Z",
                }
            ]
        }
    )

    customer_id: str
    tenant_id: str | None
    stripe_customer_id: str
    default_payment_method: str | None
    card: CardSummary | None = Field(
        None, description="The default card; null before one is attached, or when not a card"
    )
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Account:
        card = None
        if row.get("card_last4"):
            card = CardSummary(
                brand=row["card_brand"],
                last4=row["card_last4"],
                exp_month=row["card_exp_month"],
                exp_year=row["card_exp_year"],
            )
        return cls.model_validate({**row, "card": card})


class PaymentMethodAttach(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"payment_method_id": "pm_1PqXyz"}]}
    )

    payment_method_id: PaymentMethodId


class PaymentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "5f0c6f0e-6a1e-4d38-9a51-0b7f4b1c2d3e",
                    "amount": 1999,
                    "currency": "usd",
                    "description": "Pro plan, first month",
                    "metadata": {"subscription_id": "sub_42"},
                }
            ]
        },
    )

    customer_id: CustomerId
    amount: Amount
    currency: Currency
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    metadata: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=40)],
        Annotated[str, StringConstraints(max_length=500)],
    ] = Field(default_factory=dict, max_length=20)

    def fingerprint_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# A billing run sends its charges in batches of at most this many: one request stays
# short even when each charge waits on Stripe.
MAX_BATCH_PAYMENTS = 50


class PaymentBatchItem(PaymentCreate):
    """One charge of a batch: what `POST /v1/payments` takes, with its Idempotency-Key."""

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=255)]

    def fingerprint_fields(self) -> dict[str, Any]:
        # The single call's fingerprint: one key asked alone and then in a batch (or the
        # other way round) is one payment, never "reused with other parameters".
        return self.model_dump(mode="json", exclude={"idempotency_key"})


class PaymentBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payments: list[PaymentBatchItem] = Field(min_length=1, max_length=MAX_BATCH_PAYMENTS)

    @model_validator(mode="after")
    def _one_each(self) -> PaymentBatch:
        # Two items with one key would have the second wait on the first's lock.
        keys = [p.idempotency_key for p in self.payments]
        if len(set(keys)) != len(keys):
            raise ValueError("an Idempotency-Key may appear once in a batch")
        return self


class PaymentOutcome(BaseModel):
    idempotency_key: str
    status: int = Field(description="What its own `POST /v1/payments` would have answered")
    body: dict[str, Any] = Field(description="That call's body: the payment, or the problem")
    retry_after: float | None = Field(
        None, description="Seconds, when the answer says to retry later (409, 503)"
    )


class PaymentResults(BaseModel):
    results: list[PaymentOutcome] = Field(description="In the order the batch gave them")


class Payment(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d",
                    "customer_id": "5f0c6f0e-6a1e-4d38-9a51-0b7f4b1c2d3e",
                    "amount": 1999,
                    "currency": "usd",
                    "description": "Pro plan, first month",
                    "metadata": {"subscription_id": "sub_42"},
                    "status": "succeeded",
                    "amount_refunded": 0,
                    "stripe_payment_intent_id": "pi_3PqXyz",
                    "failure_code": None,
                    "decline_code": None,
                    "failure_message": None,
                    "created_at": "2026-11-25T10:00:00Z",
                    "updated_at": "2026-11-25T10:00:01Z",
                }
            ]
        }
    )

    id: uuid.UUID
    customer_id: str
    amount: int
    currency: str
    description: str | None
    metadata: dict[str, str]
    status: PaymentStatus
    amount_refunded: int
    stripe_payment_intent_id: str | None
    failure_code: str | None
    decline_code: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"amount": 500}]})

    amount: Amount | None = Field(None, description="Omitted or null: all that is left.")


class Refund(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "7d9c1b2a-0e4f-4c3b-9a8d-6e5f4a3b2c1d",
                    "payment_id": "0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d",
                    "amount": 500,
                    "currency": "usd",
                    "status": "succeeded",
                    "stripe_refund_id": "re_3PqXyz",
                    "payment_status": "partially_refunded",
                    "created_at": "2026-11-25T11:00:00Z",
                }
            ]
        }
    )

    id: uuid.UUID
    payment_id: uuid.UUID
    amount: int
    currency: str
    status: Literal["pending", "succeeded", "failed"]
    stripe_refund_id: str | None
    payment_status: PaymentStatus
    created_at: datetime


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool = Field(description="True when this event id was seen before (ignored).")


class PendingSweep(BaseModel):
    examined: int = 0
    settled: int = Field(default=0, description="Recorded as Stripe had it, or charged now")
    still_pending: int = Field(default=0, description="Stripe is still processing")
    busy: int = Field(default=0, description="A request holds it right now")
    unavailable: int = Field(default=0, description="Stripe or the database failed: next sweep")
