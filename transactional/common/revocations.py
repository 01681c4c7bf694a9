"""Revoked access tokens, as every service checks them: Redis first, auth when Redis cannot say.

Auth's table (auth.revoked_tokens) is the record. The other services verify tokens offline
against the JWKS and never read auth's tables, so auth copies the record into Redis: one
key per revoked token id, expiring when the token would, plus a watermark key saying "Redis
holds every revocation". Auth's sync (transactional/auth/revocation_sync.py) writes the
whole set when Redis was unreachable or came back without the watermark, pushes new
revocations, and refreshes the watermark every second with a short expiry, so the
watermark vanishes with a Redis restart and within seconds of auth no longer syncing.

A verifier reads the token's key and the watermark in one round trip:
- the token's key is there: revoked;
- no key but the watermark: not revoked;
- no watermark, or no Redis: Redis cannot say, so the verifier asks auth (RFC 7662
  introspection, authorized by the token itself: see `transactional/auth/routes.py`).
If auth does not answer either, the token is accepted: see `_ask_auth`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import httpx
import redis

from paywall.logs import get_logger
from paywall.settings import get_settings
from transactional.common.redis_client import redis_client

log = get_logger(__name__)

WATERMARK_KEY = "auth:revoked-jti:v1:synced"
# Auth refreshes the watermark every second; a few missed refreshes (a slow database
# read, a pause) do not send every verifier to auth, and a revocation that missed Redis
# is honoured everywhere within this long of auth noticing.
WATERMARK_TTL_SECONDS = 5
# Introspection is on the path of a request that already waits for it: short, and after a
# failure auth is left alone for a while instead of costing every request the timeout.
INTROSPECTION_TIMEOUT_SECONDS = 1.0
AUTH_RETRY_SECONDS = 5.0


def publish(
    client: redis.Redis,
    revoked: Iterable[tuple[str, int]],
    leeway_seconds: int,
    synced_at: float | None = None,
    *,
    watermark_must_exist: bool = False,
) -> bool:
    """Set a key per revoked token, as (jti, expiry in epoch seconds); raises RedisError.

    With `synced_at`, the same round trip then declares Redis whole (the watermark). With
    `watermark_must_exist` too, only a watermark still there is refreshed, and False says
    it was gone: Redis may have lost keys, and only a copy of the whole record may declare
    it whole again.
    """
    now = int(time.time())
    with client.pipeline(transaction=False) as pipe:
        for jti, expires_at in revoked:
            # Verifiers accept a token up to `leeway` past its expiry: keep the key as long.
            ttl = expires_at - now + leeway_seconds
            if ttl > 0:
                pipe.set(_key(jti), b"1", ex=ttl)
        if synced_at is not None:
            pipe.set(
                WATERMARK_KEY,
                repr(synced_at),
                ex=WATERMARK_TTL_SECONDS,
                xx=watermark_must_exist,
            )
        results = pipe.execute()
    return synced_at is None or bool(results[-1])


def announce(revoked: Iterable[tuple[str, int]], leeway_seconds: int) -> None:
    """Tell every service at once that these tokens are revoked; best effort.

    A revocation that misses Redis here is pushed by auth's sync once it is committed.
    """
    client = _redis()
    if client is None:
        return
    try:
        publish(client, revoked, leeway_seconds)
    except redis.RedisError as exc:
        log.warning("auth.revocation.broadcast_failed", error=str(exc)[:200])


def is_revoked(jti: str, token: str) -> bool:
    """Whether auth revoked this access token (`jti` is its id, already verified)."""
    known = _from_redis(jti)
    return known if known is not None else _ask_auth(token)


def _from_redis(jti: str) -> bool | None:
    """Revoked or not, or None when Redis cannot say."""
    client = _redis()
    if client is None or not jti:
        return None
    try:
        revoked, watermark = client.mget([_key(jti), WATERMARK_KEY])
    except redis.RedisError as exc:
        log.warning("auth.revocation.redis_unavailable", error=str(exc)[:200])
        return None
    if revoked is not None:
        return True
    return False if watermark is not None else None


class _Auth:
    """Auth's introspection endpoint, left alone for a while after it failed to answer."""

    def __init__(self) -> None:
        self._http = httpx.Client(timeout=INTROSPECTION_TIMEOUT_SECONDS)
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def active(self, token: str) -> bool | None:
        """What auth says of the token, or None when it does not answer."""
        with self._lock:
            if time.monotonic() < self._retry_at:
                return None
        try:
            response = self._http.post(
                f"{get_settings().issuer}/oauth/introspect",
                data={"token": token, "token_type_hint": "access_token"},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 200:
                return response.json().get("active") is True
            if response.status_code in (400, 401):
                return False  # auth refuses the token itself
            error = f"status {response.status_code}"
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            error = str(exc)[:200] or type(exc).__name__
        with self._lock:
            self._retry_at = time.monotonic() + AUTH_RETRY_SECONDS
        log.warning("auth.revocation.auth_unavailable", error=error)
        return None


_auth = _Auth()


def _ask_auth(token: str) -> bool:
    active = _auth.active(token)
    if active is None:
        # Neither Redis nor auth can say: accept, as before the revocation existed. Refusing
        # would make every service fail whenever auth is down (the watermark lapses within
        # seconds without auth's sync), undoing what offline verification buys; accepting
        # is limited to revocations Redis lost, during a double outage, for at most the
        # token's remaining lifetime (minutes). Revocations still in Redis stay refused.
        return False
    return not active


def _key(jti: str) -> str:
    return f"auth:revoked-jti:v1:{jti}"


def _redis() -> redis.Redis | None:
    # Every authenticated request asks: a Redis that is gone may cost it 0.2 s, no more.
    return redis_client(timeout_seconds=0.2)
