"""Subscription API: plans, subscribe, change plan, cancel, pause and resume."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection

from paywall.db import engine
from paywall.settings import get_settings
from transactional.common import tenancy
from transactional.common.customer_lookup import CustomerLookup, customer_lookup
from transactional.common.problems import Problem
from transactional.common.security import Principal
from transactional.subscription import lifecycle, repository
from transactional.subscription.models import (
    Activate,
    Cancel,
    Plan,
    PlanChange,
    PlanChanged,
    ProrationOut,
    Subscription,
    SubscriptionCreate,
)

router = APIRouter(tags=["subscriptions"])
Reader = Annotated[Principal, Depends(tenancy.member("subscriptions:read"))]
Writer = Annotated[Principal, Depends(tenancy.member("subscriptions:write"))]
Internal = Annotated[Principal, Depends(tenancy.member("subscriptions:write", "internal"))]
CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such subscription visible to the caller"},
    409: {"description": "The change is not allowed in the subscription's state"},
}


def _customers() -> CustomerLookup:
    settings = get_settings()
    return customer_lookup(settings, *settings.service_client("subscription"))


def _owned(principal: Principal, sub: Subscription) -> bool:
    return tenancy.owns(principal, sub.customer_id, sub.tenant_id)


def _visible(conn: Connection, principal: Principal, sub_id: uuid.UUID) -> repository.Subscription:
    sub = repository.get(conn, sub_id, lock=True)
    if sub is None or not _owned(principal, sub):
        raise tenancy.not_found("subscription", sub_id)
    return sub


def _refused(exc: lifecycle.TransitionRefused) -> Problem:
    return Problem(
        409,
        "Transition Not Allowed",
        str(exc),
        type_="https://paywall.dev/problems/transition",
        status_now=exc.current,
    )


@router.get("/v1/plans", response_model=list[Plan], tags=["plans"])
def list_plans() -> list[Plan]:
    with engine(get_settings()).connect() as conn:
        return repository.plans(conn)


@router.post(
    "/v1/subscriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=Subscription,
    responses={
        404: {"description": "No such customer visible to the caller"},
        409: {"description": "The customer already has a live subscription"},
        200: {"description": "Replay of an earlier request with the same key"},
        503: {"description": "The customer service could not be asked; retry"},
    },
)
def create_subscription(
    body: SubscriptionCreate,
    principal: Writer,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Subscription:
    # The customer service says whose customer this is; the subscription is that tenant's.
    customer = _customers().owned(principal, str(body.customer_id), body.tenant_id)
    key = f"{principal.client_id}:{idempotency_key}" if idempotency_key else None
    with engine(get_settings()).begin() as conn:
        plan = repository.plan(conn, body.plan_id)
        if plan is None:
            raise Problem(422, "Unknown Plan", f"no active plan {body.plan_id!r}")
        try:
            sub = repository.create(
                conn, body.customer_id, customer.tenant_id, plan, body.trial, key
            )
        except repository.LiveSubscriptionExists as exc:
            if key and repository.by_request_key(conn, key) is not None:
                response.status_code = status.HTTP_200_OK
                return exc.existing
            # Named only if the caller owns it: a subscription another tenant made for this
            # customer before creation checked the customer's tenant stays hidden.
            raise Problem(
                409,
                "Already Subscribed",
                "the customer has a live subscription",
                subscription_id=str(exc.existing.id) if _owned(principal, exc.existing) else None,
            ) from exc
    response.headers["Location"] = f"/v1/subscriptions/{sub.id}"
    return sub


@router.get("/v1/subscriptions/{sub_id}", response_model=Subscription, responses=CHANGE_ERRORS)
def get_subscription(sub_id: uuid.UUID, principal: Reader) -> Subscription:
    with engine(get_settings()).connect() as conn:
        sub = repository.get(conn, sub_id)
    if sub is None or not _owned(principal, sub):
        raise tenancy.not_found("subscription", sub_id)
    return sub


@router.get(
    "/v1/customers/{customer_id}/subscriptions",
    response_model=list[Subscription],
    responses={
        404: {"description": "No such customer visible to the caller"},
        503: {"description": "The customer service could not be asked; retry"},
    },
)
def customer_subscriptions(customer_id: uuid.UUID, principal: Reader) -> list[Subscription]:
    _customers().owned(principal, str(customer_id))
    with engine(get_settings()).connect() as conn:
        subs = repository.for_customer(conn, customer_id)
    return [s for s in subs if _owned(principal, s)]


@router.post(
    "/v1/subscriptions/{sub_id}/activate",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="Activate after the first charge (internal)",
)
def activate(sub_id: uuid.UUID, body: Activate, principal: Internal) -> Subscription:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        if sub.status == "active":
            return sub  # a retried activation changes nothing
        try:
            return repository.move(
                conn, sub, "active", "subscription.activated", event={"payment_id": body.payment_id}
            )
        except lifecycle.TransitionRefused as exc:
            raise _refused(exc) from exc


@router.post(
    "/v1/subscriptions/{sub_id}/change-plan",
    response_model=PlanChanged,
    responses=CHANGE_ERRORS,
    summary="Upgrade now (prorated by day) or downgrade at period end",
)
def change_plan(sub_id: uuid.UUID, body: PlanChange, principal: Writer) -> PlanChanged:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        if sub.status not in ("active", "trialing", "past_due"):
            raise Problem(
                409, "Transition Not Allowed", f"a {sub.status} subscription cannot change plan"
            )
        old = repository.plan(conn, sub.plan_id)
        new = repository.plan(conn, body.plan_id)
        if new is None or old is None:
            raise Problem(422, "Unknown Plan", f"no active plan {body.plan_id!r}")
        if new.id == old.id:
            raise Problem(409, "Same Plan", "the subscription is already on that plan")
        if (new.currency, new.interval) != (old.currency, old.interval):
            raise Problem(
                422, "Incompatible Plan", "plan changes keep the currency and the billing interval"
            )
        if new.amount < old.amount:
            moved = repository.move(
                conn,
                sub,
                sub.status,
                "subscription.downgrade_scheduled",
                {"pending_plan_id": new.id},
                same_state=True,
            )
            return PlanChanged(subscription=moved, effective="period_end")
        now = datetime.now(UTC)
        proration = (
            lifecycle.prorate(
                old.amount, new.amount, sub.current_period_start, sub.current_period_end, now
            )
            if sub.status != "trialing"
            else lifecycle.Proration(0, 1, 0, 0)
        )
        moved = repository.move(
            conn,
            sub,
            sub.status,
            "subscription.upgraded",
            {"plan_id": new.id, "pending_plan_id": None},
            event={
                "previous_plan_id": old.id,
                "proration_amount_due": proration.amount_due,
                "currency": new.currency,
            },
            same_state=True,
        )
    out = ProrationOut(amount_due=proration.amount_due, **vars(proration))
    return PlanChanged(subscription=moved, effective="now", proration=out)


@router.post(
    "/v1/subscriptions/{sub_id}/cancel", response_model=Subscription, responses=CHANGE_ERRORS
)
def cancel(sub_id: uuid.UUID, body: Cancel, principal: Writer) -> Subscription:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        try:
            if body.at_period_end and sub.status in ("active", "trialing", "past_due"):
                return repository.move(
                    conn,
                    sub,
                    sub.status,
                    "subscription.cancel_scheduled",
                    {"cancel_at_period_end": True},
                    same_state=True,
                )
            return repository.move(
                conn, sub, "canceled", "subscription.canceled", {"canceled_at": datetime.now(UTC)}
            )
        except lifecycle.TransitionRefused as exc:
            raise _refused(exc) from exc


@router.post(
    "/v1/subscriptions/{sub_id}/pause", response_model=Subscription, responses=CHANGE_ERRORS
)
def pause(sub_id: uuid.UUID, principal: Writer) -> Subscription:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        try:
            return repository.move(
                conn, sub, "paused", "subscription.paused", {"paused_at": datetime.now(UTC)}
            )
        except lifecycle.TransitionRefused as exc:
            raise _refused(exc) from exc


@router.post(
    "/v1/subscriptions/{sub_id}/resume", response_model=Subscription, responses=CHANGE_ERRORS
)
def resume(sub_id: uuid.UUID, principal: Writer) -> Subscription:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        if sub.status != "paused":
            raise Problem(
                409, "Transition Not Allowed", f"a {sub.status} subscription is not paused"
            )
        return repository.move(conn, sub, "active", "subscription.resumed", {"paused_at": None})


# -- internal: what billing needs (no other service reads the subscription tables) --------
#
# Billing asks which subscriptions end their period on a day, then reports the outcome of
# each charge. Every move below goes through `lifecycle.transition` (via repository.move)
# and writes its outbox event in the same transaction. Each is idempotent: a billing run
# that is re-run, or that resumes after a crash, gets the same answer and no second event.

InternalReader = Annotated[Principal, Depends(tenancy.member("subscriptions:read", "internal"))]


class DueSubscription(BaseModel):
    subscription: Subscription
    action: Literal["renew", "convert_trial", "cancel"]
    plan: Plan = Field(description="What the next period is billed on (a pending downgrade)")
    next_period_start: datetime
    next_period_end: datetime


class DuePage(BaseModel):
    data: list[DueSubscription]
    next_after: uuid.UUID | None = Field(description="Pass as `after` for the next page")


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


class PastDue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_id: str = Field(min_length=1, max_length=100)
    decline_code: str | None = Field(None, max_length=100)


class Expire(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(description="When it ended: the period end, or the dunning end")
    reason: Literal["period_end", "dunning_exhausted"]


@router.get(
    "/v1/due-subscriptions",
    response_model=DuePage,
    summary="Subscriptions whose period ends on a day (internal; billing runs)",
)
def due_subscriptions(
    principal: InternalReader,
    date_: Annotated[date, Query(alias="date", description="UTC day, YYYY-MM-DD")],
    after: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> DuePage:
    with engine(get_settings()).connect() as conn:
        found = repository.due_on(conn, date_, after, limit)
    data = []
    for sub, plan in found:
        action: Literal["renew", "convert_trial", "cancel"] = (
            "cancel"
            if sub.cancel_at_period_end
            else "convert_trial"
            if sub.status == "trialing"
            else "renew"
        )
        data.append(
            DueSubscription(
                subscription=sub,
                action=action,
                plan=plan,
                next_period_start=sub.current_period_end,
                next_period_end=lifecycle.period_end(sub.current_period_end, plan.interval),
            )
        )
    return DuePage(data=data, next_after=found[-1][0].id if len(found) == limit else None)


def _advance(
    conn: Connection, sub: Subscription, body: PeriodAdvance, from_: set[str], event_type: str
) -> Subscription:
    if (
        sub.status == "active"
        and sub.current_period_start == body.period_start
        and sub.plan_id == body.plan_id
    ):
        return sub  # already applied by an earlier call
    if sub.status not in from_ or sub.current_period_end != body.period_start:
        raise Problem(
            409,
            "Transition Not Allowed",
            f"a {sub.status} subscription whose period ends {sub.current_period_end.isoformat()}"
            f" cannot move to a period starting {body.period_start.isoformat()}",
            type_="https://paywall.dev/problems/transition",
            status_now=sub.status,
        )
    plan = repository.any_plan(conn, body.plan_id)
    if plan is None:
        raise Problem(422, "Unknown Plan", f"no plan {body.plan_id!r}")
    changes: dict[str, Any] = {
        "current_period_start": body.period_start,
        "current_period_end": body.period_end,
    }
    event: dict[str, Any] = {
        "payment_id": body.payment_id,
        "invoice_id": body.invoice_id,
        "amount": plan.amount,
        "currency": plan.currency,
        "interval": plan.interval,
    }
    if plan.id != sub.plan_id:  # a downgrade scheduled for period end takes effect now
        changes |= {"plan_id": plan.id, "pending_plan_id": None}
        event["previous_plan_id"] = sub.plan_id
    try:
        # A renewal keeps an active subscription active: a deliberate same-state move.
        return repository.move(conn, sub, "active", event_type, changes, event, same_state=True)
    except lifecycle.TransitionRefused as exc:
        raise _refused(exc) from exc


@router.post(
    "/v1/subscriptions/{sub_id}/renew",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="Start the next period after billing collected it (internal)",
)
def renew(sub_id: uuid.UUID, body: PeriodAdvance, principal: Internal) -> Subscription:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        return _advance(conn, sub, body, {"active", "trialing"}, "subscription.renewed")


@router.post(
    "/v1/subscriptions/{sub_id}/reactivate",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="Paid during dunning: back to active, into the period just paid (internal)",
)
def reactivate(sub_id: uuid.UUID, body: PeriodAdvance, principal: Internal) -> Subscription:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        if sub.status != "past_due":  # never marked past due (that call was lost): a renewal
            return _advance(conn, sub, body, {"active", "trialing"}, "subscription.renewed")
        return _advance(conn, sub, body, {"past_due"}, "subscription.reactivated")


@router.post(
    "/v1/subscriptions/{sub_id}/mark-past-due",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="The renewal charge failed; dunning retries follow (internal)",
)
def mark_past_due(sub_id: uuid.UUID, body: PastDue, principal: Internal) -> Subscription:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        if sub.status == "past_due":
            return sub
        try:
            return repository.move(
                conn,
                sub,
                "past_due",
                "subscription.past_due",
                event={"invoice_id": body.invoice_id, "decline_code": body.decline_code},
            )
        except lifecycle.TransitionRefused as exc:
            raise _refused(exc) from exc


@router.post(
    "/v1/subscriptions/{sub_id}/expire",
    response_model=Subscription,
    responses=CHANGE_ERRORS,
    summary="End it: canceled at period end, or dunning exhausted (internal)",
)
def expire(sub_id: uuid.UUID, body: Expire, principal: Internal) -> Subscription:
    with engine(get_settings()).begin() as conn:
        sub = _visible(conn, principal, sub_id)
        if sub.status == "canceled":
            return sub
        try:
            return repository.move(
                conn, sub, "canceled", "subscription.canceled", {"canceled_at": body.at}
            )
        except lifecycle.TransitionRefused as exc:
            raise _refused(exc) from exc
