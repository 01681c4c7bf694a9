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

from transactional.auth import key_store
from transactional.auth.config import KEY_PUBLISH_AHEAD, KEY_RETENTION, SIGNING_KEY_MAX_AGE
from transactional.common.security import ALGORITHMS, InvalidToken

ALGORITHM = ALGORITHMS[0]
# Any constant: serialises creation of the first key across processes.
_FIRST_KEY_LOCK = 7261002


def _new_key(conn: Connection) -> tuple[str, RSAKey]:
    kid = f"{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:12]}"
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})
    key_store.insert_key(conn, kid, ALGORITHM, key.as_dict(private=True))
    return kid, key


def rotate_signing_key(conn: Connection) -> str:
    """Retire the active key and start signing with a new one; returns the new kid.

    Tokens signed by the retired key keep verifying: it stays in the JWKS for
    KEY_RETENTION, and verifiers refetch the JWKS when they meet the new kid.
    """
    key_store.retire_keys(conn)
    kid, _ = _new_key(conn)
    return kid


def scheduled_rotation(conn: Connection, now: datetime | None = None) -> str:
    """One daily step of key rotation; what it did, in a few words.

    The signing key's successor is published KEY_PUBLISH_AHEAD before the signing key
    reaches SIGNING_KEY_MAX_AGE; once published that long it signs, and the old key stays
    in the JWKS for KEY_RETENTION (the longest a token it signed lives), then goes.
    """
    key_store.lock_for(conn, _FIRST_KEY_LOCK)
    now = now or datetime.now(UTC)
    forgotten = key_store.delete_keys_retired_before(conn, KEY_RETENTION)
    done = f"; forgot {forgotten} expired key(s)" if forgotten else ""
    live = key_store.live_keys(conn)
    if not live:
        return f"created {_new_key(conn)[0]}{done}"
    signing, upcoming = live[0], live[1:]
    if upcoming:
        successor = upcoming[-1]
        if now - successor["created_at"] < KEY_PUBLISH_AHEAD:
            starts = successor["created_at"] + KEY_PUBLISH_AHEAD
            return f"{successor['kid']} published, signs from {starts:%Y-%m-%d}{done}"
        key_store.retire_keys_but(conn, successor["kid"])
        return f"{successor['kid']} signs, {signing['kid']} retired{done}"
    if now - signing["created_at"] >= SIGNING_KEY_MAX_AGE - KEY_PUBLISH_AHEAD:
        return f"published {_new_key(conn)[0]}, signs in {KEY_PUBLISH_AHEAD.days} days{done}"
    return f"{signing['kid']} signs{done}"


def active_key(conn: Connection) -> RSAKey:
    """The key that signs new tokens; the first call on an empty table creates it."""
    jwk = key_store.active_jwk(conn)
    if jwk is None:
        key_store.lock_for(conn, _FIRST_KEY_LOCK)
        jwk = key_store.active_jwk(conn)  # another process may have made it meanwhile
        if jwk is None:
            return _new_key(conn)[1]
    return RSAKey.import_key(jwk)


def published_keys(conn: Connection) -> list[dict[str, Any]]:
    """Public JWKs of the active key and of keys retired less than KEY_RETENTION ago."""
    return [
        RSAKey.import_key(jwk).as_dict(private=False)
        for jwk in key_store.published_jwks(conn, KEY_RETENTION)
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
