"""A tenant with a signed-up customer, as the portal's tests start from: the tenant made the
way an operator makes one (so its portal login client exists), and a customer signed up
through the public API with a partner's token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from urllib.parse import urlsplit

import httpx

from paywall import clients
from paywall.db import engine
from tests.conftest import Api
from transactional.auth import admin
from transactional.auth.admin_models import TenantCreate

PARTNER_SCOPES = (
    "registrations:write customers:read subscriptions:read invoices:read payments:read "
    "payments:write"
)
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Customer:
    tenant: str
    email: str
    customer_id: str
    subscription_id: str
    partner: dict[str, str]  # the partner's Authorization header

    def get(self, api: Api, path: str) -> httpx.Response:
        return httpx.get(f"{api.url}{path}", headers=self.partner, timeout=30)


def new_card(api: Api, number: str = "4242424242424242") -> str:
    pm = clients.stripe_client(api.settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return str(pm.id)


def new_tenant(api: Api) -> str:
    tenant = f"portal-{uuid.uuid4().hex[:8]}"
    with engine(api.settings).begin() as conn:
        admin.create_tenant(conn, TenantCreate(id=tenant, name="Portal test"), None)
    return tenant


def signed_up(
    api: Api, issue_token: Callable[..., str], tenant: str, plan_id: str = "pro-monthly"
) -> Customer:
    partner = {"Authorization": f"Bearer {issue_token(PARTNER_SCOPES, tenant)}"}
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    body = {
        "email": email,
        "password": PASSWORD,
        "name": "Grace Hopper",
        "plan_id": plan_id,
        "payment_method_id": new_card(api),
    }
    headers = {**partner, "Idempotency-Key": str(uuid.uuid4())}
    resp = httpx.post(f"{api.url}/v1/registrations", json=body, headers=headers, timeout=60)
    assert resp.status_code == 201, resp.text
    made = resp.json()
    return Customer(tenant, email, made["customer_id"], made["subscription_id"], partner)


def login_form(
    browser: httpx.Client, url: str, email: str, password: str = PASSWORD
) -> httpx.Response:
    """Auth's login page at `url`, filled in and sent: its answer (a redirect, on success)."""
    page = browser.get(url)
    assert page.status_code == 200, page.text
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    form = {k: unescape(v) for k, v in hidden.items()} | {"email": email, "password": password}
    return browser.post(urlsplit(url).path, data=form)


def portal_page(base_url: str, tenant: str, email: str, password: str = PASSWORD) -> str:
    """The portal's page, signed in as a customer of `tenant` the way a browser does."""
    with httpx.Client(base_url=base_url, timeout=60, follow_redirects=False) as browser:
        to_auth = browser.get("/portal/login", params={"tenant": tenant})
        back = login_form(browser, to_auth.headers["location"], email, password)
        assert back.status_code == 302, back.text
        home = browser.get(back.headers["location"])
        return browser.get(home.headers["location"]).text
