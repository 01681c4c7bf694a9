"""Billing's Stripe budget: operations a second, shared by every thread, run and pod.

Stripe limits each account (100 operations a second in live mode, 25 in test mode) and
answers 429 past that. Billing is its biggest burst, and runs as several Dagster runs in
pods of their own, so the budget is counted where they all see it: a moving window in
Redis (`limits`' MovingWindowRateLimiter: one Lua script pushes the call's timestamp only
if fewer than the limit fall in the last second, so no two callers take the same place).
A call that finds the window full sleeps until its oldest entry leaves it. Timestamps are
the callers' clocks, so pods must keep NTP time, as they do.

Without Redis nothing is charged: `Unpaced` is raised and the charge is left for the
next run (the invoice stays open and its attempt keeps its key), rather than each pod
spending the whole budget on its own.
"""

from __future__ import annotations

import random
import time

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from paywall.settings import Settings

# The key every billing process counts under; one Stripe account per environment.
BUDGET = "billing-stripe"
# Never sleep less than this: a full window's oldest entry may be about to leave it.
MIN_SLEEP_SECONDS = 0.002


class Unpaced(Exception):
    """The shared budget could not be read (Redis unreachable): nothing was charged."""


class Pace:
    """Take one place in the budget before each call to Stripe."""

    def __init__(
        self, redis_url: str, per_second: int, *, window_seconds: int = 1, budget: str = BUDGET
    ) -> None:
        if redis_url.startswith("unix://"):
            redis_url = "redis+" + redis_url  # limits' name for a Redis socket
        storage = RedisStorage(redis_url, wrap_exceptions=True, socket_timeout=2)
        self.limiter = MovingWindowRateLimiter(storage)
        # `window_seconds` and `budget` are for tests: a long window holds a budget still.
        self.item = RateLimitItemPerSecond(per_second, window_seconds)
        self.budget = budget

    @classmethod
    def of(cls, settings: Settings) -> Pace:
        if not settings.redis_url:
            from paywall.errors import ConfigError

            raise ConfigError("REDIS_URL", "unset; billing's Stripe budget is kept in Redis")
        return cls(settings.redis_url, settings.stripe_ops_per_second)

    def take(self, cost: int = 1) -> bool:
        """`cost` places now, if the last window has them free."""
        try:
            return self.limiter.hit(self.item, self.budget, cost=cost)
        except StorageError as exc:
            raise Unpaced(str(exc.storage_error)[:200]) from exc

    def wait(self, cost: int = 1) -> None:
        """Block until `cost` places are taken."""
        while not self.take(cost):
            try:
                reset_at = self.limiter.get_window_stats(self.item, self.budget).reset_time
            except StorageError as exc:
                raise Unpaced(str(exc.storage_error)[:200]) from exc
            # A little jitter, so the threads that all saw the same reset do not all ask
            # at the same instant and all but one sleep again.
            delay = reset_at - time.time() + random.uniform(0, 0.01)
            time.sleep(max(delay, MIN_SLEEP_SECONDS))
