"""The registration schema: signups by Idempotency-Key, and who runs each one.

A key is claimed once per owner (common.idempotency: the tenant, else the client): the row
holds the request's fingerprint, the
request itself minus the password, how far the saga got, and in the end the answer every
replay repeats. Keys of finished signups expire after 24 h. A key whose signup has not
finished never expires and is never released while money may have moved: a retry (or the
recovery sweep) resumes it from the last step it recorded.

Who runs it is decided by a session-level advisory lock held on one connection for the
whole saga; the saga records its steps on that same connection. A crashed process, or a
database that dies under it, drops the connection and so the lock: the key is never stuck
"in progress" behind a request that no longer exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam

from streaming import outbox
from transactional.common import idempotency
from transactional.registration.models import RegistrationRequest, SignupDetails

KEY_LIFETIME = idempotency.KEY_LIFETIME
SCHEMA = "registration"
# Steps after which a signup no longer needs its password: the login exists.
PAST_LOGIN = ("payment_method", "subscription", "charging", "charged")
_COLUMNS = (
    "id, owner, idempotency_key, tenant_id, status, step, fingerprint, request, "
    "response_status, response_body, customer_id, subscription_id, payment_id, updated_at"
)


@dataclass(frozen=True)
class Claim:
    id: uuid.UUID
    fresh: bool  # this request inserted the key; otherwise it found it
    scoped_key: str  # the owner's key, as common.idempotency scopes it
    tenant_id: str | None
    status: str
    step: str
    fingerprint: str
    request: dict[str, Any] | None
    response_status: int | None
    response_body: dict[str, Any] | None
    customer_id: uuid.UUID | None
    subscription_id: uuid.UUID | None
    payment_id: str | None
    updated_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status != "in_progress"

    @property
    def past_login(self) -> bool:
        return self.step in PAST_LOGIN

    def details(self) -> SignupDetails:
        assert self.request is not None, "claims made since 0011 keep their request"
        return SignupDetails.model_validate(self.request)


def fingerprint(body: RegistrationRequest) -> str:
    # The password stays out: a digest of it would be an unsalted password hash at rest.
    return idempotency.fingerprint(body.model_dump(mode="json", exclude={"password"}))


def claim(
    conn: Connection, owner: str, tenant_id: str | None, key: str, body: RegistrationRequest
) -> Claim:
    """The signup for `owner`'s `key`: inserted now (`fresh`) or the one already there."""
    now = datetime.now(UTC)
    # Only a finished signup's key expires: an unfinished one may hold a charge to settle.
    conn.execute(
        text(
            "DELETE FROM registration.registrations WHERE owner = :c "
            "AND idempotency_key = :k AND expires_at < :now AND status <> 'in_progress'"
        ),
        {"c": owner, "k": key, "now": now},
    )
    new_id = uuid.uuid4()
    row = conn.execute(
        text(
            "INSERT INTO registration.registrations "
            "(id, owner, tenant_id, idempotency_key, fingerprint, email, request, "
            "expires_at) VALUES (:id, :c, :t, :k, :fp, :email, :request, :exp) "
            f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}"
        ).bindparams(bindparam("request", type_=JSONB)),
        {
            "id": new_id,
            "c": owner,
            "t": tenant_id,
            "k": key,
            "fp": fingerprint(body),
            "email": body.email,
            "request": body.details().model_dump(mode="json"),
            "exp": now + KEY_LIFETIME,
        },
    ).first()
    if row is not None:
        return _claim(row, fresh=True)
    existing = load(conn, owner, key)
    assert existing is not None, "the conflicting row vanished inside our transaction"
    return existing


def purge_expired_keys(conn: Connection) -> int:
    """Delete finished signups whose key has expired, as `claim` does when such a key
    comes again; an unfinished one may hold a charge to settle and stays."""
    return int(
        conn.execute(
            text(
                "DELETE FROM registration.registrations "
                "WHERE expires_at < now() AND status <> 'in_progress'"
            )
        ).rowcount
    )


def load(conn: Connection, owner: str, key: str) -> Claim | None:
    row = conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM registration.registrations "
            "WHERE owner = :c AND idempotency_key = :k"
        ),
        {"c": owner, "k": key},
    ).first()
    return _claim(row) if row is not None else None


def stale(conn: Connection, older_than: timedelta, limit: int) -> list[Claim]:
    """Unfinished signups nobody has touched for `older_than`: the recovery sweep's work."""
    rows = conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM registration.registrations WHERE status = 'in_progress' "
            "AND updated_at < now() - :age ORDER BY updated_at LIMIT :n"
        ),
        {"age": older_than, "n": limit},
    ).all()
    return [_claim(r) for r in rows]


def _claim(row: Any, fresh: bool = False) -> Claim:
    return Claim(
        id=row.id,
        fresh=fresh,
        scoped_key=f"{row.owner}|{row.idempotency_key}",
        tenant_id=row.tenant_id,
        status=row.status,
        step=row.step,
        fingerprint=row.fingerprint,
        request=row.request,
        response_status=row.response_status,
        response_body=row.response_body,
        customer_id=row.customer_id,
        subscription_id=row.subscription_id,
        payment_id=row.payment_id,
        updated_at=row.updated_at,
    )


class Run:
    """The one holder of a signup's lock: reads its state and records its steps."""

    def __init__(self, conn: Connection, reg_id: uuid.UUID) -> None:
        self.conn = conn
        self.id = reg_id

    def state(self) -> Claim | None:
        row = self.conn.execute(
            text(f"SELECT {_COLUMNS} FROM registration.registrations WHERE id = :id"),
            {"id": self.id},
        ).first()
        self.conn.commit()
        return _claim(row) if row is not None else None

    def step(self, step: str, **ids: Any) -> None:
        """Record how far the saga got, committed at once: a crash resumes from here."""
        sets = "".join(f", {k} = :{k}" for k in ids)
        self.conn.execute(
            text(
                f"UPDATE registration.registrations SET step = :step, updated_at = now(){sets} "
                "WHERE id = :id"
            ),
            {"step": step, "id": self.id, **ids},
        )
        self.conn.commit()

    def finish(
        self,
        status: str,
        response_status: int,
        response_body: dict[str, Any],
        event_type: str,
        event_data: dict[str, Any] | Callable[[Connection], dict[str, Any]],
    ) -> None:
        """Save the answer for replays and the event for the bus, in one transaction.

        `event_data` may be made in that transaction (sealing personal fields makes the
        customer's key there when it is the first to need one)."""
        self.conn.execute(
            text(
                "UPDATE registration.registrations SET status = :status, step = 'done', "
                "response_status = :rs, response_body = :rb, updated_at = now() WHERE id = :id"
            ).bindparams(bindparam("rb", type_=JSONB)),
            {"status": status, "rs": response_status, "rb": response_body, "id": self.id},
        )
        data = event_data(self.conn) if callable(event_data) else event_data
        outbox.emit(self.conn, SCHEMA, "registration", str(self.id), event_type, data)
        self.conn.commit()

    def release(self) -> None:
        """Forget a signup that moved no money, so the client's retry starts afresh."""
        self.conn.execute(
            text(
                "DELETE FROM registration.registrations WHERE id = :id AND status = 'in_progress'"
            ),
            {"id": self.id},
        )
        self.conn.commit()


@contextmanager
def running(engine: Engine, claim: Claim) -> Iterator[Run]:
    """Hold the signup's key for the block, or 409 at once while another request has it."""
    with idempotency.held(engine, claim.scoped_key) as conn:
        yield Run(conn, claim.id)
