"""The subscription service's lists: plans and subscriptions, in the API's one envelope."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection

from transactional.common import errors, pagination, tenancy
from transactional.common.customer_lookup import CustomerLookup
from transactional.common.errors import DomainError
from transactional.common.pagination import Page
from transactional.common.security import Principal
from transactional.subscription import repository
from transactional.subscription.models import Plan, Subscription


def plans(
    conn: Connection, catalog: repository.Catalog, limit: int, cursor: str | None
) -> Page[Plan]:
    """The price list a caller sees (catalog.reader), cheapest first."""
    parts = pagination.decode_parts(cursor, 2)
    after: tuple[int, str] | None = None
    if parts is not None:
        try:
            after = int(parts[0]), parts[1]
        except ValueError as exc:
            raise DomainError(errors.BAD_CURSOR, "cursor is not one this API returned") from exc
    rows = repository.plans(conn, catalog, after, limit + 1)
    return pagination.page_of(rows, limit, lambda plan: (str(plan.amount), plan.id))


def plan(
    conn: Connection, plan_id: str, catalog: repository.Catalog, version: int | None = None
) -> Plan:
    """A plan on sale the caller sees (at price `version`: the current one when None);
    another tenant's is absent (404). A price version asked for is what some subscribers
    pay, so it is shown for an archived plan too: they keep renewing on it."""
    found = repository.plan(conn, plan_id, catalog, version=version, archived=version is not None)
    if found is None:
        raise DomainError(errors.NOT_FOUND, f"no active plan {plan_id!r}")
    return found


def subscriptions(
    conn: Connection,
    principal: Principal,
    filters: repository.Filters,
    limit: int,
    cursor: str | None,
) -> Page[Subscription]:
    """The caller's subscriptions, newest first: a user's own, a partner's tenant's, an
    internal caller's any."""
    after = pagination.decode_cursor(cursor)
    rows = repository.page(conn, tenancy.list_scope(principal), filters, after, limit + 1)
    return pagination.page_of(rows, limit, lambda sub: (sub.created_at, sub.id))


def for_customer(
    conn: Connection,
    customers: CustomerLookup,
    principal: Principal,
    customer_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> Page[Subscription]:
    """One customer's subscriptions; 404 when the customer is not the caller's."""
    customers.owned(principal, str(customer_id))
    return subscriptions(
        conn, principal, repository.Filters(customer_id=customer_id), limit, cursor
    )
