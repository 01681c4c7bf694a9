"""Typed HTTP calls between services: timeouts, retries, the caller's request id, a token.

Every call a saga makes is idempotent on the server side (idempotency keys, unique keys),
so retrying a timed-out call is safe. A 4xx answer is final, except "a request with this
Idempotency-Key is still running" (409 in progress): that one is the answer to our own
earlier, timed-out attempt, so the call waits and asks again until the first one settles;
if it never does, the call fails as unavailable (a passing fault), never as a refusal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from paywall.logs import request_id
from paywall.settings import Settings

RETRY_STATUSES = {502, 503, 504}
# The services' answer to a key whose first request still runs (transactional/common/
# errors.py registers the same URI; a unit test keeps them equal).
IN_PROGRESS_TYPE = "https://paywall.dev/problems/idempotency-in-progress"
# How long a call waits, in all, for an earlier attempt with its key to finish.
IN_PROGRESS_WAIT_SECONDS = 30.0


# Each service's own OAuth client (client credentials) and all it may ask for: auth
# registers the clients with these scopes, and each service asks for all of them.
SERVICE_SCOPES: dict[str, tuple[str, ...]] = {
    "registration": (
        "customers:write",
        "customers:read",
        "subscriptions:write",
        "subscriptions:read",
        "payments:write",
        "users:write",
        # Signups with a coupon: the discount redeemed, the first charge quoted.
        "coupons:read",
        "invoices:write",
        "internal",
    ),
    # The Dagster code location's: billing runs, and the operations schedules (the recovery
    # sweeps, reconciliation) that the `operations` scope opens.
    # The billing service's too: it charges invoices through the payment service and
    # tells the subscription service that a paid upgrade is to be applied.
    "billing": (
        "customers:read",  # the customer's address picks the tax rate
        "subscriptions:read",
        "subscriptions:write",
        "payments:read",
        "payments:write",
        "invoices:read",
        "invoices:write",
        "operations",
        "internal",
    ),
    # All a service needs to look a customer up, and nothing that could change one; the
    # subscription service also asks billing to charge an upgrade's proration invoice.
    "subscription": ("customers:read", "invoices:write", "internal"),
    "payment": ("customers:read", "internal"),
}


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    retry_after: float | None  # seconds, when the answer said


class ServiceError(Exception):
    """A downstream service answered with a problem (or not at all)."""

    def __init__(self, service: str, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{service} answered {status}: {body.get('detail') or body.get('title')}")
        self.service = service
        self.status = status
        self.body = body


class TokenSource:
    """Client-credentials tokens from auth, cached until shortly before they expire."""

    def __init__(
        self, settings: Settings, scope: str, client_id: str, client_secret: SecretStr
    ) -> None:
        self.settings = settings
        self.scope = scope
        self.client_id = client_id
        self.client_secret = client_secret
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() > self._expires - 30:
                try:
                    resp = httpx.post(
                        f"{self.settings.service_url('auth')}/oauth/token",
                        data={"grant_type": "client_credentials", "scope": self.scope},
                        auth=(self.client_id, self.client_secret.get_secret_value()),
                        timeout=self.settings.service_timeout_seconds,
                    )
                except httpx.TransportError as exc:
                    raise ServiceError("auth", 503, {"detail": str(exc)}) from exc
                if resp.status_code != 200:
                    raise ServiceError("auth", resp.status_code, _body(resp))
                data = resp.json()
                self._token = str(data["access_token"])
                self._expires = time.monotonic() + float(data.get("expires_in", 300))
            return self._token

    def forget(self, token: str) -> None:
        """The service refused `token` (its signing key retired early, or it was revoked):
        the next `token()` asks auth for a new one."""
        with self._lock:
            if self._token == token:
                self._token = None


class ServiceClient:
    def __init__(self, service: str, settings: Settings, tokens: TokenSource) -> None:
        self.service = service
        self.tokens = tokens
        self.http = httpx.Client(
            base_url=settings.service_url(service),
            timeout=settings.service_timeout_seconds,
            transport=httpx.HTTPTransport(retries=2),  # connection failures only
        )
        self.in_progress_wait = max(IN_PROGRESS_WAIT_SECONDS, 3 * settings.service_timeout_seconds)

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        idempotency_key: str | None = None,
        attempts: int = 3,
    ) -> tuple[int, dict[str, Any]]:
        reply = self.reply(method, path, json, idempotency_key, attempts)
        return reply.status, reply.body

    def reply(
        self,
        method: str,
        path: str,
        json: Any = None,
        idempotency_key: str | None = None,
        attempts: int = 3,
    ) -> Reply:
        """`call`, with the answer's Retry-After for callers that pace their own retries."""
        token = self.tokens.token()
        headers = {"Authorization": f"Bearer {token}"}
        renewed = False
        if (rid := request_id.get()) is not None:
            headers["X-Request-ID"] = rid
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        attempt = 0
        waited_until = time.monotonic() + self.in_progress_wait
        while True:
            try:
                resp = self.http.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                attempt += 1
                if attempt >= attempts:
                    raise ServiceError(self.service, 503, {"detail": str(exc)}) from exc
                time.sleep(0.1 * 2 ** (attempt - 1))
                continue
            body = _body(resp)
            if resp.status_code == 401 and not renewed:
                # Refused before anything was done: once more with a fresh token.
                self.tokens.forget(token)
                token, renewed = self.tokens.token(), True
                headers["Authorization"] = f"Bearer {token}"
                continue
            if resp.status_code == 409 and body.get("type") == IN_PROGRESS_TYPE:
                if time.monotonic() >= waited_until:
                    raise ServiceError(self.service, 503, body)
                time.sleep(_retry_after(resp, cap=1.0))
                continue
            attempt += 1
            if resp.status_code not in RETRY_STATUSES or attempt >= attempts:
                return Reply(resp.status_code, body, _seconds(resp.headers.get("retry-after")))
            time.sleep(0.1 * 2 ** (attempt - 1))

    def expect(self, ok: set[int], method: str, path: str, **kw: Any) -> dict[str, Any]:
        status, body = self.call(method, path, **kw)
        if status not in ok:
            raise ServiceError(self.service, status, body)
        return body


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used between our services)."""
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _retry_after(resp: httpx.Response, cap: float) -> float:
    try:
        return min(max(float(resp.headers.get("retry-after", "0.2")), 0.05), cap)
    except ValueError:
        return 0.2


def _body(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {"detail": resp.text[:200]}
    return data if isinstance(data, dict) else {"data": data}


def service_tokens(settings: Settings, service: str) -> TokenSource:
    """Tokens for `service`'s own client, with every scope it has."""
    return TokenSource(
        settings, " ".join(SERVICE_SCOPES[service]), *settings.service_client(service)
    )
