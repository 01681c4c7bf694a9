"""Revoked access tokens, broadcast through Redis so every service refuses them at once.

Auth's table (auth.revoked_tokens) is the record, and what auth itself checks. The other
services verify tokens offline against the JWKS and never read auth's tables, so auth
also sets one Redis key per revoked token id, expiring when the token would, and every
service's verifier looks it up. A service that cannot reach Redis accepts the token, as
it would have before the revocation: the token still ends at its expiry (minutes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from paywall.logs import get_logger
from transactional.common.redis_client import redis_client

log = get_logger(__name__)


def announce(revoked: Iterable[tuple[str, int]], leeway_seconds: int) -> None:
    """Tell every service that these tokens, as (jti, expiry in epoch seconds), are revoked."""
    client = _redis()
    if client is None:
        return
    now = int(time.time())
    try:
        with client.pipeline(transaction=False) as pipe:
            for jti, expires_at in revoked:
                # Verifiers accept a token up to `leeway` past its expiry: keep the key as long.
                ttl = expires_at - now + leeway_seconds
                if ttl > 0:
                    pipe.set(_key(jti), b"1", ex=ttl)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("auth.revocation.broadcast_failed", error=str(exc))


def is_revoked(jti: str) -> bool:
    client = _redis()
    if client is None or not jti:
        return False
    try:
        return bool(client.exists(_key(jti)))
    except redis.RedisError as exc:
        log.warning("auth.revocation.unavailable", error=str(exc))
        return False


def _key(jti: str) -> str:
    return f"auth:revoked-jti:v1:{jti}"


def _redis() -> redis.Redis | None:
    # Every authenticated request asks: a Redis that is gone may cost it 0.2 s, no more.
    return redis_client(timeout_seconds=0.2)
