"""Catalog administration, apart from HTTP: a tenant's plans, their price versions, and
moving subscribers to a new price.

- A partner (scope `plans:write`) acts on its own tenant's plans; an operator (`admin`) or
  an internal service on any tenant's, or on the platform's catalog (tenant NULL), which
  every tenant sells and no partner may change. Another tenant's plan is 404, as absent.
- A price version changes what new subscribers pay. A subscription keeps the version it
  was sold at until it is migrated; a migration takes effect at its next renewal, since
  the period running was paid at the old price.
- Archived: no longer sold (lists and signups refuse it); subscribers keep renewing.
- Every POST takes an Idempotency-Key: a replay answers what the first request did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from transactional.common import errors, idempotency, tenancy
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer
from transactional.common.security import Principal
from transactional.subscription import catalog_repository as repo
from transactional.subscription import repository
from transactional.subscription.catalog_models import Migrated, PlanCreate, PlanMigrate, PriceCreate
from transactional.subscription.models import Plan
from transactional.subscription.repository import Catalog

WRITE_SCOPE = "plans:write"
OPERATOR = frozenset({"admin", "internal"})


def operator(principal: Principal) -> bool:
    """May act on any tenant's catalog, and the platform's."""
    return bool(principal.scopes & OPERATOR)


def writer(principal: Principal) -> Principal:
    """The caller, if it may change a catalog: an operator, or a tenant's client with
    `plans:write` (403 otherwise, as for any missing scope or tenant)."""
    if operator(principal):
        return principal
    if WRITE_SCOPE not in principal.scopes:
        raise DomainError(
            errors.INSUFFICIENT_SCOPE,
            f"token lacks scope: {WRITE_SCOPE}",
            headers={
                "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{WRITE_SCOPE}"'
            },
        )
    if not principal.tenant_id:
        raise DomainError(
            errors.TENANT_REQUIRED, "plans belong to a tenant: use a client registered for one"
        )
    return principal


def reader(principal: Principal | None, tenant_id: str | None) -> Catalog:
    """The catalog a caller sees: the platform's plans and its tenant's. An operator sees
    the tenant it names, or every tenant's; anyone else naming another tenant gets 403."""
    if principal is not None and operator(principal):
        return Catalog(tenant_id, every=tenant_id is None)
    own = principal.tenant_id if principal is not None else None
    if tenant_id is not None and tenant_id != own:
        raise DomainError(
            errors.FORBIDDEN_TENANT, "tenant_id names another tenant; only operators may"
        )
    return Catalog(own or None)


def create_plan(engine: Engine, principal: Principal, key: str, body: PlanCreate) -> Answer:
    """A plan of the caller's tenant (an operator's: of `body.tenant_id`, none: the
    platform's), at price version 1."""
    if body.tenant_id is not None and not operator(principal):
        tenancy.tenant_for(principal, body.tenant_id)  # another tenant's: 403
    tenant = body.tenant_id if operator(principal) else principal.tenant_id
    asked = {**body.model_dump(mode="json"), "tenant_id": tenant}

    def make(conn: Connection) -> Answer:
        plan_id = repo.new_plan_id()
        repo.insert_plan(conn, plan_id, tenant, body)
        made = repository.priced(conn, plan_id)
        assert made is not None
        repo.plan_event(conn, "plan.created", made)
        return Answer(201, made.model_dump(mode="json"))

    return _keyed(engine, principal, key, asked, make)


def archive(engine: Engine, principal: Principal, key: str, plan_id: str) -> Answer:
    """No longer sold; its subscribers keep renewing at their price. Twice is once."""

    def archive_(conn: Connection) -> Answer:
        if _owned(conn, principal, plan_id).archived_at is not None:
            return Answer(200, _current(conn, plan_id).model_dump(mode="json"))
        repo.archive(conn, plan_id)
        archived = _current(conn, plan_id)
        repo.plan_event(conn, "plan.archived", archived)
        return Answer(200, archived.model_dump(mode="json"))

    return _keyed(engine, principal, key, {"archive": plan_id}, archive_)


def add_price(
    engine: Engine, principal: Principal, key: str, plan_id: str, body: PriceCreate
) -> Answer:
    """A new price version: what new subscribers pay. Existing ones keep theirs until
    migrated."""

    def price(conn: Connection) -> Answer:
        # An archived plan may be priced too: its subscribers, migrated, pay the new price.
        _owned(conn, principal, plan_id)
        repo.add_price(conn, plan_id, body.amount)
        priced = _current(conn, plan_id)
        repo.plan_event(conn, "plan.price_added", priced)
        return Answer(201, priced.model_dump(mode="json"))

    return _keyed(engine, principal, key, {"price": plan_id, **body.model_dump()}, price)


def migrate(
    engine: Engine, principal: Principal, key: str, plan_id: str, body: PlanMigrate
) -> Answer:
    """Subscribers of the plan (or one of them) move to its current price version at
    their next renewal. A subscription not on the plan, or not the caller's, is 404."""

    def move(conn: Connection) -> Answer:
        found = _owned(conn, principal, plan_id)
        if body.subscription_id is not None:
            sub = repository.get(conn, body.subscription_id, lock=True)
            if (
                sub is None
                or not (
                    operator(principal) or tenancy.owns(principal, sub.customer_id, sub.tenant_id)
                )
                or plan_id not in (sub.plan_id, sub.pending_plan_id)
            ):
                raise tenancy.not_found("subscription", body.subscription_id)
        moved = repo.migrate(conn, plan_id, found.price_version, body.subscription_id)
        for sub in moved:  # each one's event, in the transaction that moves it
            repository.price_migrated(conn, sub, found)
        answer = Migrated(plan=found, subscriptions=len(moved))
        return Answer(200, answer.model_dump(mode="json"))

    asked = {"migrate": plan_id, **body.model_dump(mode="json")}
    return _keyed(engine, principal, key, asked, move)


# -- helpers -------------------------------------------------------------------------------


def _owned(conn: Connection, principal: Principal, plan_id: str) -> Plan:
    """The plan, locked, if the caller may change it: its tenant's own (an operator: any).
    A platform plan is the operator's; to a partner it is no plan of its own to change."""
    found = repository.plan(conn, plan_id, Catalog(None, every=True), archived=True, lock=True)
    if found is None or not (operator(principal) or found.tenant_id == principal.tenant_id):
        raise tenancy.not_found("plan", plan_id)
    return found


def _current(conn: Connection, plan_id: str) -> Plan:
    found = repository.priced(conn, plan_id)
    assert found is not None
    return found


def _keyed(
    engine: Engine,
    principal: Principal,
    key: str,
    asked: dict[str, Any],
    step: Callable[[Connection], Answer],
) -> Answer:
    """Run `step` once per key in one transaction, with its answer kept for replays."""
    scoped = idempotency.scoped(principal, key)
    fingerprint = idempotency.fingerprint(asked)
    with engine.begin() as conn:
        idempotency.hold(conn, scoped)
        earlier = repo.answered(conn, scoped)
        if earlier is not None:
            idempotency.check_same(earlier[0], fingerprint)
            return Answer(earlier[1], earlier[2], replayed=True)
        answer = step(conn)
        repo.remember(conn, scoped, fingerprint, answer.status, answer.body)
        return answer
