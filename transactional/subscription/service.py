"""The subscription rules: who may subscribe whom, which moves are allowed, what they cost.

Every state change goes through `lifecycle.transition` (via `repository.move`) and writes
its outbox event in the same transaction; a refused move is a 409 naming the state now.
Billing's moves (renew, reactivate, mark past due, expire) are idempotent: a billing run
that is re-run, or resumes after a crash, gets the same answer and no second event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from paywall import pricing
from paywall.shards import Shard
from transactional.common import errors, idempotency, tenancy
from transactional.common.customer_lookup import CustomerLookup
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer
from transactional.common.security import Principal
from transactional.subscription import lifecycle, repository
from transactional.subscription.billing import Billing
from transactional.subscription.models import (
    DuePage,
    DueSubscription,
    PeriodAdvance,
    Plan,
    PlanChanged,
    ProrationOut,
    RenewalBatch,
    RenewalOutcome,
    RenewalResults,
    Subscription,
    SubscriptionCreate,
    UpgradeApply,
)

# What a plan change may start from; everything else is over or not yet begun.
CHANGEABLE = ("active", "trialing", "past_due")


def create(
    engine: Engine,
    customers: CustomerLookup,
    principal: Principal,
    key: str | None,
    body: SubscriptionCreate,
) -> Answer:
    """A subscription for a customer the caller may act for; one per key, one live per
    customer. A replay with the key answers 201 with the subscription as it is now."""
    # The customer service says whose customer this is; the subscription is that tenant's.
    customer = customers.owned(principal, str(body.customer_id), body.tenant_id)
    scoped = idempotency.scoped(principal, key) if key else None
    asked = idempotency.fingerprint(body.model_dump(mode="json"))
    with engine.begin() as conn:
        if scoped:
            idempotency.hold(conn, scoped)
            earlier = repository.by_request_key(conn, scoped)
            if earlier is not None:
                # Keys stored before fingerprints were kept cannot be compared: accepted.
                idempotency.check_same(earlier.fingerprint or asked, asked)
                return Answer(201, earlier.subscription.model_dump(mode="json"), replayed=True)
        # The customer's tenant's catalog (its plans and the platform's), on sale; the
        # subscription is pinned to the plan's price now.
        plan = repository.plan(conn, body.plan_id, repository.Catalog(customer.tenant_id))
        if plan is None:
            raise DomainError(errors.UNKNOWN_PLAN, f"no active plan {body.plan_id!r}")
        try:
            sub = repository.create(
                conn, body.customer_id, customer.tenant_id, plan, body.trial, scoped, asked
            )
        except repository.LiveSubscriptionExists as exc:
            # Named only if the caller owns it: a subscription another tenant made for this
            # customer before creation checked the customer's tenant stays hidden.
            raise DomainError(
                errors.ALREADY_SUBSCRIBED,
                "the customer has a live subscription",
                subscription_id=str(exc.existing.id) if _owned(principal, exc.existing) else None,
            ) from exc
    return Answer(201, sub.model_dump(mode="json"))


def get(conn: Connection, principal: Principal, sub_id: uuid.UUID) -> Subscription:
    sub = repository.get(conn, sub_id)
    if sub is None or not _owned(principal, sub):
        raise tenancy.not_found("subscription", sub_id)
    return sub


def activate(
    conn: Connection, principal: Principal, sub_id: uuid.UUID, payment_id: str
) -> Subscription:
    sub = _visible(conn, principal, sub_id)
    if sub.status == "active":
        return sub  # a retried activation changes nothing
    return _move(conn, sub, "active", "subscription.activated", event={"payment_id": payment_id})


def change_plan(
    engine: Engine,
    billing: Billing,
    principal: Principal,
    sub_id: uuid.UUID,
    plan_id: str,
    key: str | None,
) -> Answer:
    """Upgrades take effect now, once their proration invoice is paid (billing charges it
    while this holds the subscription's row, so racing upgrades charge once); a declined
    charge leaves the plan (402). Downgrades wait for the period's end.

    Under an Idempotency-Key a retry answers what the first request did: billing keeps
    the invoice made under the key, and a paid one not yet applied is applied now.
    """
    scoped = idempotency.scoped(principal, key) if key else None
    with engine.begin() as conn:
        sub = _visible(conn, principal, sub_id)
        if sub.status not in CHANGEABLE:
            raise _refused(sub.status, f"a {sub.status} subscription cannot change plan")
        # The old plan at the price the subscription pays; the new one as its tenant sells it.
        old = repository.priced(conn, sub.plan_id, sub.price_version)
        new = repository.plan(conn, plan_id, repository.Catalog(sub.tenant_id))
        if new is None or old is None:
            raise DomainError(errors.UNKNOWN_PLAN, f"no active plan {plan_id!r}")
        if new.id == old.id:
            earlier = billing.charge_upgrade(scoped, sub, old, new, _now()) if scoped else None
            if earlier is None:
                raise DomainError(errors.SAME_PLAN, "the subscription is already on that plan")
            return _changed(sub, earlier, replayed=True)
        if (new.currency, new.interval) != (old.currency, old.interval):
            raise DomainError(
                errors.INCOMPATIBLE_PLAN, "plan changes keep the currency and the billing interval"
            )
        if new.amount < old.amount:
            pending = {"pending_plan_id": new.id, "pending_price_version": new.price_version}
            moved = _stay(conn, sub, "subscription.downgrade_scheduled", pending)
            return Answer(
                200, PlanChanged(subscription=moved, effective="period_end").model_dump(mode="json")
            )
        at = _now()
        due = pricing.prorate(
            old.amount, new.amount, sub.current_period_start, sub.current_period_end, at
        )
        if sub.status == "trialing" or due.amount_due <= 0:  # nothing to charge
            moved = _upgrade(conn, sub, old, new, None, 0)
            proration = ProrationOut(
                seconds_left=0, seconds_in_period=1, credit=0, charge=0, amount_due=0
            )
            body = PlanChanged(subscription=moved, effective="now", proration=proration)
            return Answer(200, body.model_dump(mode="json"))
        invoice = billing.charge_upgrade(
            scoped or f"upgrade:{sub.id}:{uuid.uuid4()}", sub, old, new, at
        )
        assert invoice is not None
        moved = _upgrade(conn, sub, old, new, invoice["id"], invoice["total"])
        return _changed(moved, invoice)


def apply_upgrade(
    conn: Connection, principal: Principal, sub_id: uuid.UUID, body: UpgradeApply
) -> Subscription:
    """Billing's recovery sweep: an upgrade paid for and never applied (its request died
    between the charge and the commit). Idempotent: applied already answers as is."""
    sub = _visible(conn, principal, sub_id)
    if sub.plan_id == body.plan_id:
        return sub
    if (
        sub.status not in CHANGEABLE
        or sub.plan_id != body.from_plan_id
        or sub.current_period_start != body.period_start
    ):
        raise _refused(sub.status, "the subscription moved on since this upgrade was paid")
    # The new plan at its price now: billing charged the price of the upgrade's moment,
    # which is this one unless a new version came between the charge and this recovery.
    old = repository.priced(conn, sub.plan_id, sub.price_version)
    new = repository.priced(conn, body.plan_id)
    if old is None or new is None:
        raise DomainError(errors.UNKNOWN_PLAN, f"no plan {body.plan_id!r}")
    return _upgrade(conn, sub, old, new, body.invoice_id, None)


def _upgrade(
    conn: Connection,
    sub: Subscription,
    old: Plan,
    new: Plan,
    invoice_id: str | None,
    amount_due: int | None,
) -> Subscription:
    event: dict[str, Any] = {"previous_plan_id": old.id, "currency": new.currency}
    if amount_due is not None:
        event["proration_amount_due"] = amount_due
    return _stay(
        conn,
        sub,
        "subscription.upgraded",
        {
            "plan_id": new.id,
            "price_version": new.price_version,
            "next_price_version": None,
            "pending_plan_id": None,
            "pending_price_version": None,
        },
        event=event,
    )


def _changed(sub: Subscription, invoice: dict[str, Any], replayed: bool = False) -> Answer:
    """The answer to a charged upgrade, from its invoice (the same for every replay)."""
    lines = {line["kind"]: line["amount"] for line in invoice["lines"]}
    charged = next(line for line in invoice["lines"] if line["kind"] == "proration_charge")
    end = datetime.fromisoformat(charged["period_end"])
    proration = ProrationOut(
        seconds_left=int((end - datetime.fromisoformat(charged["period_start"])).total_seconds()),
        seconds_in_period=int(
            (end - datetime.fromisoformat(invoice["period_start"])).total_seconds()
        ),
        credit=-lines["proration_credit"],
        charge=lines["proration_charge"],
        amount_due=invoice["total"],
        invoice_id=invoice["id"],
    )
    body = PlanChanged(subscription=sub, effective="now", proration=proration)
    return Answer(200, body.model_dump(mode="json"), replayed=replayed)


def _now() -> datetime:
    return datetime.now(UTC)


def cancel(
    conn: Connection, principal: Principal, sub_id: uuid.UUID, at_period_end: bool
) -> Subscription:
    sub = _visible(conn, principal, sub_id)
    if at_period_end and sub.status in CHANGEABLE:
        return _stay(conn, sub, "subscription.cancel_scheduled", {"cancel_at_period_end": True})
    return _move(conn, sub, "canceled", "subscription.canceled", {"canceled_at": datetime.now(UTC)})


def pause(conn: Connection, principal: Principal, sub_id: uuid.UUID) -> Subscription:
    sub = _visible(conn, principal, sub_id)
    return _move(conn, sub, "paused", "subscription.paused", {"paused_at": datetime.now(UTC)})


def resume(conn: Connection, principal: Principal, sub_id: uuid.UUID) -> Subscription:
    sub = _visible(conn, principal, sub_id)
    if sub.status != "paused":
        raise _refused(sub.status, f"a {sub.status} subscription is not paused")
    return _move(conn, sub, "active", "subscription.resumed", {"paused_at": None})


# -- billing's internal moves ----------------------------------------------------------------


def due(conn: Connection, day: date, after: uuid.UUID | None, limit: int, shard: Shard) -> DuePage:
    """What ends on `day` in `shard`: renewals, trial conversions and period-end
    cancellations."""
    found = repository.due_on(conn, day, after, limit, shard)
    data = [
        DueSubscription(
            subscription=sub,
            action=_due_action(sub),
            plan=plan,
            next_period_start=sub.current_period_end,
            next_period_end=lifecycle.period_end(sub.current_period_end, plan.interval),
        )
        for sub, plan in found
    ]
    return DuePage(data=data, next_after=found[-1][0].id if len(found) == limit else None)


def renew(
    conn: Connection, principal: Principal, sub_id: uuid.UUID, body: PeriodAdvance
) -> Subscription:
    sub = _visible(conn, principal, sub_id)
    return _advance(conn, sub, body, {"active", "trialing"}, "subscription.renewed")


def reactivate(
    conn: Connection, principal: Principal, sub_id: uuid.UUID, body: PeriodAdvance
) -> Subscription:
    sub = _visible(conn, principal, sub_id)
    if sub.status != "past_due":  # never marked past due (that call was lost): a renewal
        return _advance(conn, sub, body, {"active", "trialing"}, "subscription.renewed")
    return _advance(conn, sub, body, {"past_due"}, "subscription.reactivated")


def renew_many(engine: Engine, principal: Principal, batch: RenewalBatch) -> RenewalResults:
    """Each renewal as its own call would make it, in a transaction of its own: a refused one
    (another period, gone) leaves the rest applied, and a repeated batch changes nothing."""
    results = []
    for item in batch.renewals:
        act = renew if item.action == "renew" else reactivate
        try:
            with engine.begin() as conn:
                act(conn, principal, item.subscription_id, item)
        except DomainError as refused:
            instance = f"/v1/subscriptions/{item.subscription_id}/{item.action}"
            results.append(
                RenewalOutcome(
                    subscription_id=item.subscription_id,
                    status=refused.problem.status,
                    problem=refused.body(instance),
                )
            )
        else:
            results.append(
                RenewalOutcome(subscription_id=item.subscription_id, status=200, problem=None)
            )
    return RenewalResults(results=results)


def mark_past_due(
    conn: Connection,
    principal: Principal,
    sub_id: uuid.UUID,
    invoice_id: str,
    decline_code: str | None,
) -> Subscription:
    sub = _visible(conn, principal, sub_id)
    if sub.status == "past_due":
        return sub
    event = {"invoice_id": invoice_id, "decline_code": decline_code}
    return _move(conn, sub, "past_due", "subscription.past_due", event=event)


def expire(conn: Connection, principal: Principal, sub_id: uuid.UUID, at: datetime) -> Subscription:
    sub = _visible(conn, principal, sub_id)
    if sub.status == "canceled":
        return sub
    return _move(conn, sub, "canceled", "subscription.canceled", {"canceled_at": at})


# -- helpers -------------------------------------------------------------------------------


def _owned(principal: Principal, sub: Subscription) -> bool:
    return tenancy.owns(principal, sub.customer_id, sub.tenant_id)


def _visible(conn: Connection, principal: Principal, sub_id: uuid.UUID) -> Subscription:
    """The subscription, locked for the change, or 404 when absent or not the caller's."""
    sub = repository.get(conn, sub_id, lock=True)
    if sub is None or not _owned(principal, sub):
        raise tenancy.not_found("subscription", sub_id)
    return sub


def _refused(status_now: str, detail: str) -> DomainError:
    return DomainError(errors.TRANSITION, detail, status_now=status_now)


def _move(
    conn: Connection,
    sub: Subscription,
    target: str,
    event_type: str,
    changes: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
) -> Subscription:
    """A move through the state machine; one it refuses is a 409 naming the state now."""
    try:
        return repository.move(conn, sub, target, event_type, changes, event)
    except lifecycle.TransitionRefused as exc:
        raise _refused(exc.current, str(exc)) from exc


def _stay(
    conn: Connection,
    sub: Subscription,
    event_type: str,
    changes: dict[str, Any],
    event: dict[str, Any] | None = None,
) -> Subscription:
    """A change that keeps the state (a scheduled change, an upgrade, a renewal)."""
    return repository.move(conn, sub, sub.status, event_type, changes, event, same_state=True)


def _due_action(sub: Subscription) -> Literal["renew", "convert_trial", "cancel"]:
    if sub.cancel_at_period_end:
        return "cancel"
    return "convert_trial" if sub.status == "trialing" else "renew"


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
        raise _refused(
            sub.status,
            f"a {sub.status} subscription whose period ends {sub.current_period_end.isoformat()}"
            f" cannot move to a period starting {body.period_start.isoformat()}",
        )
    # The price billing collected: the one `due` named for the period (repository.NEXT_VERSION).
    plan = repository.priced(conn, body.plan_id, repository.next_version(sub, body.plan_id))
    if plan is None:
        raise DomainError(errors.UNKNOWN_PLAN, f"no plan {body.plan_id!r}")
    changes: dict[str, Any] = {
        "current_period_start": body.period_start,
        "current_period_end": body.period_end,
        "price_version": plan.price_version,
        "next_price_version": None,
    }
    event: dict[str, Any] = {
        "payment_id": body.payment_id,
        "invoice_id": body.invoice_id,
        "amount": plan.amount,
        "currency": plan.currency,
        "interval": plan.interval,
    }
    if plan.id != sub.plan_id:  # a downgrade scheduled for period end takes effect now
        changes |= {"plan_id": plan.id, "pending_plan_id": None, "pending_price_version": None}
        event["previous_plan_id"] = sub.plan_id
    # A renewal keeps an active subscription active (a same-state move); a trial or a past
    # due subscription becomes active through the state machine.
    if sub.status == "active":
        return _stay(conn, sub, event_type, changes, event)
    return _move(conn, sub, "active", event_type, changes, event)
