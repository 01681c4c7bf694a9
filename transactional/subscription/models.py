"""Request and response bodies of the subscription API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, model_validator

SubscriptionStatus = Literal["incomplete", "trialing", "active", "past_due", "paused", "canceled"]


class Plan(BaseModel):
    id: str
    name: str
    amount: int = Field(description="Price per interval in minor units (cents)")
    currency: str
    interval: Literal["month", "year"]
    trial_days: int
    tenant_id: str | None = Field(
        None, description="The tenant selling it; null: the platform's catalog, sold by all"
    )
    price_version: int = Field(
        1, description="The version `amount` is: the current one, or the one a subscription pays"
    )
    archived_at: datetime | None = Field(None, description="Set once no longer sold")


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "6f1c2f9e-4f7b-4b43-9a51-6f0d2d0c8e11",
                    "plan_id": "pro-monthly",
                    "trial": True,
                }
            ]
        },
    )

    customer_id: UUID
    plan_id: str = Field(min_length=1, max_length=100)
    trial: StrictBool = False
    tenant_id: str | None = Field(
        None,
        max_length=100,
        description="Optional; when given it must be the customer's tenant, and only "
        "internal services may name a tenant other than their own",
    )


class PlanChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"plan_id": "pro-monthly"}]}
    )

    plan_id: str = Field(min_length=1, max_length=100)


class Cancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_period_end: StrictBool = True
    prorate: StrictBool = Field(
        False,
        description="With at_period_end false: refund the unused time of the paid period "
        "(a credit note, by the second). At the period's end nothing is unused: no effect.",
    )


class Activate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_id: str = Field(min_length=1, max_length=100, description="The first charge")


class ProrationOut(BaseModel):
    """What an upgrade cost now (paywall/pricing.py: by the second, each side rounded half
    up on its own), and the invoice it was charged on (none when nothing was due)."""

    seconds_left: int
    seconds_in_period: int
    credit: int
    charge: int
    amount_due: int
    invoice_id: str | None = None


class Subscription(BaseModel):
    id: UUID
    customer_id: UUID
    tenant_id: str | None
    plan_id: str
    price_version: int = Field(description="The plan's price version it is billed at")
    next_price_version: int | None = Field(
        description="A migration to a newer price version, taking effect at the next renewal"
    )
    pending_plan_id: str | None
    pending_price_version: int | None
    status: str
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    paused_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PlanChanged(BaseModel):
    subscription: Subscription
    effective: Literal["now", "period_end"]
    proration: ProrationOut | None = None


# -- billing's internal view -----------------------------------------------------------------


class DueSubscription(BaseModel):
    subscription: Subscription
    action: Literal["renew", "convert_trial", "cancel"]
    plan: Plan = Field(description="What the next period is billed on (a pending downgrade)")
    next_period_start: datetime
    next_period_end: datetime


class DuePage(BaseModel):
    data: list[DueSubscription]
    next_after: UUID | None = Field(description="Pass as `after` for the next page")


class PeriodAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_id: str = Field(min_length=1, max_length=100)
    payment_id: str = Field(min_length=1, max_length=100)
    plan_id: str = Field(min_length=1, max_length=100)
    period_start: AwareDatetime
    period_end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> PeriodAdvance:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


# A billing run sends a day's renewals in batches of 100; the bound keeps one request short.
MAX_RENEWALS = 500


class Renewal(PeriodAdvance):
    """One subscription's renewal in a batch: what `/renew` or `/reactivate` would take."""

    subscription_id: UUID
    action: Literal["renew", "reactivate"]


class RenewalBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    renewals: list[Renewal] = Field(min_length=1, max_length=MAX_RENEWALS)

    @model_validator(mode="after")
    def _one_each(self) -> RenewalBatch:
        # One subscription's renewals must keep their order: they go one call at a time.
        ids = [r.subscription_id for r in self.renewals]
        if len(set(ids)) != len(ids):
            raise ValueError("a subscription may appear once in a batch")
        return self


class RenewalOutcome(BaseModel):
    subscription_id: UUID
    status: int = Field(description="What its own call would have answered: 200, 404 or 409")
    problem: dict[str, object] | None = Field(None, description="The refusal, when not 200")


class RenewalResults(BaseModel):
    results: list[RenewalOutcome] = Field(description="In the order the batch gave them")


class PastDue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_id: str = Field(min_length=1, max_length=100)
    decline_code: str | None = Field(None, max_length=100)


class UpgradeApply(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"from_plan_id": "basic-monthly", "plan_id": "pro-monthly"}]
        },
    )

    invoice_id: str = Field(min_length=1, max_length=100, description="The paid proration")
    from_plan_id: str = Field(min_length=1, max_length=100)
    plan_id: str = Field(min_length=1, max_length=100)
    period_start: AwareDatetime = Field(description="The period the upgrade was paid in")


class Expire(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(description="When it ended: the period end, or the dunning end")
    reason: Literal["period_end", "dunning_exhausted"]
