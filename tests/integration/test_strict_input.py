"""Money and flags are taken as sent or refused, never coerced; money requests carry a key.

Against the whole API over HTTP with real tokens, Postgres and localstripe: each refused
request is a 422 (or 400) problem and leaves no payment, refund or PaymentIntent behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from paywall.clients import stripe_client
from paywall.db import engine
from tests.conftest import Api

pytestmark = pytest.mark.integration

INTERNAL = (
    "customers:read customers:write payments:read payments:write registrations:write internal"
)
NOT_MONEY: list[tuple[str, Any]] = [
    ("amount", True),  # once a 1-cent charge
    ("amount", "100"),
    ("amount", 10.0),
    ("amount", 10.5),
    ("amount", 0),
    ("amount", -100),
    ("amount", 100_000_000),
    ("currency", "xxx"),  # once charged
    ("currency", "USD"),  # Stripe's API takes lower case only
    ("currency", "us"),
    ("currency", 840),
]


@pytest.fixture(scope="module")
def http(api: Api, issue_token: Callable[..., str]) -> Iterator[httpx.Client]:
    token = issue_token(INTERNAL)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def customer_id(api: Api, http: httpx.Client) -> str:
    """A customer with a payment account and a card that charges."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    made = http.post("/v1/customers", json={"email": email, "name": "Strict"})
    assert made.status_code == 201, made.text
    customer_id = str(made.json()["id"])
    account = {"customer_id": customer_id, "email": email}
    assert http.post("/v1/accounts", json=account).status_code == 201
    method = stripe_client(api.settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    attached = http.post(
        f"/v1/accounts/{customer_id}/payment-methods", json={"payment_method_id": method.id}
    )
    assert attached.status_code == 200, attached.text
    return customer_id


def _count(api: Api, table: str, customer_id: str) -> int:
    query = {
        "payments": "SELECT count(*) FROM payment.payments WHERE customer_id = :c",
        "refunds": "SELECT count(*) FROM payment.refunds r JOIN payment.payments p "
        "ON p.id = r.payment_id WHERE p.customer_id = :c",
    }[table]
    with engine(api.settings).connect() as conn:
        return int(conn.execute(text(query), {"c": customer_id}).scalar_one())


def _intents(api: Api, customer_id: str) -> int:
    with engine(api.settings).connect() as conn:
        stripe_customer = conn.execute(
            text("SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = :c"),
            {"c": customer_id},
        ).scalar_one()
    page = stripe_client(api.settings).v1.payment_intents.list(params={"limit": 100})
    return sum(1 for pi in page.auto_paging_iter() if pi.customer == stripe_customer)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def _pay(http: httpx.Client, customer_id: str, **change: Any) -> httpx.Response:
    body = {"customer_id": customer_id, "amount": 1000, "currency": "usd", **change}
    return http.post("/v1/payments", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


@pytest.mark.parametrize(("field", "value"), NOT_MONEY)
def test_a_payment_takes_whole_minor_units_in_a_stripe_currency(
    api: Api, http: httpx.Client, customer_id: str, field: str, value: Any
) -> None:
    problem = _problem(_pay(http, customer_id, **{field: value}), 422)

    assert problem["errors"][0]["loc"] == ["body", field]
    assert _count(api, "payments", customer_id) == 0
    assert _intents(api, customer_id) == 0


def test_refunds_take_whole_minor_units(api: Api, http: httpx.Client, customer_id: str) -> None:
    paid = _pay(http, customer_id, amount=1999, currency="eur")
    assert paid.status_code == 201, paid.text
    refunds = f"/v1/payments/{paid.json()['id']}/refunds"

    for amount in (True, "500", 5.0, 0, -1):
        response = http.post(
            refunds, json={"amount": amount}, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        assert _problem(response, 422)["errors"][0]["loc"] == ["body", "amount"]
    assert _count(api, "refunds", customer_id) == 0

    partial = http.post(refunds, json={"amount": 500}, headers={"Idempotency-Key": "r-1"})
    assert partial.status_code == 201, partial.text
    assert _count(api, "refunds", customer_id) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/payments", {"amount": 1000, "currency": "usd"}),
        ("/v1/payments/{payment_id}/refunds", {"amount": 1}),
        ("/v1/registrations", {}),
    ],
)
def test_money_requests_require_an_idempotency_key(
    api: Api, http: httpx.Client, customer_id: str, path: str, body: dict[str, Any]
) -> None:
    operation = http.get("/openapi.json").json()["paths"][path]["post"]
    (key,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["required"] is True
    assert "400" in operation["responses"]

    target = path.format(payment_id=uuid.uuid4())
    payments_before = _count(api, "payments", customer_id)
    for headers in ({}, {"Idempotency-Key": ""}, {"Idempotency-Key": "k" * 256}):
        response = http.post(target, json={"customer_id": customer_id, **body}, headers=headers)
        problem = _problem(response, 400)
        assert problem["type"] in (
            "https://paywall.dev/problems/idempotency-key-required",
            "https://paywall.dev/problems/invalid-header",
        )
    assert _count(api, "payments", customer_id) == payments_before


def test_flags_are_booleans(http: httpx.Client) -> None:
    email = f"flags-{uuid.uuid4().hex[:8]}@example.com"
    for opt_in in (1, "true", "yes", None):
        customer = {"email": email, "name": "Ada", "marketing_opt_in": opt_in}
        assert _problem(http.post("/v1/customers", json=customer), 422)
    created = http.post("/v1/customers", json={"email": email, "name": "Ada", "tenant_id": "t-f"})
    assert created.status_code == 201, created.text
    url = f"/v1/customers/{created.json()['id']}"

    for change in ({"marketing_opt_in": 0}, {"marketing_opt_in": None}, {"name": None}):
        assert _problem(http.patch(url, json=change), 422)
    assert http.get(url).json()["marketing_opt_in"] is False
    assert http.patch(url, json={"phone": None}).status_code == 200  # the one clearable field


def test_cards_and_phones_are_what_they_claim(http: httpx.Client) -> None:
    signup = {
        "email": f"strict-{uuid.uuid4().hex[:8]}@example.com",
        "password": "correct horse battery staple",
        "name": "Ada",
        "plan_id": "pro-monthly",
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    for method in ("4242424242424242", "tok_visa", "pm_"):
        response = http.post(
            "/v1/registrations", json={**signup, "payment_method_id": method}, headers=key
        )
        assert _problem(response, 422)["errors"][0]["loc"] == ["body", "payment_method_id"]
    arabic_digits = "+1" + "\u0661" * 8
    customer = {"email": signup["email"], "name": "Ada", "phone": arabic_digits}
    assert _problem(http.post("/v1/customers", json=customer), 422)
