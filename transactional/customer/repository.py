"""The customer schema: the only code that reads or writes it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from paywall import privacy
from streaming import outbox
from transactional.customer.models import Customer, CustomerCreate, CustomerUpdate

SCHEMA = "customer"
COLUMNS = (
    "id, tenant_id, email, name, phone, marketing_opt_in, status, created_at, updated_at, "
    "erased_at, address_country, address_region"
)


def check(conn: Connection) -> None:
    """Readiness: the schema is migrated and answers."""
    conn.execute(text("SELECT 1 FROM customer.customers LIMIT 1"))


class EmailTaken(Exception):
    def __init__(self, existing_id: uuid.UUID) -> None:
        self.existing_id = existing_id


def _row(row: Any) -> Customer:
    fields = dict(row._mapping)
    country, region = fields.pop("address_country"), fields.pop("address_region")
    address = {"country": country, "region": region} if country else None
    return Customer.model_validate({**fields, "address": address})


def _address_columns(address: dict[str, Any] | None) -> dict[str, Any]:
    address = address or {}
    return {"address_country": address.get("country"), "address_region": address.get("region")}


def _event_data(conn: Connection, c: Customer) -> dict[str, Any]:
    """The event's data, its personal fields sealed with the customer's key."""
    return privacy.seal(
        conn,
        str(c.id),
        {
            "customer_id": str(c.id),
            "tenant_id": c.tenant_id,
            "email": c.email,
            "name": c.name,
            "phone": c.phone,
            "marketing_opt_in": c.marketing_opt_in,
            "status": c.status,
        },
    )


def _event_keys(c: Customer) -> dict[str, Any]:
    return {"customer_id": str(c.id), "tenant_id": c.tenant_id}


def _emit(conn: Connection, c: Customer, event_type: str, data: dict[str, Any]) -> None:
    outbox.emit(conn, SCHEMA, "customer", str(c.id), event_type, data)


def create(conn: Connection, body: CustomerCreate, tenant_id: str | None) -> Customer:
    existing = _live_id(conn, body.email, tenant_id)
    if existing is not None:
        raise EmailTaken(existing)
    # ON CONFLICT covers the race the SELECT cannot: two signups in the same instant.
    row = conn.execute(
        text(
            "INSERT INTO customer.customers (id, tenant_id, email, name, phone, marketing_opt_in, "
            "address_country, address_region) VALUES (:id, :tenant, lower(:email), :name, "
            ":phone, :opt_in, :address_country, :address_region) "
            "ON CONFLICT DO NOTHING RETURNING " + COLUMNS
        ),
        {
            "id": uuid.uuid4(),
            "tenant": tenant_id,
            "email": body.email,
            "name": body.name,
            "phone": body.phone,
            "opt_in": body.marketing_opt_in,
            **_address_columns(body.address.model_dump() if body.address else None),
        },
    ).first()
    if row is None:
        raise EmailTaken(_live_id(conn, body.email, tenant_id) or uuid.UUID(int=0))
    customer = _row(row)
    _emit(conn, customer, "customer.created", _event_data(conn, customer))
    return customer


def _live_id(conn: Connection, email: str, tenant_id: str | None) -> uuid.UUID | None:
    """The live customer holding `email` in the unique index's sense (see `create`)."""
    found: uuid.UUID | None = conn.execute(
        text(
            "SELECT id FROM customer.customers WHERE deleted_at IS NULL "
            "AND coalesce(tenant_id, '') = coalesce(:tenant, '') AND lower(email) = lower(:email)"
        ),
        {"tenant": tenant_id, "email": email},
    ).scalar()
    return found


def get(conn: Connection, customer_id: uuid.UUID) -> Customer | None:
    row = conn.execute(
        text(f"SELECT {COLUMNS} FROM customer.customers WHERE id = :id"), {"id": customer_id}
    ).first()
    return _row(row) if row else None


def _of_tenant(tenant_id: str | None) -> str:
    """SQL matching exactly one tenant's customers; None means those without a tenant.

    Exact on purpose: `coalesce(tenant_id, '')` would also match a tenant named ''.
    """
    return "tenant_id IS NULL" if tenant_id is None else "tenant_id = :tenant"


def find_by_email(conn: Connection, email: str, tenant_id: str | None) -> Customer | None:
    # The coalesce term lets the unique index on (coalesce(tenant_id, ''), lower(email))
    # find the row; `_of_tenant` keeps the match exact.
    row = conn.execute(
        text(
            f"SELECT {COLUMNS} FROM customer.customers WHERE deleted_at IS NULL "
            "AND coalesce(tenant_id, '') = coalesce(:tenant, '') AND lower(email) = lower(:email) "
            f"AND {_of_tenant(tenant_id)}"
        ),
        {"tenant": tenant_id, "email": email},
    ).first()
    return _row(row) if row else None


def update(conn: Connection, customer_id: uuid.UUID, body: CustomerUpdate) -> Customer | None:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return get(conn, customer_id)
    columns = {k: v for k, v in changes.items() if k != "address"}
    if "address" in changes:
        columns.update(_address_columns(changes["address"]))
    sets = ", ".join(f"{col} = :{col}" for col in columns)
    row = conn.execute(
        text(
            f"UPDATE customer.customers SET {sets}, updated_at = now() "
            f"WHERE id = :id AND deleted_at IS NULL RETURNING {COLUMNS}"
        ),
        {**columns, "id": customer_id},
    ).first()
    if row is None:
        return None
    customer = _row(row)
    _emit(
        conn,
        customer,
        "customer.updated",
        {**_event_data(conn, customer), "changed": sorted(changes)},
    )
    return customer


def soft_delete(conn: Connection, customer_id: uuid.UUID) -> Customer | None:
    row = conn.execute(
        text(
            "UPDATE customer.customers SET status = 'deleted', deleted_at = now(), "
            f"updated_at = now() WHERE id = :id AND deleted_at IS NULL RETURNING {COLUMNS}"
        ),
        {"id": customer_id},
    ).first()
    if row is None:
        return None
    customer = _row(row)
    _emit(conn, customer, "customer.deleted", _event_keys(customer))
    return customer


def erase(conn: Connection, customer_id: uuid.UUID) -> Customer | None:
    """GDPR erasure: personal data replaced, the row (and its history's keys) kept."""
    row = conn.execute(
        text(
            "UPDATE customer.customers SET email = 'erased+' || id || '@invalid', name = NULL, "
            "phone = NULL, marketing_opt_in = false, address_country = NULL, "
            "address_region = NULL, status = 'deleted', "
            "deleted_at = coalesce(deleted_at, now()), erased_at = now(), updated_at = now() "
            f"WHERE id = :id AND erased_at IS NULL RETURNING {COLUMNS}"
        ),
        {"id": customer_id},
    ).first()
    if row is None:
        return None
    customer = _row(row)
    # The key goes with the row, in one transaction: from this commit on, no copy of any
    # event about this customer (topics, lake, audit log and its archive) can be read.
    privacy.shred(conn, str(customer_id))
    _emit(conn, customer, "customer.erased", _event_keys(customer))
    return customer


def page(
    conn: Connection, tenant_id: str | None, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Customer]:
    params: dict[str, Any] = {"tenant": tenant_id, "limit": limit}
    where = f"{_of_tenant(tenant_id)} AND deleted_at IS NULL"
    if after is not None:
        where += " AND (created_at, id) > (:after_ts, :after_id)"
        params.update(after_ts=after[0], after_id=after[1])
    rows = conn.execute(
        text(
            f"SELECT {COLUMNS} FROM customer.customers WHERE {where} "
            "ORDER BY created_at, id LIMIT :limit"
        ),
        params,
    ).all()
    return [_row(r) for r in rows]
