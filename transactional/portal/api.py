"""The portal's calls to the services, made with the customer's own token.

The portal holds no service credentials: every read and change goes out as the customer,
so the services' tenancy rules (a user token acts for its own customer only) bound what
the portal can do, whatever a browser sends it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from paywall.settings import Settings


class ApiError(Exception):
    """A service refused or could not be reached; `detail` is fit to show the customer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Overview:
    customer: dict[str, Any]
    subscription: dict[str, Any] | None
    plan: dict[str, Any] | None
    next_plan: dict[str, Any] | None
    plans: list[dict[str, Any]]
    invoices: list[dict[str, Any]]
    account: dict[str, Any] | None


class CustomerApi:
    def __init__(self, settings: Settings, token: str, customer_id: str) -> None:
        self.settings = settings
        self.customer_id = customer_id
        self._headers = {"Authorization": f"Bearer {token}"}
        self._http = httpx.Client(timeout=settings.service_timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def _call(
        self, method: str, service: str, path: str, *, ok: tuple[int, ...] = (200,), **kw: Any
    ) -> httpx.Response:
        url = f"{self.settings.service_url(service)}{path}"
        headers = {**self._headers, **kw.pop("headers", {})}
        try:
            resp = self._http.request(method, url, headers=headers, **kw)
        except httpx.TransportError:
            raise ApiError(503, "The service is unavailable; please try again shortly.") from None
        if resp.status_code not in ok:
            raise ApiError(resp.status_code, _detail(resp))
        return resp

    def overview(self) -> Overview:
        customer = self._call("GET", "customer", f"/v1/customers/{self.customer_id}").json()
        subs = self._call("GET", "subscription", "/v1/subscriptions", params={"limit": 10})
        live = [s for s in subs.json()["data"] if s["status"] != "canceled"]
        subscription = live[0] if live else None
        plans = self._call("GET", "subscription", "/v1/plans", params={"limit": 100}).json()
        invoices = self._call("GET", "billing", "/v1/invoices", params={"limit": 24}).json()
        account = self._call("GET", "payment", f"/v1/accounts/{self.customer_id}", ok=(200, 404))
        plan = next_plan = None
        if subscription is not None:
            # At the price versions it pays: its own now, and the next period's (a scheduled
            # downgrade's, or a migration's to a newer price).
            plan = self._plan(subscription["plan_id"], subscription["price_version"])
            if subscription.get("pending_plan_id"):
                upcoming = (subscription["pending_plan_id"], subscription["pending_price_version"])
            else:
                version = subscription.get("next_price_version") or subscription["price_version"]
                upcoming = (subscription["plan_id"], version)
            same = upcoming == (subscription["plan_id"], subscription["price_version"])
            next_plan = plan if same else self._plan(*upcoming)
        return Overview(
            customer=customer,
            subscription=subscription,
            plan=plan,
            next_plan=next_plan,
            plans=plans["data"],
            invoices=invoices["data"],
            account=account.json() if account.status_code == 200 else None,
        )

    def _plan(self, plan_id: str, version: int | None) -> dict[str, Any] | None:
        params = {"price_version": version} if version else {}
        path = f"/v1/plans/{plan_id}"
        resp = self._call("GET", "subscription", path, params=params, ok=(200, 404))
        return resp.json() if resp.status_code == 200 else None  # retired from sale

    def change_plan(self, sub_id: uuid.UUID, plan_id: str, key: str) -> dict[str, Any]:
        path = f"/v1/subscriptions/{sub_id}/change-plan"
        headers = {"Idempotency-Key": key}
        return self._call(
            "POST", "subscription", path, json={"plan_id": plan_id}, headers=headers
        ).json()

    def act(self, sub_id: uuid.UUID, action: str) -> dict[str, Any]:
        """cancel (at period end), pause or resume."""
        body = {"at_period_end": True} if action == "cancel" else None
        path = f"/v1/subscriptions/{sub_id}/{action}"
        return self._call("POST", "subscription", path, json=body).json()

    def attach_card(self, payment_method_id: str) -> dict[str, Any]:
        path = f"/v1/accounts/{self.customer_id}/payment-methods"
        return self._call(
            "POST", "payment", path, json={"payment_method_id": payment_method_id}
        ).json()

    def invoice_pdf(self, invoice_id: uuid.UUID) -> bytes:
        return self._call("GET", "billing", f"/v1/invoices/{invoice_id}.pdf").content


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    detail = body.get("detail") or body.get("title") if isinstance(body, dict) else None
    return str(detail or f"The request was refused ({resp.status_code}).")
