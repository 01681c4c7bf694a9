"""The services' Redis: a cache and a broadcast, never the truth.

Every use must keep working when Redis is gone (slower, or less strict), so each caller
says how long it may wait for it, and gets None when REDIS_URL is unset.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from paywall.settings import get_settings


def redis_client(timeout_seconds: float) -> redis.Redis | None:
    """A shared client whose calls wait at most `timeout_seconds`; None without REDIS_URL."""
    url = get_settings().redis_url
    return _client(url, timeout_seconds) if url else None


@lru_cache(maxsize=8)
def _client(url: str, timeout_seconds: float) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
    )
