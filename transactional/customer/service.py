"""The customer rules: who sees which customer, what deleting and erasing mean, paging.

Reads go through the Redis cache, so they take the engine and open a connection only on a
miss. Writes commit in their own transaction and only then drop the cached copy: dropped
before the commit, a reader could put the old row back for the cache's whole TTL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from transactional.common import errors, pagination, tenancy
from transactional.common.errors import DomainError, not_found
from transactional.common.security import Principal
from transactional.customer import cache, repository
from transactional.customer.models import Customer, CustomerCreate, CustomerPage, CustomerUpdate


def create(conn: Connection, principal: Principal, body: CustomerCreate) -> Customer:
    """A customer of the caller's tenant (or of the tenant an internal caller names)."""
    tenant = tenancy.tenant_for(principal, body.tenant_id)
    try:
        return repository.create(conn, body, tenant)
    except repository.EmailTaken as exc:
        # Registration (internal) resumes a signup with the existing customer; a partner
        # learns only that the address is taken.
        raise DomainError(
            errors.EMAIL_TAKEN,
            "a customer with this email exists",
            customer_id=str(exc.existing_id) if principal.internal else None,
        ) from exc


def visible(
    db: Engine, principal: Principal, customer_id: uuid.UUID, *, deleted: bool = False
) -> Customer:
    """The caller's live customer, else 404; a deleted one too when `deleted` (erasure)."""
    customer = _visible(db, principal, customer_id, deleted=deleted)
    if customer is None:
        raise not_found("customer", customer_id)
    return customer


def update(
    db: Engine, principal: Principal, customer_id: uuid.UUID, body: CustomerUpdate
) -> Customer:
    visible(db, principal, customer_id)
    customer = _change(db, customer_id, lambda conn: repository.update(conn, customer_id, body))
    if customer is None:  # deleted since it was read
        raise not_found("customer", customer_id)
    return customer


def delete(db: Engine, principal: Principal, customer_id: uuid.UUID) -> None:
    visible(db, principal, customer_id)
    if _change(db, customer_id, lambda conn: repository.soft_delete(conn, customer_id)) is None:
        raise not_found("customer", customer_id)


def erase(db: Engine, principal: Principal, customer_id: uuid.UUID) -> Customer:
    """GDPR erasure: reaches a deleted customer too; an erased one only once (409)."""
    visible(db, principal, customer_id, deleted=True)
    customer = _change(db, customer_id, lambda conn: repository.erase(conn, customer_id))
    if customer is None:
        raise DomainError(errors.ALREADY_ERASED, f"customer {customer_id} was already erased")
    return customer


def listed(
    db: Engine, principal: Principal, *, limit: int, cursor: str | None, email: str | None
) -> CustomerPage:
    """One page of what `GET /v1/customers` shows the caller (its docstring says what)."""
    if principal.customer_id and not principal.internal:
        try:
            own_id = uuid.UUID(principal.customer_id)
        except ValueError:  # a login for a customer this service never made
            return CustomerPage(data=[], next_cursor=None)
        own = _visible(db, principal, own_id, deleted=False)
        return CustomerPage(data=[own] if own else [], next_cursor=None)
    tenant = tenancy.tenant_for(principal)
    if email is not None:
        with db.connect() as conn:
            found = repository.find_by_email(conn, email, tenant)
        return CustomerPage(data=[found] if found else [], next_cursor=None)
    after = pagination.decode_cursor(cursor)
    with db.connect() as conn:
        rows = repository.page(conn, tenant, after, limit + 1)
    return pagination.page_of(rows, limit, lambda row: (row.created_at, row.id))


def _visible(
    db: Engine, principal: Principal, customer_id: uuid.UUID, *, deleted: bool
) -> Customer | None:
    customer = cache.get(str(customer_id))
    if customer is None:
        with db.connect() as conn:
            customer = repository.get(conn, customer_id)
        if customer is not None:
            cache.put(customer)
    if (
        customer is None
        or not tenancy.owns(principal, customer.id, customer.tenant_id)
        or (customer.status == "deleted" and not deleted)
    ):
        return None
    return customer


def _change(
    db: Engine, customer_id: uuid.UUID, write: Callable[[Connection], Customer | None]
) -> Customer | None:
    """`write` in a transaction of its own; the cached copy dropped after the commit."""
    with db.begin() as conn:
        changed = write(conn)
    cache.invalidate(str(customer_id))
    return changed
