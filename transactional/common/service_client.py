"""Typed HTTP calls between services: timeouts, retries, the caller's request id, a token.

Every call a saga makes is idempotent on the server side (idempotency keys, unique keys),
so retrying a timed-out call is safe; a 4xx answer is never retried.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from pydantic import SecretStr

from paywall.logs import request_id
from paywall.settings import Settings

RETRY_STATUSES = {502, 503, 504}


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


class ServiceClient:
    def __init__(self, service: str, settings: Settings, tokens: TokenSource) -> None:
        self.service = service
        self.tokens = tokens
        self.http = httpx.Client(
            base_url=settings.service_url(service),
            timeout=settings.service_timeout_seconds,
            transport=httpx.HTTPTransport(retries=2),  # connection failures only
        )

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        idempotency_key: str | None = None,
        attempts: int = 3,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.tokens.token()}"}
        if (rid := request_id.get()) is not None:
            headers["X-Request-ID"] = rid
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        for attempt in range(attempts):
            try:
                resp = self.http.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                if attempt == attempts - 1:
                    raise ServiceError(self.service, 503, {"detail": str(exc)}) from exc
            else:
                if resp.status_code not in RETRY_STATUSES or attempt == attempts - 1:
                    return resp.status_code, _body(resp)
            time.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    def expect(self, ok: set[int], method: str, path: str, **kw: Any) -> dict[str, Any]:
        status, body = self.call(method, path, **kw)
        if status not in ok:
            raise ServiceError(self.service, status, body)
        return body


def _body(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {"detail": resp.text[:200]}
    return data if isinstance(data, dict) else {"data": data}
