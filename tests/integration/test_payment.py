"""The payment service over real HTTP, against real PostgreSQL and localstripe.

Auth: most tests swap the `payments:*` dependencies for a Principal chosen per request
(header `x-test-customer` / `x-test-tenant`; none means an internal service), so they test
payment logic, not tokens. `test_no_token_is_401` runs the real dependency, and
`test_real_tokens_from_auth` uses tokens the auth service issues.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from paywall.clients import stripe_client
from paywall.db import engine as db_engine
from paywall.settings import Settings
from paywall.stack.process import LOOPBACK, free_port
from tests.conftest import Api
from transactional.common import deps, idempotency
from transactional.common.app import create_app
from transactional.common.security import Principal
from transactional.payment import repository as repo
from transactional.payment import routes as payment_routes
from transactional.payment.app import READY_CHECKS, ROUTERS
from transactional.payment.models import PaymentCreate

pytestmark = pytest.mark.integration

GOOD_CARD = "4242424242424242"
DECLINED_ON_CHARGE = "4000000000000341"  # attaches fine, every charge is declined


# -- fixtures ----------------------------------------------------------------------------


INTERNAL = Principal("registration", "registration", frozenset({"internal"}), None, None)


def _principal(request: Request) -> Principal:
    customer = request.headers.get("x-test-customer")
    tenant = request.headers.get("x-test-tenant")
    if customer is None and tenant is None:
        return INTERNAL
    scopes = frozenset({"payments:read", "payments:write"})
    return Principal(customer or "user", "web", scopes, customer, tenant)


def _app(settings: Settings) -> FastAPI:
    app = create_app("payment", ROUTERS, READY_CHECKS)
    app.dependency_overrides[deps.current_settings] = lambda: settings
    app.dependency_overrides[payment_routes.WRITE] = _principal
    app.dependency_overrides[payment_routes.READ] = _principal
    app.dependency_overrides[payment_routes.CARD] = _principal
    return app


@pytest.fixture(scope="module")
def base_url(api: Api) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, for the module's tests.

    Its settings are the combined app's, so it asks that app's customer service (with
    tokens from its auth) about the customers accounts are opened for.
    """
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(_app(api.settings), host=LOOPBACK, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def db(settings: Settings) -> Engine:
    return db_engine(settings)


@pytest.fixture(scope="module")
def stripe(settings: Settings) -> Any:
    return stripe_client(settings)


def _card(stripe: Any, number: str = GOOD_CARD) -> str:
    pm = stripe.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return str(pm.id)


@pytest.fixture(scope="module")
def new_customer(api: Api, issue_token: Callable[..., str]) -> Callable[..., str]:
    """Make a customer (of `tenant_id`) in the customer service; its id."""
    internal = {"Authorization": f"Bearer {issue_token('customers:write internal')}"}

    def make(tenant_id: str | None = None) -> str:
        body = {"email": f"{uuid.uuid4().hex}@example.com", "name": "Ada", "tenant_id": tenant_id}
        made = httpx.post(f"{api.url}/v1/customers", json=body, headers=internal)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    return make


@pytest.fixture
def accounts(
    http: httpx.Client, stripe: Any, new_customer: Callable[..., str]
) -> Callable[..., str]:
    """Open a payment account (with a card unless `card=None`) for a new customer; its id."""

    def open_account(card: str | None = GOOD_CARD, tenant_id: str | None = None) -> str:
        customer_id = new_customer(tenant_id)
        body = {"customer_id": customer_id, "email": f"{customer_id}@example.com"}
        assert http.post("/v1/accounts", json=body).status_code == 201
        if card:
            r = http.post(
                f"/v1/accounts/{customer_id}/payment-methods",
                json={"payment_method_id": _card(stripe, card)},
            )
            assert r.status_code == 200, r.text
        return customer_id

    return open_account


def _pay(
    http: httpx.Client, customer_id: str, key: str | None = None, amount: int = 1000, **extra: Any
) -> httpx.Response:
    body = {"customer_id": customer_id, "amount": amount, "currency": "usd", **extra}
    return http.post(
        "/v1/payments", json=body, headers={"Idempotency-Key": key or str(uuid.uuid4())}
    )


def _intents_for(stripe: Any, payment_id: str) -> list[str]:
    page = stripe.v1.payment_intents.list(params={"limit": 100})
    return [
        pi.id
        for pi in page.auto_paging_iter()
        if pi.to_dict().get("metadata", {}).get("payment_id") == payment_id
    ]


def _events(db: Engine, aggregate_id: str) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT type FROM payment.outbox WHERE aggregate_id = :a ORDER BY seq"),
            {"a": aggregate_id},
        )
        return [r[0] for r in rows]


def _is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# -- accounts ----------------------------------------------------------------------------


def test_account_is_created_once(
    http: httpx.Client, stripe: Any, db: Engine, new_customer: Callable[..., str]
) -> None:
    customer_id = new_customer("acme")
    email = f"{customer_id}@example.com"
    body = {"customer_id": customer_id, "email": email, "name": "Ada", "tenant_id": "acme"}

    first = http.post("/v1/accounts", json=body)
    again = http.post("/v1/accounts", json=body)

    assert first.status_code == 201, first.text
    assert again.status_code == 200
    assert again.json() == first.json()
    assert first.json()["tenant_id"] == "acme"
    assert len(stripe.v1.customers.list(params={"email": email}).data) == 1
    assert _events(db, customer_id) == ["payment.account_created"]


def test_account_is_only_for_a_live_customer_and_takes_its_tenant(
    http: httpx.Client, stripe: Any, db: Engine, new_customer: Callable[..., str]
) -> None:
    """The customer service says who the customer is and whose; the body cannot."""
    nobody = str(uuid.uuid4())
    absent = http.post("/v1/accounts", json={"customer_id": nobody, "email": "a@example.com"})
    assert _is_problem(absent, 404)["type"] == "https://paywall.dev/problems/not-found"
    malformed = http.post("/v1/accounts", json={"customer_id": "cus_1", "email": "a@example.com"})
    _is_problem(malformed, 404)

    customer_id = new_customer("acme")
    email = f"{customer_id}@example.com"
    claim = {"customer_id": customer_id, "email": email}
    _is_problem(http.post("/v1/accounts", json={**claim, "tenant_id": "other"}), 404)
    assert stripe.v1.customers.list(params={"email": email}).data == []
    assert _events(db, customer_id) == []
    made = http.post("/v1/accounts", json=claim)
    assert made.status_code == 201, made.text
    assert made.json()["tenant_id"] == "acme"  # the customer's, though the body named none


def test_concurrent_account_creation_makes_one_stripe_customer(
    base_url: str, stripe: Any, db: Engine, new_customer: Callable[..., str]
) -> None:
    customer_id = new_customer()
    email = f"{customer_id}@example.com"
    results: list[httpx.Response] = []

    def create() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            results.append(
                client.post("/v1/accounts", json={"customer_id": customer_id, "email": email})
            )

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(r.status_code for r in results) == [200] * 7 + [201]
    assert len({r.json()["stripe_customer_id"] for r in results}) == 1
    assert len(stripe.v1.customers.list(params={"email": email}).data) == 1
    assert _events(db, customer_id) == ["payment.account_created"]


def test_bad_account_request_is_a_problem(http: httpx.Client) -> None:
    body = _is_problem(http.post("/v1/accounts", json={"customer_id": "x", "email": "no"}), 422)
    assert body["type"] == "https://paywall.dev/problems/validation"


def test_payment_method_attach(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any
) -> None:
    unknown = http.post(
        f"/v1/accounts/{uuid.uuid4()}/payment-methods", json={"payment_method_id": "pm_x1"}
    )
    _is_problem(unknown, 404)

    customer_id = accounts(card=None)
    bad = http.post(
        f"/v1/accounts/{customer_id}/payment-methods",
        json={"payment_method_id": "pm_doesnotexist"},
    )
    assert _is_problem(bad, 422)["detail"]

    pm = _card(stripe)
    ok = http.post(f"/v1/accounts/{customer_id}/payment-methods", json={"payment_method_id": pm})
    assert ok.status_code == 200, ok.text
    assert ok.json()["default_payment_method"] == pm
    stripe_customer = stripe.v1.customers.retrieve(ok.json()["stripe_customer_id"])
    assert stripe_customer.to_dict()["invoice_settings"]["default_payment_method"] == pm
    # What the customer is shown: the card, never more than its last four digits.
    shown = http.get(f"/v1/accounts/{customer_id}").json()
    assert shown["card"] == ok.json()["card"]
    assert (
        shown["card"]["last4"] == stripe.v1.payment_methods.retrieve(pm).to_dict()["card"]["last4"]
    )


def test_an_account_is_made_with_its_card_in_one_call_and_a_retry_attaches_nothing_again(
    http: httpx.Client, stripe: Any, new_customer: Callable[..., str]
) -> None:
    customer_id = new_customer("acme")
    body = {"customer_id": customer_id, "email": f"{customer_id}@example.com"}
    # A card Stripe refuses: the account is made, no card is recorded, and the answer says why.
    refused = http.post("/v1/accounts", json={**body, "payment_method_id": "pm_doesnotexist"})
    assert _is_problem(refused, 422)["detail"]
    assert http.get(f"/v1/accounts/{customer_id}").json()["default_payment_method"] is None

    pm = _card(stripe)
    made = http.post("/v1/accounts", json={**body, "payment_method_id": pm})
    assert made.status_code == 200, made.text  # the account was there; the card is new
    assert made.json()["default_payment_method"] == pm and made.json()["card"]["last4"] == "4242"
    stripe_id = made.json()["stripe_customer_id"]
    stripe_customer = stripe.v1.customers.retrieve(stripe_id).to_dict()
    assert stripe_customer["invoice_settings"]["default_payment_method"] == pm

    # A retry finds the card already the default and asks Stripe nothing: detached behind
    # our back, the card would be attached again by a retry that called Stripe.
    stripe.v1.payment_methods.detach(pm)
    again = http.post("/v1/accounts", json={**body, "payment_method_id": pm})
    assert again.status_code == 200 and again.json() == made.json()
    assert stripe.v1.payment_methods.retrieve(pm).to_dict().get("customer") is None
    # Another tenant's customer is not found, card or not.
    other = http.post(
        "/v1/accounts", json={**body, "payment_method_id": pm}, headers={"x-test-tenant": "other"}
    )
    _is_problem(other, 404)


def test_customer_may_only_touch_its_own_or_its_tenants_account(
    accounts: Callable[..., str], http: httpx.Client
) -> None:
    customer_id = accounts(tenant_id="acme")
    paid = _pay(http, customer_id)
    assert paid.status_code == 201
    path = f"/v1/payments/{paid.json()['id']}"

    assert http.get(path, headers={"x-test-customer": customer_id}).status_code == 200
    assert http.get(path, headers={"x-test-tenant": "acme"}).status_code == 200
    # Not yours answers as absent does: 404, never a 403 that tells the payment exists.
    _is_problem(http.get(path, headers={"x-test-customer": "someone-else"}), 404)
    _is_problem(http.get(path, headers={"x-test-tenant": "other"}), 404)
    other = http.post(
        "/v1/payments",
        json={"customer_id": customer_id, "amount": 100, "currency": "usd"},
        headers={"Idempotency-Key": str(uuid.uuid4()), "x-test-customer": "someone-else"},
    )
    _is_problem(other, 404)


def test_no_token_is_401(settings: Settings) -> None:
    app = create_app("payment", ROUTERS, READY_CHECKS)
    app.dependency_overrides[deps.current_settings] = lambda: settings
    client = TestClient(app)
    response = client.get(f"/v1/payments/{uuid.uuid4()}")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


# -- payments ----------------------------------------------------------------------------


def test_payment_succeeds(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any, db: Engine
) -> None:
    customer_id = accounts()

    response = _pay(http, customer_id, amount=1999, description="Pro", metadata={"plan": "pro"})

    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["status"] == "succeeded"
    assert payment["currency"] == "usd"
    assert payment["metadata"] == {"plan": "pro"}
    assert payment["stripe_payment_intent_id"].startswith("pi_")
    assert _intents_for(stripe, payment["id"]) == [payment["stripe_payment_intent_id"]]
    assert _events(db, payment["id"]) == ["payment.succeeded"]
    fetched = http.get(f"/v1/payments/{payment['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["status"] == "succeeded"


def test_payment_needs_an_idempotency_key(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any
) -> None:
    customer_id = accounts()
    response = http.post(
        "/v1/payments", json={"customer_id": customer_id, "amount": 100, "currency": "usd"}
    )
    body = _is_problem(response, 400)
    assert body["type"] == "https://paywall.dev/problems/idempotency-key-required"


def test_payment_input_errors(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any
) -> None:
    customer_id = accounts()
    _is_problem(_pay(http, customer_id, amount=0), 422)
    _is_problem(_pay(http, customer_id, currency="dollars"), 422)
    _is_problem(_pay(http, str(uuid.uuid4())), 404)
    without_card = accounts(card=None)
    body = _is_problem(_pay(http, without_card), 422)
    assert body["type"] == "https://paywall.dev/problems/no-payment-method"


def test_replay_returns_the_first_answer_and_charges_once(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any, db: Engine
) -> None:
    customer_id = accounts()
    key = str(uuid.uuid4())

    first = _pay(http, customer_id, key=key, amount=500)
    again = _pay(http, customer_id, key=key, amount=500)
    other = _pay(http, customer_id, key=key, amount=501)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(_intents_for(stripe, first.json()["id"])) == 1
    assert _events(db, first.json()["id"]) == ["payment.succeeded"]
    assert _is_problem(other, 422)["type"] == "https://paywall.dev/problems/idempotency-key-reused"


def test_declined_card(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any, db: Engine
) -> None:
    customer_id = accounts(card=DECLINED_ON_CHARGE)
    key = str(uuid.uuid4())

    response = _pay(http, customer_id, key=key)

    body = _is_problem(response, 402)
    assert body["type"] == "https://paywall.dev/problems/payment-declined"
    assert body["decline_code"] == "card_declined"
    payment_id = body["payment_id"]
    with db.connect() as conn:
        row = repo.get_payment(conn, uuid.UUID(payment_id))
    assert row is not None
    assert row["status"] == "failed"
    assert row["failure_code"] == "card_declined"
    assert _events(db, payment_id) == ["payment.failed"]
    replay = _pay(http, customer_id, key=key)
    assert replay.status_code == 402
    assert replay.json() == body
    assert len(_intents_for(stripe, payment_id)) == 1


def test_retry_after_a_crash_finds_the_payment_intent(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any, db: Engine
) -> None:
    """A first attempt died after Stripe charged but before we recorded it."""
    customer_id = accounts()
    key = str(uuid.uuid4())
    request = PaymentCreate(customer_id=customer_id, amount=700, currency="usd")
    with db.begin() as conn:
        account = repo.get_account(conn, customer_id)
        assert account is not None
        row, _ = repo.claim_payment(
            conn,
            customer_id=customer_id,
            idempotency_key=idempotency.scoped(INTERNAL, key),
            fingerprint=idempotency.fingerprint(request.fingerprint_fields()),
            amount=700,
            currency="usd",
            description=None,
            metadata={},
        )
    payment_id = str(row["id"])
    charged = stripe.v1.payment_intents.create(
        params={
            "amount": 700,
            "currency": "usd",
            "customer": account["stripe_customer_id"],
            "payment_method": account["default_payment_method"],
            "payment_method_types": ["card"],
            "confirm": True,
            "off_session": True,
            "metadata": {"payment_id": payment_id},
        }
    )

    response = _pay(http, customer_id, key=key, amount=700)

    assert response.status_code == 201, response.text
    assert response.json()["stripe_payment_intent_id"] == charged.id
    assert _intents_for(stripe, payment_id) == [charged.id]
    assert _events(db, payment_id) == ["payment.succeeded"]


def test_stripe_outage_is_503_and_the_retry_charges_once(
    accounts: Callable[..., str], http: httpx.Client, api: Api, stripe: Any, db: Engine
) -> None:
    customer_id = accounts()
    key = str(uuid.uuid4())
    down = api.settings.model_copy(update={"stripe_api_base": f"http://{LOOPBACK}:{free_port()}"})
    app = _app(down)
    with TestClient(app) as client:
        outage = client.post(
            "/v1/payments",
            json={"customer_id": customer_id, "amount": 900, "currency": "usd"},
            headers={"Idempotency-Key": key},
        )
    assert outage.status_code == 503, outage.text
    assert outage.json()["type"] == "https://paywall.dev/problems/processor-unavailable"
    with db.connect() as conn:
        pending = repo.get_payment_by_key(conn, idempotency.scoped(INTERNAL, key))
    assert pending is not None
    assert pending["status"] == "pending"

    retry = _pay(http, customer_id, key=key, amount=900)

    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == str(pending["id"])
    assert len(_intents_for(stripe, retry.json()["id"])) == 1
    assert _events(db, retry.json()["id"]) == ["payment.succeeded"]


# -- refunds -----------------------------------------------------------------------------


def test_refunds(accounts: Callable[..., str], http: httpx.Client, stripe: Any, db: Engine) -> None:
    customer_id = accounts()
    payment = _pay(http, customer_id, amount=1000).json()
    path = f"/v1/payments/{payment['id']}/refunds"
    key = str(uuid.uuid4())

    _is_problem(http.post(path, json={"amount": 300}), 400)
    partial = http.post(path, json={"amount": 300}, headers={"Idempotency-Key": key})
    replay = http.post(path, json={"amount": 300}, headers={"Idempotency-Key": key})
    other_body = http.post(path, json={"amount": 301}, headers={"Idempotency-Key": key})
    too_much = http.post(path, json={"amount": 701}, headers={"Idempotency-Key": "k" + key})
    rest = http.post(path, headers={"Idempotency-Key": "rest" + key})
    nothing_left = http.post(path, json={"amount": 1}, headers={"Idempotency-Key": "x" + key})

    assert partial.status_code == 201, partial.text
    assert partial.json()["payment_status"] == "partially_refunded"
    assert partial.json()["stripe_refund_id"].startswith("re_")
    assert replay.json() == partial.json()
    _is_problem(other_body, 422)
    assert _is_problem(too_much, 422)["refundable"] == 700
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == 700
    assert rest.json()["payment_status"] == "refunded"
    _is_problem(nothing_left, 422)
    final = http.get(f"/v1/payments/{payment['id']}").json()
    assert (final["status"], final["amount_refunded"]) == ("refunded", 1000)
    refunds = stripe.v1.refunds.list(params={"payment_intent": payment["stripe_payment_intent_id"]})
    assert sorted(r.amount for r in refunds.data) == [300, 700]
    assert _events(db, payment["id"]) == [
        "payment.succeeded",
        "payment.refunded",
        "payment.refunded",
    ]


def test_failed_payment_is_not_refundable(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any
) -> None:
    customer_id = accounts(card=DECLINED_ON_CHARGE)
    payment_id = _pay(http, customer_id).json()["payment_id"]
    response = http.post(
        f"/v1/payments/{payment_id}/refunds", headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    _is_problem(response, 422)
    _is_problem(
        http.post(f"/v1/payments/{uuid.uuid4()}/refunds", headers={"Idempotency-Key": "k"}), 404
    )


# -- webhooks ----------------------------------------------------------------------------


def _sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _event(event_type: str, obj: dict[str, Any]) -> bytes:
    event = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def _deliver(http: httpx.Client, payload: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return http.post("/webhooks/stripe", content=payload, headers=headers)


def _recorded(db: Engine, payload: bytes) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM payment.webhook_events WHERE event_id = :e"),
                {"e": json.loads(payload)["id"]},
            ).scalar_one()
        )


@pytest.fixture(scope="module")
def secret(settings: Settings) -> str:
    assert settings.stripe_webhook_secret is not None
    return settings.stripe_webhook_secret.get_secret_value()


def test_webhook_rejects_bad_signatures(http: httpx.Client, db: Engine, secret: str) -> None:
    payload = _event("payment_intent.succeeded", {"id": "pi_nope", "object": "payment_intent"})

    _is_problem(_deliver(http, payload, None), 400)
    _is_problem(_deliver(http, payload, _sign(payload, "whsec_forged")), 400)
    _is_problem(_deliver(http, payload, _sign(payload, secret, int(time.time()) - 600)), 400)
    tampered = payload.replace(b"pi_nope", b"pi_evil")
    _is_problem(_deliver(http, tampered, _sign(payload, secret)), 400)

    assert _recorded(db, payload) == 0


def test_webhook_is_handled_once_and_never_undoes_success(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any, db: Engine, secret: str
) -> None:
    customer_id = accounts()
    payment = _pay(http, customer_id).json()
    intent = {
        "id": payment["stripe_payment_intent_id"],
        "object": "payment_intent",
        "metadata": {"payment_id": payment["id"]},
        "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
    }
    late_failure = _event("payment_intent.payment_failed", intent)

    first = _deliver(http, late_failure, _sign(late_failure, secret))
    again = _deliver(http, late_failure, _sign(late_failure, secret))

    assert first.status_code == again.status_code == 202
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert _recorded(db, late_failure) == 1
    assert http.get(f"/v1/payments/{payment['id']}").json()["status"] == "succeeded"
    assert _events(db, payment["id"]) == ["payment.succeeded"]


def test_webhook_settles_a_payment_whose_request_died(
    accounts: Callable[..., str], http: httpx.Client, stripe: Any, db: Engine, secret: str
) -> None:
    customer_id = accounts()
    with db.begin() as conn:
        row, _ = repo.claim_payment(
            conn,
            customer_id=customer_id,
            idempotency_key=str(uuid.uuid4()),
            fingerprint="f",
            amount=400,
            currency="usd",
            description=None,
            metadata={},
        )
    payment_id = str(row["id"])
    intent = {"id": f"pi_{uuid.uuid4().hex[:14]}", "metadata": {"payment_id": payment_id}}
    payload = _event("payment_intent.succeeded", intent)
    refunded = _event(
        "charge.refunded",
        {"id": "ch_x", "object": "charge", "payment_intent": intent["id"], "amount_refunded": 100},
    )

    assert _deliver(http, payload, _sign(payload, secret)).status_code == 202
    assert _deliver(http, refunded, _sign(refunded, secret)).status_code == 202

    settled = http.get(f"/v1/payments/{payment_id}").json()
    assert settled["status"] == "partially_refunded"
    assert settled["amount_refunded"] == 100
    assert settled["stripe_payment_intent_id"] == intent["id"]
    assert _events(db, payment_id) == ["payment.succeeded"]


def test_unknown_webhook_event_is_recorded_and_ignored(
    http: httpx.Client, db: Engine, secret: str
) -> None:
    payload = _event("customer.created", {"id": "cus_x", "object": "customer"})
    response = _deliver(http, payload, _sign(payload, secret))
    assert response.status_code == 202
    with db.connect() as conn:
        processed: object = conn.execute(
            text("SELECT processed_at FROM payment.webhook_events WHERE event_id = :e"),
            {"e": json.loads(payload)["id"]},
        ).scalar_one()
    assert processed is not None


def test_localstripe_delivers_signed_webhooks(
    accounts: Callable[..., str],
    http: httpx.Client,
    base_url: str,
    settings: Settings,
    stripe: Any,
    db: Engine,
    secret: str,
) -> None:
    config = f"{settings.stripe_api_base}/_config/webhooks/payment-tests"
    registered = httpx.post(
        config,
        json={
            "url": f"{base_url}/webhooks/stripe",
            "secret": secret,
            "events": ["payment_intent.succeeded"],
        },
    )
    assert registered.status_code == 200, registered.text
    try:
        customer_id = accounts()
        payment = _pay(http, customer_id).json()
        deadline = time.monotonic() + 15
        found = 0
        while not found and time.monotonic() < deadline:
            time.sleep(0.2)
            with db.connect() as conn:
                found = conn.execute(
                    text(
                        "SELECT count(*) FROM payment.webhook_events WHERE type = :t "
                        "AND payload -> 'data' -> 'object' ->> 'id' = :pi "
                        "AND processed_at IS NOT NULL"
                    ),
                    {"t": "payment_intent.succeeded", "pi": payment["stripe_payment_intent_id"]},
                ).scalar_one()
        assert found == 1
        assert _events(db, payment["id"]) == ["payment.succeeded"]
    finally:
        # localstripe keeps endpoints for its lifetime; point this one at nothing we serve.
        httpx.post(config, json={"url": f"{base_url}/gone", "secret": secret, "events": ["none"]})


# -- real tokens from the auth service ---------------------------------------------------


def test_real_tokens_from_auth(
    api: Any, issue_token: Any, stripe: Any, new_customer: Callable[..., str]
) -> None:
    """The combined app as `paywall serve` runs it, with tokens auth actually issued."""
    internal = issue_token("payments:write payments:read internal")
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    own_tenant = issue_token("payments:read", tenant_id=tenant)
    other_tenant = issue_token("payments:read", tenant_id="t-other")

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    with httpx.Client(base_url=api.url, timeout=30) as client:
        customer_id = new_customer(tenant)
        account = {"customer_id": customer_id, "email": "t@example.com", "tenant_id": tenant}
        _is_problem(client.post("/v1/accounts", json=account), 401)
        created = client.post("/v1/accounts", json=account, headers=bearer(internal))
        assert created.status_code == 201, created.text
        attached = client.post(
            f"/v1/accounts/{customer_id}/payment-methods",
            json={"payment_method_id": _card(stripe)},
            headers=bearer(internal),
        )
        assert attached.status_code == 200, attached.text
        body = {"customer_id": customer_id, "amount": 1200, "currency": "eur"}
        read_only = client.post(
            "/v1/payments",
            json=body,
            headers={**bearer(own_tenant), "Idempotency-Key": str(uuid.uuid4())},
        )
        _is_problem(read_only, 403)
        paid = client.post(
            "/v1/payments",
            json=body,
            headers={**bearer(internal), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert paid.status_code == 201, paid.text
        path = f"/v1/payments/{paid.json()['id']}"
        assert client.get(path, headers=bearer(own_tenant)).status_code == 200
        _is_problem(client.get(path, headers=bearer(other_tenant)), 404)
