"""Signing keys: one active RS256 key signs; retired keys stay published until expiry.

The private JWK lives in `auth.signing_keys`. In production that table would hold a KMS
reference instead; everything else (kid, rotation, retention) stays the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam

from transactional.auth.config import KEY_RETENTION
from transactional.common.security import ALGORITHMS, InvalidToken

ALGORITHM = ALGORITHMS[0]
# Any constant: serialises creation of the first key across processes.
_FIRST_KEY_LOCK = 7261002


def _new_key() -> tuple[str, RSAKey]:
    kid = f"{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:12]}"
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return kid, key


def _insert(conn: Connection, kid: str, key: RSAKey) -> None:
    conn.execute(
        text(
            "INSERT INTO auth.signing_keys (kid, alg, private_jwk) VALUES (:kid, :alg, :jwk)"
        ).bindparams(bindparam("jwk", type_=JSONB)),
        {"kid": kid, "alg": ALGORITHM, "jwk": key.as_dict(private=True)},
    )


def rotate_signing_key(conn: Connection) -> str:
    """Retire the active key and start signing with a new one; returns the new kid.

    Tokens signed by the retired key keep verifying: it stays in the JWKS for
    KEY_RETENTION, and verifiers refetch the JWKS when they meet the new kid.
    """
    conn.execute(text("UPDATE auth.signing_keys SET retired_at = now() WHERE retired_at IS NULL"))
    kid, key = _new_key()
    _insert(conn, kid, key)
    return kid


def active_key(conn: Connection) -> RSAKey:
    """The key that signs new tokens; the first call on an empty table creates it."""
    row = _active_row(conn)
    if row is None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FIRST_KEY_LOCK})
        row = _active_row(conn)  # another process may have created it while we waited
        if row is None:
            kid, key = _new_key()
            _insert(conn, kid, key)
            return key
    return RSAKey.import_key(row)


def _active_row(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(
        text(
            "SELECT private_jwk FROM auth.signing_keys WHERE retired_at IS NULL "
            "ORDER BY created_at DESC, kid DESC LIMIT 1"
        )
    ).scalar_one_or_none()
    return dict(row) if row is not None else None


def published_keys(conn: Connection) -> list[dict[str, Any]]:
    """Public JWKs of the active key and of keys retired less than KEY_RETENTION ago."""
    rows: Iterable[dict[str, Any]] = conn.execute(
        text(
            "SELECT private_jwk FROM auth.signing_keys "
            "WHERE retired_at IS NULL OR retired_at > now() - :keep "
            "ORDER BY created_at DESC, kid DESC"
        ),
        {"keep": KEY_RETENTION},
    ).scalars()
    return [RSAKey.import_key(dict(jwk)).as_dict(private=False) for jwk in rows]


def sign(conn: Connection, claims: dict[str, Any], typ: str) -> str:
    key = active_key(conn)
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": typ}
    return jwt.encode(header, claims, key, algorithms=[ALGORITHM])


class DatabaseKeys:
    """A KeySource over the published keys, for auth's own checks (userinfo, revoke)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def key_set(self, kid: str) -> KeySet:
        keys = KeySet.import_key_set({"keys": published_keys(self.conn)})  # type: ignore[typeddict-item]
        if not any(key.kid == kid for key in keys.keys):
            raise InvalidToken("unknown signing key")
        return keys
