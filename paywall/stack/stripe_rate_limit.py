"""Stripe's 429s for the local stand-in: a per-second limit of its own, and 429s on demand.

Stripe counts each account's requests a second (100 in live mode, 25 in test mode) and
answers past that with 429 and a `rate_limit` error, which stripe-python raises as
RateLimitError; with `Stripe-Should-Retry: true` stripe-python retries it itself, with the
same Idempotency-Key. A rate-limited request does nothing, and Stripe does not keep its
answer under the key (the idempotency middleware keeps no 429).

localstripe has no limits. Here, set over HTTP on its own config route:

    POST /_config/rate_limit {"per_second": 25}          # answer 429 past 25 a second
    POST /_config/rate_limit {"next": 6, "method": "POST", "path": "/v1/payment_intents",
                              "should_retry": true, "retry_after": 1}
    GET  /_config/rate_limit   → {"per_second": …, "queued": …, "answered": {path: count}}

`next` answers the next N matching requests with 429 (a test's way to make Stripe busy
exactly when it wants); `should_retry` sets `Stripe-Should-Retry` (omitted: no header) and
`retry_after` a `Retry-After`; `status` answers another status than 429 (a `lock_timeout`,
which Stripe may mark retryable). `{"per_second": null, "next": 0}` clears both.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

LOCKED = "This object cannot be accessed right now because another API request is using it."
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROUTE = "/_config/rate_limit"
MESSAGE = (
    "Too many requests hit the API too quickly. We recommend an exponential backoff of "
    "your requests."
)


@dataclass
class Busy:
    """How the next matching requests are refused."""

    left: int
    method: str
    path: str
    should_retry: bool | None
    retry_after: int | None
    status: int = 429


class RateLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.per_second: int | None = None
        self.busy: Busy | None = None
        self.recent: dict[str, deque[float]] = {}
        self.answered: Counter[str] = Counter()

    def install(self, app: web.Application) -> None:
        """Outermost: Stripe refuses before it looks at the request (or its key)."""
        app.middlewares.insert(0, self.middleware)
        app.router.add_post(ROUTE, self.configure)
        app.router.add_get(ROUTE, self.report)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        busy = self.busy
        if busy and busy.left > 0 and (request.method, request.path) == (busy.method, busy.path):
            busy.left -= 1
            return self._refuse(request, busy.should_retry, busy.retry_after, busy.status)
        if self.per_second is not None and self._over(request):
            return self._refuse(request, None, 1)
        return await handler(request)

    def _over(self, request: web.Request) -> bool:
        # Per account (API key), over the last second, as Stripe counts.
        account = hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()
        seen = self.recent.setdefault(account, deque())
        now = self.clock()
        while seen and now - seen[0] >= 1.0:
            seen.popleft()
        if self.per_second is not None and len(seen) >= self.per_second:
            return True
        seen.append(now)
        return False

    def _refuse(
        self,
        request: web.Request,
        should_retry: bool | None,
        retry_after: int | None,
        status: int = 429,
    ) -> web.Response:
        self.answered[request.path] += 1
        headers = {}
        if should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        code, message = ("rate_limit", MESSAGE) if status == 429 else ("lock_timeout", LOCKED)
        error = {"type": "invalid_request_error", "code": code, "message": message}
        return web.json_response({"error": error}, status=status, headers=headers)

    async def configure(self, request: web.Request) -> web.Response:
        asked: dict[str, Any] = await request.json()
        if "per_second" in asked:
            self.per_second = int(asked["per_second"]) if asked["per_second"] else None
            self.recent.clear()
        if "next" in asked:
            self.busy = Busy(
                left=int(asked["next"]),
                method=str(asked.get("method", "POST")).upper(),
                path=str(asked.get("path", "/v1/payment_intents")),
                should_retry=asked.get("should_retry"),
                retry_after=asked.get("retry_after"),
                status=int(asked.get("status", 429)),
            )
        return await self.report(request)

    async def report(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "per_second": self.per_second,
                "queued": self.busy.left if self.busy else 0,
                "answered": dict(self.answered),
            }
        )
