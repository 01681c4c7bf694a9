"""Guess limits: login attempts and client-secret guesses, counted before the secret is checked.

Counting first is what makes a limit hold under concurrency: each attempt takes its place
with one atomic increment (`limits`' fixed window: INCRBY, and EXPIRE on the first, in one
Redis script), and only attempts within the limit go on to the password check. An attempt
that is refused gives its places back, so counts are of secrets actually checked (failed
or in flight). A success gives its place back too, or clears the account's count: the
owner proved itself, and an office behind one address is not throttled by its own logins.

Without Redis each process counts in its own memory until Redis answers again. Failing
open would hand unlimited guesses (each an argon2 hash of CPU) to whoever can make Redis
unreachable; memory keeps a limit per process, and a lockout still ends with its window.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter

from paywall.logs import get_logger
from paywall.settings import get_settings
from transactional.common.redis_client import redis_client

log = get_logger(__name__)
T = TypeVar("T")

# After Redis failed, attempts are counted in memory this long before Redis is tried again.
REDIS_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Rule:
    name: str
    limit: RateLimitItem
    # A success clears the count (the account's owner proved itself) or gives back its place.
    clear_on_success: bool = False


# Per account, from one address: five tries, then the window's end (OWASP's lockout). Not
# per account alone: anyone could then lock anyone out from anywhere.
LOGIN_PER_ACCOUNT = Rule("login-account", parse("5 per 15 minutes"), clear_on_success=True)
# Per address across accounts: password spraying (one common password, many emails).
LOGIN_PER_IP = Rule("login-ip", parse("30 per 15 minutes"))
# Client secrets are long and random, so guessing them mostly burns CPU. Per client it is
# generous, since a legitimate client shares the count with whoever guesses its secret.
SECRET_PER_CLIENT = Rule("secret-client", parse("30 per minute"))
SECRET_PER_IP = Rule("secret-ip", parse("60 per minute"))


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; retry after {retry_after} s")
        self.retry_after = retry_after


class _Counters:
    """The Redis-backed limiter, or the in-memory one while Redis is failing or unset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memory: FixedWindowRateLimiter | None = None
        self._redis: dict[str, FixedWindowRateLimiter] = {}
        self._redis_retry_at = 0.0

    def run(self, action: Callable[[FixedWindowRateLimiter], T]) -> T:
        limiter = self._shared()
        if limiter is not None:
            try:
                return action(limiter)
            except StorageError as exc:
                error = str(exc.storage_error)[:200]
                log.warning("auth.throttle.redis_unavailable", error=error)
                with self._lock:
                    self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
        return action(self._local())

    def _shared(self) -> FixedWindowRateLimiter | None:
        # An attempt waits at most half a second for a Redis that is gone.
        client = redis_client(timeout_seconds=0.5)
        url = str(get_settings().redis_url)
        with self._lock:
            if client is None or time.monotonic() < self._redis_retry_at:
                return None
            if url not in self._redis:
                storage = RedisStorage(
                    url, connection_pool=client.connection_pool, wrap_exceptions=True
                )
                self._redis[url] = FixedWindowRateLimiter(storage)
            return self._redis[url]

    def _local(self) -> FixedWindowRateLimiter:
        with self._lock:
            if self._memory is None:  # MemoryStorage starts a thread: only when needed
                self._memory = FixedWindowRateLimiter(MemoryStorage())
            return self._memory


_counters = _Counters()


class Attempt:
    """One attempt, counted against its rules; call `succeeded()` when the secret was right."""

    def __init__(self, counted: list[tuple[Rule, str]]) -> None:
        self._counted = counted

    def succeeded(self) -> None:
        for rule, key in self._counted:
            if rule.clear_on_success:
                _clear(rule, key)
            else:
                _hit(rule, key, cost=-1)


def peer_ip(request: Request) -> str:
    """The address limits count by: the socket peer. Behind a proxy, uvicorn's
    --proxy-headers (with --forwarded-allow-ips set to the gateway) makes it the client's."""
    return request.client.host if request.client else "unknown"


def login_attempt(tenant_id: str | None, email: str, ip: str) -> Attempt:
    """Count a login before its password is checked; TooManyAttempts when over a limit."""
    account = _key(tenant_id or "", email.strip().lower(), ip)
    return _attempt([(LOGIN_PER_ACCOUNT, account), (LOGIN_PER_IP, _key(ip))])


def secret_guess(client_id: str, ip: str) -> Attempt:
    """Count a client-secret check before it runs; TooManyAttempts when over a limit."""
    return _attempt([(SECRET_PER_CLIENT, _key(client_id)), (SECRET_PER_IP, _key(ip))])


def _attempt(rules: list[tuple[Rule, str]]) -> Attempt:
    refused = [(rule, key) for rule, key in rules if not _hit(rule, key)]
    if not refused:
        return Attempt(rules)
    for rule, key in rules:  # not checked, so counted nowhere
        _hit(rule, key, cost=-1)
    raise TooManyAttempts(max(_seconds_left(rule, key) for rule, key in refused))


def _hit(rule: Rule, key: str, cost: int = 1) -> bool:
    # A fixed window's count is one integer: a negative hit gives places back.
    return _counters.run(lambda limiter: limiter.hit(rule.limit, rule.name, key, cost=cost))


def _clear(rule: Rule, key: str) -> None:
    _counters.run(lambda limiter: limiter.clear(rule.limit, rule.name, key))


def _seconds_left(rule: Rule, key: str) -> int:
    stats = _counters.run(lambda limiter: limiter.get_window_stats(rule.limit, rule.name, key))
    return max(math.ceil(stats.reset_time - time.time()), 1)


def _key(*parts: str) -> str:
    # Hashed: Redis dumps and MONITOR output should not list who tried to log in, nor from where.
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()
