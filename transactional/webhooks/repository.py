"""The webhooks schema, as the API reads and writes it (the consumer and the delivery
worker write it through streaming/webhooks)."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from paywall.secret_box import SecretBox
from streaming.webhooks import store
from transactional.webhooks.models import Attempt, Endpoint, EndpointCreate, Event

COLUMNS = (
    "id, tenant_id, url, description, event_types, contact_email, disabled_at IS NULL AS "
    "enabled, disabled_at, disabled_reason, created_at, updated_at"
)


def check(conn: Connection) -> None:
    """Readiness: the schema is migrated and answers."""
    conn.execute(text("SELECT 1 FROM webhooks.endpoints LIMIT 1"))


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes, base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _endpoint(row: Any) -> Endpoint:
    return Endpoint.model_validate(dict(row._mapping))


def create(
    conn: Connection,
    tenant_id: str,
    body: EndpointCreate,
    secret: str,
    box: SecretBox,
    key: str | None,
    fingerprint: str,
) -> Endpoint:
    """A new endpoint; its signing secret is stored sealed, bound to the endpoint's id."""
    endpoint_id = uuid.uuid4()
    row = conn.execute(
        text(
            "INSERT INTO webhooks.endpoints (id, tenant_id, url, description, event_types, "
            "contact_email, secret, request_key, request_fingerprint) VALUES (:id, :t, :url, "
            ":d, :types, :email, :secret, :key, :fp) RETURNING " + COLUMNS
        ),
        {
            "id": endpoint_id,
            "t": tenant_id,
            "url": str(body.url),
            "d": body.description,
            "types": body.event_types,
            "email": body.contact_email,
            "secret": box.seal(secret, str(endpoint_id)),
            "key": key,
            "fp": fingerprint,
        },
    ).one()
    return _endpoint(row)


def by_request_key(conn: Connection, key: str) -> tuple[Endpoint, str | None] | None:
    row = conn.execute(
        text(
            f"SELECT {COLUMNS}, request_fingerprint FROM webhooks.endpoints WHERE request_key = :k"
        ),
        {"k": key},
    ).first()
    if row is None:
        return None
    fields = dict(row._mapping)
    fingerprint = fields.pop("request_fingerprint")
    return Endpoint.model_validate(fields), fingerprint


def get(conn: Connection, endpoint_id: uuid.UUID) -> Endpoint | None:
    row = conn.execute(
        text(f"SELECT {COLUMNS} FROM webhooks.endpoints WHERE id = :e"), {"e": endpoint_id}
    ).first()
    return _endpoint(row) if row else None


def page(
    conn: Connection, tenant_id: str, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Endpoint]:
    rows = conn.execute(
        text(
            f"SELECT {COLUMNS} FROM webhooks.endpoints WHERE tenant_id = :t AND "
            "(CAST(:at AS timestamptz) IS NULL OR (created_at, id) > (:at, :id)) "
            "ORDER BY created_at, id LIMIT :limit"
        ),
        {
            "t": tenant_id,
            "at": after[0] if after else None,
            "id": after[1] if after else None,
            "limit": limit,
        },
    )
    return [_endpoint(r) for r in rows]


def set_enabled(conn: Connection, endpoint_id: uuid.UUID, enabled: bool, why: str) -> Endpoint:
    """Enabling starts a new failure streak; the deliveries that waited are sent then."""
    row = conn.execute(
        text(
            "UPDATE webhooks.endpoints SET updated_at = now(), "
            "disabled_at = CASE WHEN :on THEN NULL ELSE COALESCE(disabled_at, now()) END, "
            "disabled_reason = CASE WHEN :on THEN NULL ELSE COALESCE(disabled_reason, :why) END, "
            "failures = CASE WHEN :on THEN 0 ELSE failures END, "
            "failing_since = CASE WHEN :on THEN NULL ELSE failing_since END "
            f"WHERE id = :e RETURNING {COLUMNS}"
        ),
        {"e": endpoint_id, "on": enabled, "why": why},
    ).one()
    return _endpoint(row)


def rotate(conn: Connection, endpoint_id: uuid.UUID, secret: str, box: SecretBox) -> None:
    conn.execute(
        text("UPDATE webhooks.endpoints SET secret = :s, updated_at = now() WHERE id = :e"),
        {"e": endpoint_id, "s": box.seal(secret, str(endpoint_id))},
    )


def replay(
    conn: Connection,
    endpoint: Endpoint,
    event_ids: list[uuid.UUID] | None,
    since: datetime | None,
    until: datetime | None,
    scale: float,
) -> int:
    if event_ids is None:
        event_ids = list(
            conn.execute(
                text(
                    "SELECT event_id FROM webhooks.events WHERE tenant_id = :t "
                    "AND occurred_at >= :since AND occurred_at < :until ORDER BY occurred_at"
                ),
                {"t": endpoint.tenant_id, "since": since, "until": until},
            ).scalars()
        )
    if not event_ids:
        return 0
    return store.fan_out(conn, event_ids, scale, endpoint_id=endpoint.id, replay=True)


def attempts(
    conn: Connection, endpoint_id: uuid.UUID, before: int | None, limit: int
) -> list[tuple[int, Attempt]]:
    """The delivery log, newest first, with each row's id for the cursor."""
    rows = conn.execute(
        text(
            "SELECT a.id, a.event_id, ev.type AS event_type, a.attempt, a.status_code, "
            "a.duration_ms, a.error, a.attempted_at FROM webhooks.attempts a "
            "JOIN webhooks.events ev ON ev.event_id = a.event_id WHERE a.endpoint_id = :e "
            "AND (CAST(:before AS bigint) IS NULL OR a.id < :before) "
            "ORDER BY a.id DESC LIMIT :limit"
        ),
        {"e": endpoint_id, "before": before, "limit": limit},
    ).mappings()
    out = []
    for row in rows:
        fields = dict(row)
        out.append((fields.pop("id"), Attempt.model_validate(fields)))
    return out


def event_seq(conn: Connection, tenant_id: str, event_id: uuid.UUID) -> int | None:
    seq: int | None = conn.execute(
        text("SELECT seq FROM webhooks.events WHERE event_id = :e AND tenant_id = :t"),
        {"e": event_id, "t": tenant_id},
    ).scalar()
    return seq


def events(
    conn: Connection,
    tenant_id: str,
    after: int | None,
    types: list[str],
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[tuple[int, Event]]:
    """The tenant's events in the order they were received, with each one's seq."""
    exact = [t for t in types if not t.endswith(".*")]
    domains = [t[:-2] for t in types if t.endswith(".*")]
    rows = conn.execute(
        text(
            "SELECT seq, envelope FROM webhooks.events WHERE tenant_id = :t "
            "AND (CAST(:after AS bigint) IS NULL OR seq > :after) "
            "AND (CAST(:since AS timestamptz) IS NULL OR occurred_at >= :since) "
            "AND (CAST(:until AS timestamptz) IS NULL OR occurred_at < :until) "
            "AND (:any OR type = ANY(:exact) OR split_part(type, '.', 1) = ANY(:domains)) "
            "ORDER BY seq LIMIT :limit"
        ),
        {
            "t": tenant_id,
            "after": after,
            "since": since,
            "until": until,
            "any": not types,
            "exact": exact,
            "domains": domains,
            "limit": limit,
        },
    )
    return [(row.seq, _event(row.envelope)) for row in rows]


def _event(envelope: dict[str, Any]) -> Event:
    return Event(
        id=envelope["event_id"],
        type=envelope["event_type"],
        schema_version=envelope["schema_version"],
        occurred_at=envelope["occurred_at"],
        data=envelope["data"],
    )
