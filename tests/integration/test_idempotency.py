"""One Idempotency-Key behaviour for every endpoint that takes one (common/idempotency.py).

Each keyed endpoint, over real HTTP on the real stack: a missing key, a key replayed with
the same body, a key reused with another body, and a key whose first request still runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from paywall import clients
from tests.conftest import Api
from transactional.common.idempotency import lock_name

pytestmark = pytest.mark.integration

PROBLEMS = "https://paywall.dev/problems"
SCOPES = (
    "registrations:write customers:read customers:write subscriptions:read "
    "subscriptions:write payments:read payments:write"
)


@dataclass
class Endpoint:
    """A keyed endpoint: where to send, two different bodies, whether the key is required."""

    name: str
    path: str
    first: dict[str, Any]
    other: dict[str, Any]
    required: bool = True


@dataclass
class Partner:
    api: Api
    tenant: str
    token: str

    def post(self, path: str, body: dict[str, Any], key: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return httpx.post(f"{self.api.url}{path}", json=body, headers=headers, timeout=60)

    def scoped(self, key: str) -> str:
        return f"tenant:{self.tenant}|{key}"


@pytest.fixture(scope="module")
def partner(api: Api, issue_token: Callable[..., str]) -> Partner:
    tenant = f"idem-{uuid.uuid4().hex[:8]}"
    return Partner(api, tenant, issue_token(SCOPES, tenant))


def card(api: Api) -> str:
    method = clients.stripe_client(api.settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return str(method.id)


def signup(api: Api, **overrides: Any) -> dict[str, Any]:
    return {
        "email": f"{uuid.uuid4().hex[:10]}@example.com",
        "password": "correct horse battery",
        "name": "Ada",
        "plan_id": "pro-monthly",
        "payment_method_id": card(api),
        **overrides,
    }


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def endpoint(name: str, partner: Partner) -> Endpoint:
    api = partner.api
    if name == "registration":
        return Endpoint(
            name, "/v1/registrations", signup(api), signup(api, plan_id="basic-monthly")
        )
    # A trial signup gives a customer with a payment account and a card, and charges nothing.
    customer = created(
        partner.post("/v1/registrations", signup(api, trial=True), str(uuid.uuid4()))
    )["customer_id"]
    if name == "payment":
        body = {"customer_id": customer, "amount": 500, "currency": "usd"}
        return Endpoint(name, "/v1/payments", body, {**body, "amount": 700})
    if name == "refund":
        payment = created(
            partner.post(
                "/v1/payments",
                {"customer_id": customer, "amount": 900, "currency": "usd"},
                str(uuid.uuid4()),
            )
        )
        path = f"/v1/payments/{payment['id']}/refunds"
        return Endpoint(name, path, {"amount": 100}, {"amount": 200})
    assert name == "subscription"
    fresh = created(
        partner.post(
            "/v1/customers", {"email": f"{uuid.uuid4().hex[:10]}@example.com", "name": "B"}, None
        )
    )["id"]
    body = {"customer_id": fresh, "plan_id": "pro-monthly", "trial": True}
    return Endpoint(name, "/v1/subscriptions", body, {**body, "plan_id": "basic-monthly"}, False)


KEYED = ["registration", "payment", "refund", "subscription"]


@pytest.fixture(params=KEYED)
def keyed(request: pytest.FixtureRequest, partner: Partner) -> Endpoint:
    return endpoint(request.param, partner)


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"{PROBLEMS}/{slug}", body
    return body


def test_a_replay_answers_the_first_answer(partner: Partner, keyed: Endpoint) -> None:
    key = str(uuid.uuid4())
    first = partner.post(keyed.path, keyed.first, key)
    again = partner.post(keyed.path, keyed.first, key)

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert again.status_code == first.status_code
    assert again.headers["idempotent-replayed"] == "true"
    assert ident(again.json()) == ident(first.json())


def ident(body: dict[str, Any]) -> str:
    return str(body.get("id") or body["registration_id"])


def test_a_key_reused_with_another_body_is_422(partner: Partner, keyed: Endpoint) -> None:
    key = str(uuid.uuid4())
    created(partner.post(keyed.path, keyed.first, key))

    problem(partner.post(keyed.path, keyed.other, key), 422, "idempotency-key-reused")


def test_a_missing_key(partner: Partner, keyed: Endpoint) -> None:
    answer = partner.post(keyed.path, keyed.first, None)
    if keyed.required:
        problem(answer, 400, "idempotency-key-required")
    else:
        created(answer)  # optional here: the request simply is not idempotent


def test_a_key_still_running_is_409_at_once_then_answers(partner: Partner, keyed: Endpoint) -> None:
    key = str(uuid.uuid4())
    assert partner.api.settings.database_url
    # Another session holds the key's lock, as a request still running it would.
    with psycopg.connect(partner.api.settings.database_url, autocommit=True) as other:
        other.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_name(partner.scoped(key)),)
        )
        busy = partner.post(keyed.path, keyed.first, key)
    done = partner.post(keyed.path, keyed.first, key)

    problem(busy, 409, "idempotency-in-progress")
    assert busy.headers["retry-after"] == "1"
    created(done)
