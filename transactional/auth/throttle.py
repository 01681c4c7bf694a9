"""Login throttling: failures per email and IP counted in Redis, then a lockout window.

Redis being down must not lock everybody out nor turn logins into 500s: the throttle
then allows the attempt and logs that it could not count it.
"""

from __future__ import annotations

import hashlib

import redis

from paywall.logs import get_logger
from transactional.common.redis_client import redis_client

log = get_logger(__name__)

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def _redis() -> redis.Redis | None:
    # A login waits at most half a second for a Redis that is gone.
    client = redis_client(timeout_seconds=0.5)
    if client is None:
        log.warning("login_throttle.disabled", reason="REDIS_URL unset")
    return client


def _key(email: str, ip: str) -> str:
    # Hashed: Redis dumps and MONITOR output should not list who tried to log in.
    digest = hashlib.sha256(f"{email.strip().lower()}\x00{ip}".encode()).hexdigest()
    return f"auth:login-failures:{digest}"


def locked_for(email: str, ip: str) -> int | None:
    """Seconds left in the lockout for this email from this IP, or None when not locked."""
    client = _redis()
    if client is None:
        return None
    key = _key(email, ip)
    try:
        count, ttl = client.pipeline().get(key).ttl(key).execute()
    except redis.RedisError as exc:
        log.warning("login_throttle.unavailable", error=str(exc)[:200])
        return None
    if count is not None and int(count) >= MAX_FAILURES:
        return max(int(ttl), 1)
    return None


def record_failure(email: str, ip: str) -> None:
    client = _redis()
    if client is None:
        return
    key = _key(email, ip)
    try:
        # The window starts at the first failure (SET NX EX); INCR keeps that expiry.
        pipe = client.pipeline()
        pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
        pipe.incr(key)
        _, count = pipe.execute()
        if int(count) == MAX_FAILURES:  # the lockout lasts a whole window from here
            client.expire(key, WINDOW_SECONDS)
    except redis.RedisError as exc:
        log.warning("login_throttle.unavailable", error=str(exc)[:200])


def clear(email: str, ip: str) -> None:
    client = _redis()
    if client is None:
        return
    try:
        client.delete(_key(email, ip))
    except redis.RedisError as exc:
        log.warning("login_throttle.unavailable", error=str(exc)[:200])
