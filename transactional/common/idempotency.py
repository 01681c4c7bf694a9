"""Idempotency-Key, one way for every endpoint that takes one, as Stripe has it.

- The header: required where money moves or someone signs up (missing: 400
  `idempotency-key-required`), optional where a retry is harmless without it; 1-255 chars.
- A key belongs to its owner: the caller's tenant, else the client itself. The same key
  from two owners is two keys.
- The same key with other parameters: 422 `idempotency-key-reused`.
- The same key while its first request still runs: 409 `idempotency-in-progress` at once,
  with Retry-After. The client retries (the service client does, for the services' own
  calls); two requests with one key never run side by side.
- A replay answers what the first request answered, status and body, with
  `Idempotent-Replayed: true`.

Each service keeps its keys with what they made (a payment, a signup, a subscription):
the key is part of that object's identity, so no second table can disagree with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from transactional.common import errors
from transactional.common.errors import DomainError
from transactional.common.problems import PROBLEM_JSON, ProblemModel
from transactional.common.security import Principal

HEADER = "Idempotency-Key"
# Stripe's: after this a key may be used again for a new request. Registration and
# subscription keys are purged after it (`paywall housekeeping idempotency-keys`);
# payment keys are kept for good, so a charge can never be repeated (README).
KEY_LIFETIME = timedelta(hours=24)
REPLAYED_HEADER = "Idempotent-Replayed"
RETRY_AFTER_SECONDS = 1
_DESCRIPTION = "A retry with the same key and body returns the first answer (use a UUID)."

IdempotencyKey = Annotated[
    str, Header(alias=HEADER, min_length=1, max_length=255, description="Required. " + _DESCRIPTION)
]
OptionalIdempotencyKey = Annotated[
    str | None, Header(alias=HEADER, min_length=1, max_length=255, description=_DESCRIPTION)
]


def _documented(status: int, description: str) -> dict[str, Any]:
    return {"model": ProblemModel, "content": {PROBLEM_JSON: {}}, "description": description}


# What every keyed route documents besides its own answers.
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented(400, "No Idempotency-Key header, or not 1-255 characters"),
    409: _documented(409, "A request with this key is still running: retry after Retry-After"),
    422: _documented(422, "Invalid body, or this key was used with other parameters"),
}


@dataclass(frozen=True)
class Answer:
    """What a keyed request answers: stored with the key, repeated to every replay."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def owner(principal: Principal) -> str:
    """Whose keys a caller's are: its tenant's, else its own (a client of no tenant)."""
    if principal.tenant_id:
        return f"tenant:{principal.tenant_id}"
    return f"client:{principal.client_id}"


def scoped(principal: Principal, key: str) -> str:
    """The client's key in its owner's namespace: unique however many owners use it."""
    return f"{owner(principal)}|{key}"


def fingerprint(fields: Mapping[str, Any]) -> str:
    """What a request asked for, so the same key with other parameters can be refused."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def reused() -> DomainError:
    return DomainError(
        errors.IDEMPOTENCY_KEY_REUSED, "this Idempotency-Key was used with other parameters"
    )


def check_same(stored: str, asked: str) -> None:
    """Refuse a key that first asked for something else (fingerprints differ)."""
    if stored != asked:
        raise reused()


def in_progress() -> DomainError:
    return DomainError(
        errors.IDEMPOTENCY_IN_PROGRESS,
        "a request with this Idempotency-Key is still running; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def hold(conn: Connection, scoped_key: str) -> None:
    """Take the key until this transaction ends, or refuse at once (409) while another has
    it. A process that dies drops its connection, and the lock with it: never stuck."""
    got: bool = conn.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": lock_name(scoped_key)},
    ).scalar_one()
    if not got:
        raise in_progress()


@contextmanager
def held(engine: Engine, scoped_key: str) -> Iterator[Connection]:
    """Take the key on a connection of its own for a whole block that commits in steps (a
    signup's saga), or refuse at once (409) while another has it."""
    name = {"k": lock_name(scoped_key)}
    with engine.connect() as conn:
        got: bool = conn.execute(
            text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), name
        ).scalar_one()
        conn.commit()
        if not got:
            raise in_progress()
        try:
            yield conn
        finally:
            try:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), name)
                conn.commit()
            except DBAPIError:
                # The lock lives and dies with its session: a connection we cannot use any
                # more is thrown away, never returned to the pool still holding it.
                conn.invalidate()


def lock_name(scoped_key: str) -> str:
    """The advisory lock every service takes for a key (tests take it to fake a runner)."""
    return f"idempotency:{scoped_key}"


def respond(answer: Answer) -> JSONResponse:
    return JSONResponse(
        answer.body,
        status_code=answer.status,
        media_type=PROBLEM_JSON if answer.status >= 400 else "application/json",
        headers={REPLAYED_HEADER: "true"} if answer.replayed else None,
    )
