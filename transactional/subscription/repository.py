"""The subscription schema: the only code that reads or writes it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, text

from paywall.shards import Shard
from streaming import outbox
from transactional.subscription import lifecycle
from transactional.subscription.models import Plan, Subscription

SCHEMA = "subscription"
COLUMNS = (
    "id, customer_id, tenant_id, plan_id, price_version, next_price_version, pending_plan_id, "
    "pending_price_version, status, current_period_start, current_period_end, trial_end, "
    "cancel_at_period_end, canceled_at, paused_at, created_at, updated_at"
)
# Columns kept out of the subscription events: their contracts do not have them (a price
# version is the subscription service's bookkeeping; the events carry the amount billed).
UNPUBLISHED = frozenset({"price_version", "next_price_version", "pending_price_version"})


class LiveSubscriptionExists(Exception):
    def __init__(self, existing: Subscription) -> None:
        self.existing = existing


# A plan with one of its prices: `p` is subscription.plans, `v` the plan_prices row.
PLAN_COLUMNS = (
    "p.id, p.name, v.amount, p.currency, p.interval, p.trial_days, p.tenant_id, "
    "v.version AS price_version, p.archived_at"
)
CURRENT_PRICE = (
    "JOIN subscription.plan_prices v ON v.plan_id = p.id AND v.version = p.price_version"
)


@dataclass(frozen=True)
class Catalog:
    """Which plans a caller sees: the platform's (tenant_id NULL) and `tenant`'s; with
    `every`, all tenants' (an internal or operator caller naming no tenant)."""

    tenant: str | None
    every: bool = False

    def where(self, params: dict[str, Any]) -> str:
        if self.every:
            return "true"
        params["catalog_tenant"] = self.tenant
        return "(p.tenant_id IS NULL OR p.tenant_id = CAST(:catalog_tenant AS text))"


def plans(
    conn: Connection,
    catalog: Catalog,
    after: tuple[int, str] | None,
    limit: int,
    archived: bool = False,
) -> list[Plan]:
    """Plans on sale (with `archived`, those no longer sold too) the catalog shows,
    cheapest first (then by id), after the keyset position `after`."""
    params: dict[str, Any] = {"limit": limit}
    where = catalog.where(params) + ("" if archived else " AND p.active")
    if after is not None:
        where += " AND (v.amount, p.id) > (:after_amount, :after_id)"
        params.update(after_amount=after[0], after_id=after[1])
    rows = conn.execute(
        text(
            f"SELECT {PLAN_COLUMNS} FROM subscription.plans p {CURRENT_PRICE} "
            f"WHERE {where} ORDER BY v.amount, p.id LIMIT :limit"
        ),
        params,
    ).all()
    return [Plan.model_validate(dict(r._mapping)) for r in rows]


def plan(
    conn: Connection,
    plan_id: str,
    catalog: Catalog,
    *,
    archived: bool = False,
    lock: bool = False,
    version: int | None = None,
) -> Plan | None:
    """A plan of the catalog at its current price (or price `version`): on sale, unless
    `archived` is asked."""
    params: dict[str, Any] = {"id": plan_id, "version": version}
    where = catalog.where(params) + ("" if archived else " AND p.active")
    row = conn.execute(
        text(
            f"SELECT {PLAN_COLUMNS} FROM subscription.plans p JOIN subscription.plan_prices v "
            "ON v.plan_id = p.id AND v.version = coalesce(CAST(:version AS integer), "
            f"p.price_version) WHERE p.id = :id AND {where}" + (" FOR UPDATE OF p" if lock else "")
        ),
        params,
    ).first()
    return Plan.model_validate(dict(row._mapping)) if row else None


def priced(conn: Connection, plan_id: str, version: int | None = None) -> Plan | None:
    """A plan, sold or not, at price `version` (None: its current one). What existing
    subscribers are billed: an archived plan still renews, at the price they were sold."""
    row = conn.execute(
        text(
            f"SELECT {PLAN_COLUMNS} FROM subscription.plans p JOIN subscription.plan_prices v "
            "ON v.plan_id = p.id AND v.version = coalesce(CAST(:version AS integer), "
            "p.price_version) WHERE p.id = :id"
        ),
        {"id": plan_id, "version": version},
    ).first()
    return Plan.model_validate(dict(row._mapping)) if row else None


def _row(row: Any) -> Subscription:
    return Subscription.model_validate(dict(row._mapping))


def get(conn: Connection, sub_id: uuid.UUID, lock: bool = False) -> Subscription | None:
    sql = f"SELECT {COLUMNS} FROM subscription.subscriptions WHERE id = :id"
    row = conn.execute(text(sql + (" FOR UPDATE" if lock else "")), {"id": sub_id}).first()
    return _row(row) if row else None


@dataclass(frozen=True)
class Keyed:
    """A subscription made under an Idempotency-Key, and what that request asked for."""

    subscription: Subscription
    fingerprint: str | None


def forget_request_keys(conn: Connection, older_than: timedelta) -> int:
    """Clear the Idempotency-Key (and its fingerprint) of subscriptions created longer
    ago than `older_than`: the key may then name a new request. The subscriptions stay."""
    return int(
        conn.execute(
            text(
                "UPDATE subscription.subscriptions SET request_key = NULL, "
                "request_fingerprint = NULL "
                "WHERE request_key IS NOT NULL AND created_at < now() - :age"
            ),
            {"age": older_than},
        ).rowcount
    )


def by_request_key(conn: Connection, key: str) -> Keyed | None:
    row = conn.execute(
        text(
            f"SELECT {COLUMNS}, request_fingerprint FROM subscription.subscriptions "
            "WHERE request_key = :k"
        ),
        {"k": key},
    ).first()
    if row is None:
        return None
    values = dict(row._mapping)
    fingerprint = values.pop("request_fingerprint")
    return Keyed(Subscription.model_validate(values), fingerprint)


def live_for_customer(conn: Connection, customer_id: uuid.UUID) -> Subscription | None:
    row = conn.execute(
        text(
            f"SELECT {COLUMNS} FROM subscription.subscriptions "
            "WHERE customer_id = :c AND status <> 'canceled'"
        ),
        {"c": customer_id},
    ).first()
    return _row(row) if row else None


@dataclass(frozen=True)
class Filters:
    customer_id: uuid.UUID | None = None
    status: str | None = None
    plan_id: str | None = None


def page(
    conn: Connection,
    scope: dict[str, str | None],
    filters: Filters,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Subscription]:
    """Subscriptions newest first; `scope` is the tenancy filter (tenancy.list_scope)."""
    # The scope and the filters may name the same column: each gets its own parameter, so
    # a filter only narrows what the scope allows (a scope's None matches nothing).
    conditions = [*scope.items()] + [
        (column, value)
        for column, value in (
            ("customer_id", filters.customer_id),
            ("status", filters.status),
            ("plan_id", filters.plan_id),
        )
        if value is not None
    ]
    where = ["true"] + [f"{column} = :p{n}" for n, (column, _) in enumerate(conditions)]
    params: dict[str, Any] = {f"p{n}": value for n, (_, value) in enumerate(conditions)}
    params["limit"] = limit
    if after is not None:
        where.append("(created_at, id) < (:after_ts, :after_id)")
        params.update(after_ts=after[0], after_id=after[1])
    rows = conn.execute(
        text(
            f"SELECT {COLUMNS} FROM subscription.subscriptions WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    ).all()
    return [_row(r) for r in rows]


def _event(sub: Subscription, **extra: Any) -> dict[str, Any]:
    return {
        "subscription_id": str(sub.id),
        "customer_id": str(sub.customer_id),
        "tenant_id": sub.tenant_id,
        "plan_id": sub.plan_id,
        "status": sub.status,
        "current_period_start": sub.current_period_start.isoformat(),
        "current_period_end": sub.current_period_end.isoformat(),
        **extra,
    }


def create(
    conn: Connection,
    customer_id: uuid.UUID,
    tenant_id: str | None,
    plan_: Plan,
    trial: bool,
    request_key: str | None,
    fingerprint: str | None = None,
) -> Subscription:
    now = datetime.now(UTC)
    trialing = trial and plan_.trial_days > 0
    end = (
        lifecycle.trial_period(now, plan_.trial_days)
        if trialing
        else lifecycle.period_end(now, plan_.interval)
    )
    row = conn.execute(
        text(
            "INSERT INTO subscription.subscriptions (id, customer_id, tenant_id, plan_id, "
            "price_version, status, current_period_start, current_period_end, trial_end, "
            "request_key, request_fingerprint) VALUES (:id, :customer, :tenant, :plan, "
            ":version, :status, :start, :end, :trial_end, :key, :fingerprint) "
            f"ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
        ),
        {
            "id": uuid.uuid4(),
            "customer": customer_id,
            "tenant": tenant_id,
            "plan": plan_.id,
            "version": plan_.price_version,
            "status": "trialing" if trialing else "incomplete",
            "start": now,
            "end": end,
            "trial_end": end if trialing else None,
            "key": request_key,
            "fingerprint": fingerprint,
        },
    ).first()
    if row is None:
        keyed = by_request_key(conn, request_key) if request_key else None
        existing = keyed.subscription if keyed else live_for_customer(conn, customer_id)
        assert existing is not None, "conflict without a row: unique keys changed?"
        raise LiveSubscriptionExists(existing)
    sub = _row(row)
    outbox.emit(
        conn,
        SCHEMA,
        "subscription",
        str(sub.id),
        "subscription.created",
        _event(
            sub,
            amount=plan_.amount,
            currency=plan_.currency,
            interval=plan_.interval,
            trial_end=end.isoformat() if trialing else None,
        ),
    )
    return sub


def move(
    conn: Connection,
    sub: Subscription,
    target: str,
    event_type: str,
    changes: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
    *,
    same_state: bool = False,
) -> Subscription:
    """Apply an allowed transition and record its event.

    Staying in the same state (a renewal, a scheduled change) must be asked for with
    `same_state`; otherwise it goes through the state machine like any move, which refuses
    it (pausing a paused subscription, canceling a canceled one).
    """
    changes = changes or {}
    stays = same_state and target == sub.status
    status = sub.status if stays else lifecycle.transition(sub.status, target)
    sets = ", ".join(f"{k} = :{k}" for k in changes)
    row = conn.execute(
        text(
            f"UPDATE subscription.subscriptions SET status = :status, updated_at = now()"
            f"{', ' + sets if sets else ''} WHERE id = :id RETURNING {COLUMNS}"
        ),
        {"status": status, "id": sub.id, **changes},
    ).one()
    updated = _row(row)
    outbox.emit(
        conn,
        SCHEMA,
        "subscription",
        str(updated.id),
        event_type,
        _event(
            updated,
            previous_status=sub.status,
            **{k: _jsonable(v) for k, v in changes.items() if k not in UNPUBLISHED},
            **(event or {}),
        ),
    )
    return updated


def price_migrated(conn: Connection, sub: Subscription, plan_: Plan) -> None:
    """The event of a migration to `plan_`'s price version (plan_ is the subscription's
    plan, or the one its scheduled downgrade goes to): no amount, since the period running
    keeps its price; `next_amount` is billed from the next renewal."""
    outbox.emit(
        conn,
        SCHEMA,
        "subscription",
        str(sub.id),
        "subscription.price_migrated",
        _event(
            sub,
            pending_plan_id=sub.pending_plan_id,
            migrated_plan_id=plan_.id,
            next_price_version=plan_.price_version,
            next_amount=plan_.amount,
            currency=plan_.currency,
            effective_at=sub.current_period_end.isoformat(),
        ),
    )


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# -- billing's internal view: what ends on a day, and the moves a billing run makes -------

DUE_STATUSES = ("active", "trialing")


def due_on(
    conn: Connection, day: date, after: uuid.UUID | None, limit: int, shard: Shard
) -> list[tuple[Subscription, Plan]]:
    """Live subscriptions of `shard` whose current period ends on `day` (UTC), keyset-paged by id,
    each with the plan and price its next period is billed on: a scheduled downgrade's,
    else its own plan at the version it was sold (or migrated to)."""
    if day >= date.max:  # no period ends on the last representable day
        return []
    start = datetime.combine(day, time.min, UTC)
    rows = conn.execute(
        text(
            f"SELECT {', '.join('s.' + c.strip() for c in COLUMNS.split(','))}, "
            "p.id AS next_plan_id, p.name AS next_plan_name, v.amount AS next_plan_amount, "
            "p.currency AS next_plan_currency, p.interval AS next_plan_interval, "
            "p.trial_days AS next_plan_trial_days, p.tenant_id AS next_plan_tenant_id, "
            "v.version AS next_plan_price_version, p.archived_at AS next_plan_archived_at "
            "FROM subscription.subscriptions s JOIN subscription.plans p "
            "ON p.id = coalesce(s.pending_plan_id, s.plan_id) "
            "JOIN subscription.plan_prices v ON v.plan_id = p.id AND v.version = "
            f"{NEXT_VERSION} "
            "WHERE s.status IN ('active', 'trialing') AND s.current_period_end >= :start "
            "AND s.current_period_end < :end AND (CAST(:after AS uuid) IS NULL OR s.id > :after) "
            f"AND {shard.where('s.id')} ORDER BY s.id LIMIT :limit"
        ),
        {
            "start": start,
            "end": start + timedelta(days=1),
            "after": after,
            "limit": limit,
            **shard.params(),
        },
    ).all()
    out = []
    for row in rows:
        values = dict(row._mapping)
        plan_ = Plan.model_validate(
            {
                k.removeprefix("next_plan_"): values.pop(k)
                for k in list(values)
                if k.startswith("next_plan_")
            }
        )
        out.append((Subscription.model_validate(values), plan_))
    return out


# The price version a subscription's next period is billed at (`s` a subscription row, `p`
# the plan of its next period): a scheduled downgrade's, else a migration's, else its own.
NEXT_VERSION = (
    "CASE WHEN s.pending_plan_id IS NOT NULL THEN coalesce(s.pending_price_version, "
    "p.price_version) ELSE coalesce(s.next_price_version, s.price_version) END"
)


def next_version(sub: Subscription, plan_id: str) -> int | None:
    """What `NEXT_VERSION` says in Python, for the period billing just collected on
    `plan_id` (None: a plan the subscription has not been sold: its current price)."""
    if plan_id == sub.pending_plan_id:
        return sub.pending_price_version
    if plan_id == sub.plan_id:
        return sub.next_price_version or sub.price_version
    return None
