"""The webhook consumer's writes: events by id, whose customer is whose, the deliveries.

Every write is idempotent by event id (the consumer is at least once): an event is kept
once (`ON CONFLICT DO NOTHING`), and it is fanned out to its tenant's endpoints only in the
transaction that first gave it a tenant, so a redelivered event makes no second delivery.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam

from streaming.webhooks.schedule import window

# The domains partners hear about; within them, the events that are our plumbing.
PARTNER_DOMAINS = ("customer", "subscription", "payment", "invoice", "credit_note")
INTERNAL_TYPES = frozenset({"payment.account_created"})
# What an erased customer's stored events lose (the events stay: partners may page them).
PERSONAL_FIELDS = ("email", "name", "phone")


def partner_facing(event_type: str) -> bool:
    return event_type.split(".", 1)[0] in PARTNER_DOMAINS and event_type not in INTERNAL_TYPES


def remember_tenant(conn: Connection, customer_id: str, tenant_id: str, scale: float) -> int:
    """Record whose customer this is; events of it that waited for a tenant get theirs and
    are fanned out now. The number of events released."""
    conn.execute(
        text(
            "INSERT INTO webhooks.customer_tenants (customer_id, tenant_id) VALUES (:c, :t) "
            "ON CONFLICT (customer_id) DO NOTHING"
        ),
        {"c": customer_id, "t": tenant_id},
    )
    released: list[uuid.UUID] = list(
        conn.execute(
            text(
                "UPDATE webhooks.events SET tenant_id = :t "
                "WHERE tenant_id IS NULL AND customer_id = :c RETURNING event_id"
            ),
            {"c": customer_id, "t": tenant_id},
        ).scalars()
    )
    if released:
        fan_out(conn, released, scale)
    return len(released)


def record(conn: Connection, envelope: dict[str, Any], scale: float) -> bool:
    """Keep a partner-facing event once; fan it out if its tenant is known. True when new."""
    data: dict[str, Any] = envelope.get("data") or {}
    customer = data.get("customer_id")
    event_id = conn.execute(
        text(
            "INSERT INTO webhooks.events (event_id, tenant_id, customer_id, type, occurred_at, "
            "envelope) VALUES (:id, COALESCE(:t, (SELECT tenant_id FROM "
            "webhooks.customer_tenants WHERE customer_id = :c)), :c, :type, :at, :env) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id, tenant_id"
        ).bindparams(bindparam("env", type_=JSONB)),
        {
            "id": envelope["event_id"],
            "t": data.get("tenant_id"),
            "c": str(customer) if customer else None,
            "type": envelope["event_type"],
            "at": envelope["occurred_at"],
            "env": envelope,
        },
    ).first()
    if event_id is None:
        return False
    if event_id.tenant_id is not None:
        fan_out(conn, [event_id.event_id], scale)
    return True


def fan_out(
    conn: Connection,
    event_ids: list[uuid.UUID],
    scale: float,
    endpoint_id: uuid.UUID | None = None,
    replay: bool = False,
) -> int:
    """Deliveries of these events to their tenant's enabled endpoints whose filter takes
    them (one endpoint only, when named); a first delivery is made once per endpoint."""
    sql = (
        "INSERT INTO webhooks.deliveries (endpoint_id, event_id, ordering_key, occurred_at, "
        "replay, next_attempt_at, give_up_at) "
        "SELECT e.id, ev.event_id, COALESCE(ev.envelope->'data'->>'subscription_id', "
        "ev.customer_id, ev.event_id::text), ev.occurred_at, :replay, now(), now() + :window "
        "FROM webhooks.events ev JOIN webhooks.endpoints e ON e.tenant_id = ev.tenant_id "
        "AND e.disabled_at IS NULL AND (cardinality(e.event_types) = 0 "
        "OR ev.type = ANY(e.event_types) OR split_part(ev.type, '.', 1) || '.*' = "
        "ANY(e.event_types)) "
        "WHERE ev.event_id = ANY(:ids) AND (CAST(:endpoint AS uuid) IS NULL OR e.id = :endpoint) "
    )
    if not replay:
        sql += "ON CONFLICT (endpoint_id, event_id) WHERE NOT replay DO NOTHING"
    made = conn.execute(
        text(sql),
        {
            "ids": event_ids,
            "replay": replay,
            "window": window(scale),
            "endpoint": endpoint_id,
        },
    )
    return made.rowcount or 0


def scrub(conn: Connection, customer_id: str) -> None:
    """An erased customer's personal data leaves the stored events (ids stay)."""
    fields = " - ".join(f"'{f}'" for f in PERSONAL_FIELDS)
    conn.execute(
        text(
            "UPDATE webhooks.events SET envelope = jsonb_set(envelope, '{data}', "
            f"(envelope->'data') - {fields}) WHERE customer_id = :c"
        ),
        {"c": customer_id},
    )


def purge(conn: Connection, older_than: timedelta) -> tuple[int, int]:
    """Forget what partners can no longer ask for: events received over `older_than` ago
    (their deliveries and attempt logs go with them, by cascade) unless one of their
    deliveries is still pending, and finished replays of events that stay. Returns
    (events, deliveries) deleted."""
    cutoff = {"cutoff": datetime.now(UTC) - older_than}
    events = conn.execute(
        text(
            "DELETE FROM webhooks.events e WHERE e.received_at < :cutoff AND NOT EXISTS "
            "(SELECT 1 FROM webhooks.deliveries d WHERE d.event_id = e.event_id "
            "AND d.status = 'pending')"
        ),
        cutoff,
    ).rowcount
    deliveries = conn.execute(
        text("DELETE FROM webhooks.deliveries WHERE status <> 'pending' AND created_at < :cutoff"),
        cutoff,
    ).rowcount
    return events or 0, deliveries or 0
