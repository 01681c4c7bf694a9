"""Request and response bodies of catalog administration: a tenant's plans and prices."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from transactional.common.text import non_blank
from transactional.subscription.models import Plan

Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
Name = Annotated[str, non_blank(200)]
Tenant = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# Minor units: far above any price, within the column's integer.
MAX_AMOUNT = 2_000_000_000
Amount = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)]


class PlanCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Gold",
                    "amount": 4900,
                    "currency": "usd",
                    "interval": "month",
                    "trial_days": 14,
                }
            ]
        },
    )

    name: Name
    amount: Amount = Field(description="Price per interval in minor units: price version 1")
    currency: Currency = Field(description="Stripe's lower-case code, e.g. usd")
    interval: Literal["month", "year"]
    trial_days: int = Field(0, strict=True, ge=0, le=730)
    tenant_id: Tenant | None = Field(
        None,
        description="Operators only (scope admin): the tenant to make it for; omitted, "
        "the platform's catalog. Others make their own tenant's plans.",
    )


class PriceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"amount": 5900}]})

    amount: Amount = Field(description="What new subscribers pay per interval from now on")


class PlanMigrate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{}, {"subscription_id": "6f1c2f9e-4f7b-4b43-9a51-6f0d2d0c8e11"}]
        },
    )

    subscription_id: UUID | None = Field(
        None, description="Only this subscriber; omitted, every subscriber of the plan"
    )


class PlanPrice(BaseModel):
    plan_id: str
    version: int
    amount: int
    currency: str


class Migrated(BaseModel):
    plan: Plan = Field(description="The plan at the price version subscribers move to")
    subscriptions: int = Field(
        description="How many subscriptions now move to it at their next renewal (those "
        "already on it, or already moving, are not counted)"
    )
    effective: Literal["next_renewal"] = "next_renewal"
