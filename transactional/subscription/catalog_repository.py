"""The catalog's writes on the subscription schema: plans, their price versions, and the
Idempotency-Keys of the catalog's POSTs."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, text

from streaming import outbox
from transactional.subscription.catalog_models import PlanCreate
from transactional.subscription.models import Plan, Subscription
from transactional.subscription.repository import COLUMNS, SCHEMA


def new_plan_id() -> str:
    """Plans a tenant makes get ids no other tenant can guess or collide with (a chosen
    id would tell a tenant, by a conflict, that another tenant has it)."""
    return f"plan_{secrets.token_hex(12)}"


def insert_plan(conn: Connection, plan_id: str, tenant: str | None, body: PlanCreate) -> None:
    # The plan points at its current price, which is inserted next: the foreign key is
    # deferred to the commit.
    conn.execute(
        text(
            "INSERT INTO subscription.plans (id, name, amount, currency, interval, trial_days, "
            "active, tenant_id, price_version) VALUES (:id, :name, :amount, :currency, "
            ":interval, :trial_days, true, :tenant, 1)"
        ),
        {"id": plan_id, "tenant": tenant, **body.model_dump(exclude={"tenant_id"})},
    )
    conn.execute(
        text(
            "INSERT INTO subscription.plan_prices (plan_id, version, amount) "
            "VALUES (:id, 1, :amount)"
        ),
        {"id": plan_id, "amount": body.amount},
    )


def add_price(conn: Connection, plan_id: str, amount: int) -> int:
    """A new current price version of a plan (its row locked by the caller); its number."""
    version: int = conn.execute(
        text(
            "INSERT INTO subscription.plan_prices (plan_id, version, amount) "
            "SELECT id, price_version + 1, :amount FROM subscription.plans WHERE id = :id "
            "RETURNING version"
        ),
        {"id": plan_id, "amount": amount},
    ).scalar_one()
    conn.execute(
        text(
            "UPDATE subscription.plans SET price_version = :version, amount = :amount "
            "WHERE id = :id"
        ),
        {"id": plan_id, "version": version, "amount": amount},
    )
    return version


def plan_event(conn: Connection, event_type: str, plan: Plan) -> None:
    """A catalog change as an event (plan.created, plan.price_added, plan.archived): the
    plan as it is now, keyed by its id."""
    data = plan.model_dump(mode="json")
    data["plan_id"] = data.pop("id")
    data["plan_name"] = data.pop("name")  # `name` is a person's to the lake, which hashes it
    outbox.emit(conn, SCHEMA, "plan", plan.id, event_type, data)


def archive(conn: Connection, plan_id: str) -> None:
    """No longer sold; archiving twice keeps the first moment."""
    conn.execute(
        text(
            "UPDATE subscription.plans SET active = false, "
            "archived_at = coalesce(archived_at, now()) WHERE id = :id"
        ),
        {"id": plan_id},
    )


def migrate(
    conn: Connection, plan_id: str, version: int, subscription_id: uuid.UUID | None
) -> list[Subscription]:
    """Live subscriptions on the plan (or moving to it by a scheduled downgrade), or only
    `subscription_id`, move to price `version` at their next renewal; those that moved."""
    only = " AND id = :sub" if subscription_id is not None else ""
    params = {"plan": plan_id, "version": version, "sub": subscription_id}
    # Their current period was sold at the old price and stays so: credits for unused
    # time (a cancellation's, an upgrade's) are at what was paid.
    own = conn.execute(
        text(
            "UPDATE subscription.subscriptions SET next_price_version = :version, "
            "updated_at = now() WHERE plan_id = :plan AND status <> 'canceled' "
            f"AND coalesce(next_price_version, price_version) <> :version{only} "
            f"RETURNING {COLUMNS}"
        ),
        params,
    ).all()
    pending = conn.execute(
        text(
            "UPDATE subscription.subscriptions SET pending_price_version = :version, "
            "updated_at = now() WHERE pending_plan_id = :plan AND status <> 'canceled' "
            f"AND pending_price_version IS DISTINCT FROM :version{only} "
            f"RETURNING {COLUMNS}"
        ),
        params,
    ).all()
    return [Subscription.model_validate(dict(r._mapping)) for r in [*own, *pending]]


# -- Idempotency-Keys: what each keyed catalog POST answered ---------------------------------


def answered(conn: Connection, key: str) -> tuple[str, int, dict[str, Any]] | None:
    """(fingerprint, status, body) the key's first request answered; None: a new key."""
    row = conn.execute(
        text(
            "SELECT fingerprint, status, body FROM subscription.catalog_requests "
            "WHERE request_key = :k"
        ),
        {"k": key},
    ).first()
    return (row.fingerprint, row.status, dict(row.body)) if row else None


def remember(
    conn: Connection, key: str, fingerprint: str, status: int, body: dict[str, Any]
) -> None:
    conn.execute(
        text(
            "INSERT INTO subscription.catalog_requests (request_key, fingerprint, status, body) "
            "VALUES (:k, :f, :s, CAST(:b AS jsonb))"
        ),
        {"k": key, "f": fingerprint, "s": status, "b": json.dumps(body)},
    )


def forget_requests(conn: Connection, older_than: timedelta) -> int:
    """Drop keys older than `older_than`: the key may then name a new request."""
    return int(
        conn.execute(
            text("DELETE FROM subscription.catalog_requests WHERE created_at < now() - :age"),
            {"age": older_than},
        ).rowcount
    )
