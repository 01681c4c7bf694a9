"""Auth's signing keys table (`auth.signing_keys`): the queries keys.py rotates with."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam


def insert_key(conn: Connection, kid: str, alg: str, private_jwk: dict[str, Any]) -> None:
    conn.execute(
        text(
            "INSERT INTO auth.signing_keys (kid, alg, private_jwk) VALUES (:kid, :alg, :jwk)"
        ).bindparams(bindparam("jwk", type_=JSONB)),
        {"kid": kid, "alg": alg, "jwk": private_jwk},
    )


def retire_keys(conn: Connection) -> None:
    conn.execute(text("UPDATE auth.signing_keys SET retired_at = now() WHERE retired_at IS NULL"))


def active_jwk(conn: Connection) -> dict[str, Any] | None:
    """The private JWK of the oldest key not retired: a newer one is published ahead of
    signing (scheduled rotation) and signs once the older one is retired."""
    row = conn.execute(
        text(
            "SELECT private_jwk FROM auth.signing_keys WHERE retired_at IS NULL "
            "ORDER BY created_at, kid LIMIT 1"
        )
    ).scalar_one_or_none()
    return dict(row) if row is not None else None


def live_keys(conn: Connection) -> list[RowMapping]:
    """Keys not retired (kid, created_at), oldest first: the signing one, then the next."""
    return list(
        conn.execute(
            text(
                "SELECT kid, created_at FROM auth.signing_keys WHERE retired_at IS NULL "
                "ORDER BY created_at, kid"
            )
        ).mappings()
    )


def retire_keys_but(conn: Connection, kid: str) -> None:
    conn.execute(
        text(
            "UPDATE auth.signing_keys SET retired_at = now() "
            "WHERE retired_at IS NULL AND kid <> :kid"
        ),
        {"kid": kid},
    )


def delete_keys_retired_before(conn: Connection, keep: timedelta) -> int:
    """Forget private keys no published JWKS shows any more (retired over `keep` ago)."""
    return int(
        conn.execute(
            text("DELETE FROM auth.signing_keys WHERE retired_at < now() - :keep"),
            {"keep": keep},
        ).rowcount
    )


def lock_for(conn: Connection, lock: int) -> None:
    """Hold an advisory lock until the transaction ends (one process at a time)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})


def published_jwks(conn: Connection, keep: timedelta) -> Iterable[dict[str, Any]]:
    """Private JWKs of the active key and of those retired less than `keep` ago."""
    rows: Iterable[dict[str, Any]] = conn.execute(
        text(
            "SELECT private_jwk FROM auth.signing_keys "
            "WHERE retired_at IS NULL OR retired_at > now() - :keep "
            "ORDER BY created_at DESC, kid DESC"
        ),
        {"keep": keep},
    ).scalars()
    return [dict(jwk) for jwk in rows]
