"""Signing keys: one active RS256 key signs; retired keys stay published until expiry.

The private JWK lives in `auth.signing_keys`. In production that table would hold a KMS
reference instead; everything else (kid, rotation, retention) stays the same.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import Connection

from transactional.auth import repository
from transactional.auth.config import KEY_RETENTION
from transactional.common.security import ALGORITHMS, InvalidToken

ALGORITHM = ALGORITHMS[0]
# Any constant: serialises creation of the first key across processes.
_FIRST_KEY_LOCK = 7261002


def _new_key(conn: Connection) -> tuple[str, RSAKey]:
    kid = f"{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:12]}"
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})
    repository.insert_key(conn, kid, ALGORITHM, key.as_dict(private=True))
    return kid, key


def rotate_signing_key(conn: Connection) -> str:
    """Retire the active key and start signing with a new one; returns the new kid.

    Tokens signed by the retired key keep verifying: it stays in the JWKS for
    KEY_RETENTION, and verifiers refetch the JWKS when they meet the new kid.
    """
    repository.retire_keys(conn)
    kid, _ = _new_key(conn)
    return kid


def active_key(conn: Connection) -> RSAKey:
    """The key that signs new tokens; the first call on an empty table creates it."""
    jwk = repository.active_jwk(conn)
    if jwk is None:
        repository.lock_for(conn, _FIRST_KEY_LOCK)
        jwk = repository.active_jwk(conn)  # another process may have made it meanwhile
        if jwk is None:
            return _new_key(conn)[1]
    return RSAKey.import_key(jwk)


def published_keys(conn: Connection) -> list[dict[str, Any]]:
    """Public JWKs of the active key and of keys retired less than KEY_RETENTION ago."""
    return [
        RSAKey.import_key(jwk).as_dict(private=False)
        for jwk in repository.published_jwks(conn, KEY_RETENTION)
    ]


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
