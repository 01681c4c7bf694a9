"""The customer portal and customers' own tokens, on the real stack: what a customer may
change (its own subscription and card, once per form) and what it never reaches (another
customer's, a refund, a page without its session); the links emails carry into it."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from paywall.portal_links import LINK, SESSION, Sealer, card_link, portal_client_id
from tests.conftest import Api
from tests.portal_setup import Customer, login_form, new_card, new_tenant, signed_up
from transactional.portal.routes import SCOPES

pytestmark = pytest.mark.integration


@contextmanager
def portal_session(api: Api, customer: Customer) -> Iterator[httpx.Client]:
    """A browser (cookies kept) signed in to the portal as `customer`."""
    with httpx.Client(base_url=api.url, timeout=60) as browser:
        to_auth = browser.get(f"/portal/login?tenant={customer.tenant}")
        assert to_auth.status_code == 302
        back = login_form(browser, to_auth.headers["location"], customer.email)
        assert back.status_code == 302, back.text
        home = browser.get(back.headers["location"])
        assert home.status_code == 303 and home.headers["location"] == "/portal/"
        yield browser


def user_token(api: Api, customer: Customer) -> str:
    """The customer's own access token, as the portal gets it (code + PKCE)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    client_id, redirect = portal_client_id(customer.tenant), f"{api.url}/portal/callback"
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect,
        "scope": SCOPES,
        "state": "s",
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=api.url, timeout=60) as browser:
        url = str(httpx.URL(f"{api.url}/oauth/authorize", params=query))
        back = login_form(browser, url, customer.email)
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    token = httpx.post(
        f"{api.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": client_id,
            "code_verifier": verifier,
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text
    return str(token.json()["access_token"])


def _form(page: str) -> dict[str, str]:
    return {
        name: unescape(value)
        for name, value in re.findall(r'name="(csrf|key|subscription_id)" value="([^"]*)"', page)
    }


def _note(browser: httpx.Client, response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    page = browser.get(response.headers["location"]).text
    found = re.search(r'<div class="note \w+" role="\w+">([^<]*)</div>', page)
    return unescape(found.group(1)) if found else ""


@pytest.fixture
def two(api: Api, issue_token: Callable[..., str]) -> Iterator[tuple[Customer, Customer]]:
    tenant = new_tenant(api)
    yield signed_up(api, issue_token, tenant), signed_up(api, issue_token, tenant)


def test_an_upgrade_form_sent_twice_changes_and_charges_once(
    api: Api, two: tuple[Customer, Customer]
) -> None:
    customer, _ = two
    with portal_session(api, customer) as browser:
        form = _form(browser.get("/portal/").text) | {"plan_id": "team-monthly"}
        for _ in range(2):  # a double click, or the form sent again from the history
            sent = browser.post("/portal/plan", data=form)
            assert "changes to team-monthly now" in _note(browser, sent)
    invoices = customer.get(api, f"/v1/invoices?subscription_id={customer.subscription_id}")
    upgrades = [i for i in invoices.json()["data"] if i["kind"] == "proration"]
    assert len(upgrades) == 1 and upgrades[0]["status"] == "paid"
    payments = customer.get(api, f"/v1/payments?customer_id={customer.customer_id}").json()
    amounts = sorted(p["amount"] for p in payments["data"])
    assert amounts == sorted([2900, upgrades[0]["total"]]), payments  # the signup, the upgrade


def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    api: Api, two: tuple[Customer, Customer]
) -> None:
    customer, _ = two
    with portal_session(api, customer) as browser:
        form = _form(browser.get("/portal/").text)
        for csrf in ("", "forged"):
            refused = browser.post("/portal/subscription/pause", data={**form, "csrf": csrf})
            assert refused.status_code == 403
    sub = customer.get(api, f"/v1/subscriptions/{customer.subscription_id}").json()
    assert sub["status"] == "active"


def test_another_customers_subscription_is_out_of_reach(
    api: Api, two: tuple[Customer, Customer]
) -> None:
    mine, theirs = two
    with portal_session(api, mine) as browser:
        form = _form(browser.get("/portal/").text)
        for action in ("pause", "cancel"):
            sent = {**form, "subscription_id": theirs.subscription_id}
            note = _note(browser, browser.post(f"/portal/subscription/{action}", data=sent))
            assert note == f"no subscription {theirs.subscription_id}"  # as if absent
        sent = {**form, "subscription_id": theirs.subscription_id, "plan_id": "team-monthly"}
        assert "team-monthly" not in _note(browser, browser.post("/portal/plan", data=sent))
        invoices = customer_invoices(api, theirs)
        assert browser.get(f"/portal/invoices/{invoices[0]}.pdf").status_code == 404
    sub = theirs.get(api, f"/v1/subscriptions/{theirs.subscription_id}").json()
    assert (sub["status"], sub["plan_id"], sub["cancel_at_period_end"]) == (
        "active",
        "pro-monthly",
        False,
    )


def customer_invoices(api: Api, customer: Customer) -> list[str]:
    found = customer.get(api, f"/v1/invoices?customer_id={customer.customer_id}").json()
    return [i["id"] for i in found["data"]]


def test_a_customers_token_manages_its_own_subscription_and_card_and_nothing_else(
    api: Api, two: tuple[Customer, Customer]
) -> None:
    mine, theirs = two
    auth = {"Authorization": f"Bearer {user_token(api, mine)}"}

    def post(path: str, json: object = None, key: str | None = None) -> httpx.Response:
        headers = {**auth, "Idempotency-Key": key} if key else auth
        return httpx.post(f"{api.url}{path}", json=json, headers=headers, timeout=60)

    assert post(f"/v1/subscriptions/{mine.subscription_id}/pause").json()["status"] == "paused"
    assert post(f"/v1/subscriptions/{mine.subscription_id}/resume").json()["status"] == "active"
    card = new_card(api)
    attached = post(
        f"/v1/accounts/{mine.customer_id}/payment-methods", json={"payment_method_id": card}
    )
    assert attached.status_code == 200 and attached.json()["default_payment_method"] == card

    assert post(f"/v1/subscriptions/{theirs.subscription_id}/pause").status_code == 404
    other_card = post(
        f"/v1/accounts/{theirs.customer_id}/payment-methods",
        json={"payment_method_id": new_card(api)},
    )
    assert other_card.status_code == 404
    payments = httpx.get(f"{api.url}/v1/payments", headers=auth, timeout=30).json()["data"]
    assert payments and {p["customer_id"] for p in payments} == {mine.customer_id}
    refund = post(f"/v1/payments/{payments[0]['id']}/refunds", key="k-1")
    assert refund.status_code == 403  # a customer never refunds itself
    erase = httpx.patch(
        f"{api.url}/v1/customers/{mine.customer_id}", json={"name": "X"}, headers=auth, timeout=30
    )
    assert erase.status_code == 403


def test_an_emails_link_opens_the_customers_sign_in_and_nothing_forged_does(
    api: Api, two: tuple[Customer, Customer]
) -> None:
    customer, _ = two
    link = card_link(api.settings, customer.customer_id, customer.tenant)
    assert link.startswith(f"{api.url}/portal/link?t=")
    with httpx.Client(base_url=api.url, timeout=30) as browser:
        opened = browser.get(link)
        assert opened.status_code == 303
        assert opened.headers["location"].startswith(f"/portal/login?tenant={customer.tenant}&")
        to_auth = browser.get(opened.headers["location"])
        assert f"client_id={portal_client_id(customer.tenant)}" in to_auth.headers["location"]
        back = login_form(browser, to_auth.headers["location"], customer.email)
        landed = browser.get(back.headers["location"])
        assert landed.headers["location"] == "/portal/#card"

        token = parse_qs(urlsplit(link).query)["t"][0]
        sealer = Sealer.from_settings(api.settings)
        value = {"customer_id": customer.customer_id, "tenant_id": customer.tenant}
        forged = [
            token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),  # tampered
            sealer.seal(LINK, value, -1),  # expired
            sealer.seal(SESSION, value, 600),  # sealed for another use
            "",
        ]
        for bad in forged:
            refused = browser.get("/portal/link", params={"t": bad})
            assert refused.status_code == 400 and "expired or is not valid" in refused.text


def test_pages_need_a_session_and_a_forged_one_is_none(api: Api) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as browser:
        for path in ("/portal/", "/portal/invoices/0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d.pdf"):
            assert browser.get(path).headers["location"].startswith("/portal/login")
        browser.cookies.set("portal_session", "forged", path="/portal")
        assert browser.get("/portal/").headers["location"].startswith("/portal/login")
        assert browser.post("/portal/card", data={"payment_method_id": "pm_x"}).status_code == 303
        evil = browser.get("/portal/login", params={"tenant": "Not A Tenant"})
        assert evil.status_code == 400


def test_signing_out_revokes_the_token_so_a_copied_cookie_is_no_session(
    api: Api, two: tuple[Customer, Customer]
) -> None:
    customer, _ = two
    with portal_session(api, customer) as browser:
        copied = browser.cookies.get("portal_session", path="/portal")
        assert copied
        form = _form(browser.get("/portal/").text)
        out = browser.post("/portal/logout", data={"csrf": form["csrf"]})
        assert out.status_code == 200 and "signed out" in out.text
        assert browser.get("/portal/").headers["location"].startswith("/portal/login")
    with httpx.Client(base_url=api.url, timeout=30) as thief:
        thief.cookies.set("portal_session", copied, path="/portal")
        stolen = thief.get("/portal/")
        assert stolen.status_code == 303, stolen.text  # the token inside was revoked
        assert stolen.headers["location"].startswith(f"/portal/login?tenant={customer.tenant}")
