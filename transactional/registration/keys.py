"""Idempotency keys in Stripe's style: fingerprint, saved response, 24 h lifetime."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam

from transactional.common import outbox
from transactional.registration.models import RegistrationRequest

KEY_LIFETIME = timedelta(hours=24)
SCHEMA = "registration"


@dataclass
class Claim:
    id: uuid.UUID
    fresh: bool  # this request owns the key; otherwise it is a replay or a duplicate
    status: str
    fingerprint: str
    response_status: int | None
    response_body: dict[str, Any] | None
    customer_id: uuid.UUID | None


def fingerprint(body: RegistrationRequest) -> str:
    # The password stays out: a digest of it would be an unsalted password hash at rest.
    fields = body.model_dump(mode="json", exclude={"password"})
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def claim(conn: Connection, client_id: str, key: str, body: RegistrationRequest) -> Claim:
    fp = fingerprint(body)
    now = datetime.now(UTC)
    conn.execute(
        text(
            "DELETE FROM registration.registrations WHERE client_id = :c "
            "AND idempotency_key = :k AND expires_at < :now"
        ),
        {"c": client_id, "k": key, "now": now},
    )
    new_id = uuid.uuid4()
    row = conn.execute(
        text(
            "INSERT INTO registration.registrations "
            "(id, client_id, idempotency_key, fingerprint, email, expires_at) "
            "VALUES (:id, :c, :k, :fp, :email, :exp) ON CONFLICT DO NOTHING RETURNING id"
        ),
        {
            "id": new_id,
            "c": client_id,
            "k": key,
            "fp": fp,
            "email": body.email,
            "exp": now + KEY_LIFETIME,
        },
    ).first()
    if row is not None:
        return Claim(new_id, True, "in_progress", fp, None, None, None)
    existing = load(conn, client_id, key)
    assert existing is not None, "the conflicting row vanished inside our transaction"
    return existing


def load(conn: Connection, client_id: str, key: str) -> Claim | None:
    row = conn.execute(
        text(
            "SELECT id, status, fingerprint, response_status, response_body, customer_id "
            "FROM registration.registrations WHERE client_id = :c AND idempotency_key = :k"
        ),
        {"c": client_id, "k": key},
    ).first()
    if row is None:
        return None
    return Claim(
        row.id,
        False,
        row.status,
        row.fingerprint,
        row.response_status,
        row.response_body,
        row.customer_id,
    )


def record_step(conn: Connection, reg_id: uuid.UUID, step: str, **ids: Any) -> None:
    sets = "".join(f", {k} = :{k}" for k in ids)
    conn.execute(
        text(
            f"UPDATE registration.registrations SET step = :step, updated_at = now(){sets} "
            "WHERE id = :id"
        ),
        {"step": step, "id": reg_id, **{k: v for k, v in ids.items()}},
    )


def finish(
    conn: Connection,
    reg_id: uuid.UUID,
    status: str,
    response_status: int,
    response_body: dict[str, Any],
    event_type: str,
    event_data: dict[str, Any],
) -> None:
    """Save the response for replays and the event for the bus, in one transaction."""
    conn.execute(
        text(
            "UPDATE registration.registrations SET status = :status, step = 'done', "
            "response_status = :rs, response_body = :rb, updated_at = now() WHERE id = :id"
        ).bindparams(bindparam("rb", type_=JSONB)),
        {"status": status, "rs": response_status, "rb": response_body, "id": reg_id},
    )
    outbox.emit(conn, SCHEMA, "registration", str(reg_id), event_type, event_data)


def release(conn: Connection, reg_id: uuid.UUID) -> None:
    """Forget a key whose request failed for a passing reason, so a retry may run again."""
    conn.execute(text("DELETE FROM registration.registrations WHERE id = :id"), {"id": reg_id})
