"""A dependency goes down under a running API: fast 503s that say so, then recovery.

`paywall serve` runs as its own process (once with JSON logs, once with console logs);
Postgres, Redis and the Kafka broker of the session stack are stopped and started under
it. Every request has an httpx timeout of a few seconds: a guard against a hang, not a
speed check. The API's own log files are then searched for the secrets the requests
carried: a password, a card number, bearer tokens and a client secret.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from paywall import clients
from paywall.db import engine
from paywall.settings import Settings
from paywall.stack.local import LocalStack
from tests.conftest import client_token, register_client
from tests.faults.conftest import ServedApi

pytestmark = pytest.mark.integration

HANG_GUARD = httpx.Timeout(10.0)
PARTNER_SCOPES = (
    "registrations:write customers:read customers:write subscriptions:read payments:read"
)
PASSWORD = f"correct horse {uuid.uuid4().hex}"
CARD = "4242424242424242"


@dataclass
class Partner:
    """A partner of one served API: its client secret, and a token that API issued."""

    api: ServedApi
    client_secret: str
    token: str
    tenant: str

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=HANG_GUARD,
        )


def _partner(api: ServedApi, settings: Settings) -> Partner:
    tenant = "t-outage"
    client_id, secret = register_client(settings, PARTNER_SCOPES, tenant, "outage")
    token = client_token(api.url, client_id, secret, PARTNER_SCOPES)
    partner = Partner(api, f"{client_id}:{secret}", token, tenant)
    with partner.http() as http:  # warm the JWKS cache and the pools, as a live pod has
        assert http.get("/v1/customers").status_code == 200
    return partner


@pytest.fixture
def partners(served_api: Callable[..., ServedApi], settings: Settings) -> Iterator[list[Partner]]:
    apis = [served_api(LOG_FORMAT=fmt) for fmt in ("json", "console")]
    yield [_partner(api, settings) for api in apis]


def _signup(settings: Settings, **extra: Any) -> dict[str, Any]:
    method = clients.stripe_client(settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return {
        "email": f"outage-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "name": "Ada Lovelace",
        "plan_id": "pro-monthly",
        "trial": False,
        "payment_method_id": method.id,
        **extra,
    }


def _unavailable(response: httpx.Response, dependency: str) -> None:
    assert response.status_code == 503, f"{response.request.url}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    problem = response.json()
    assert problem["type"] == "https://paywall.dev/problems/dependency-unavailable"
    assert problem["dependency"] == dependency
    assert "127.0.0.1" not in response.text and "postgresql://" not in response.text


def _count(settings: Settings, query: str, **params: Any) -> int:
    with engine(settings).connect() as conn:
        return int(conn.execute(text(query), params).scalar_one())


def test_postgres_down_is_a_503_then_the_same_requests_succeed(
    local_stack: LocalStack, settings: Settings, partners: list[Partner]
) -> None:
    signups = {p.api.url: (_signup(settings), str(uuid.uuid4())) for p in partners}
    local_stack.stop("postgres")
    try:
        for partner in partners:
            body, key = signups[partner.api.url]
            client_id, secret = partner.client_secret.split(":")
            with partner.http() as http:
                _unavailable(
                    http.post("/v1/registrations", json=body, headers={"Idempotency-Key": key}),
                    "postgres",
                )
                _unavailable(http.get("/v1/customers"), "postgres")
                _unavailable(http.get(f"/v1/payments/{uuid.uuid4()}"), "postgres")
                _unavailable(http.get("/v1/plans"), "postgres")
                form = {"grant_type": "client_credentials", "client_secret": secret}
                _unavailable(
                    httpx.post(
                        f"{partner.api.url}/oauth/token",
                        data={**form, "client_id": client_id},
                        timeout=HANG_GUARD,
                    ),
                    "postgres",
                )
                # A card number where no card belongs: refused before any database.
                extra = http.post(
                    "/v1/registrations",
                    json={**body, "card": {"number": CARD, "cvc": "123"}},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                assert extra.status_code == 422
                assert http.get("/healthz").status_code == 200
                assert http.get("/readyz").status_code == 503
    finally:
        local_stack.start("postgres")

    for partner in partners:
        body, key = signups[partner.api.url]
        with partner.http() as http:
            assert http.get("/readyz").status_code == 200
            assert http.get("/v1/plans").status_code == 200
            assert http.get("/v1/customers").status_code == 200
            assert http.get(f"/v1/payments/{uuid.uuid4()}").status_code == 404
            signup = http.post(
                "/v1/registrations",
                json=body,
                headers={"Idempotency-Key": key},
                timeout=httpx.Timeout(60.0),
            )
            assert signup.status_code == 201, signup.text
        customer_id = signup.json()["customer_id"]
        # One signup, one charge: the refused attempt left nothing behind.
        assert (
            _count(
                settings,
                "SELECT count(*) FROM customer.customers WHERE email = :e",
                e=body["email"],
            )
            == 1
        )
        assert (
            _count(
                settings,
                "SELECT count(*) FROM payment.payments "
                "WHERE customer_id = :c AND status = 'succeeded'",
                c=customer_id,
            )
            == 1
        )
        stripe_customer = _stripe_customer(settings, customer_id)
        intents = clients.stripe_client(settings).v1.payment_intents.list(params={"limit": 100})
        assert sum(1 for pi in intents.auto_paging_iter() if pi.customer == stripe_customer) == 1

    _assert_logs_keep_secrets(partners, "dependency.unavailable")


def test_redis_and_kafka_down_degrade_and_answer(
    local_stack: LocalStack, settings: Settings, partners: list[Partner]
) -> None:
    """Redis is a cache and a broadcast, Kafka sits behind the outbox: requests go on."""
    for part in ("redis", "kafka"):
        local_stack.stop(part)
        try:
            for partner in partners:
                email = f"{part}-{uuid.uuid4().hex[:8]}@example.com"
                with partner.http() as http:
                    created = http.post("/v1/customers", json={"email": email, "name": "Ada"})
                    assert created.status_code == 201, created.text
                    read = http.get(f"/v1/customers/{created.json()['id']}")
                    assert read.status_code == 200, read.text
                    assert http.get("/readyz").status_code == 200
                assert (
                    _count(
                        settings,
                        "SELECT count(*) FROM customer.outbox o JOIN customer.customers c "
                        "ON o.aggregate_id = c.id::text WHERE c.email = :e",
                        e=email,
                    )
                    == 1
                )
        finally:
            local_stack.start(part)
    _assert_logs_keep_secrets(partners, "customer.cache.unavailable")


def _stripe_customer(settings: Settings, customer_id: str) -> str:
    with engine(settings).connect() as conn:
        return str(
            conn.execute(
                text("SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = :c"),
                {"c": customer_id},
            ).scalar_one()
        )


def _assert_logs_keep_secrets(partners: list[Partner], expected_event: str) -> None:
    for partner in partners:
        partner.api.stop()  # flushes its log
        log = partner.api.log_text()
        assert expected_event in log, log[-3000:]
        client_secret = partner.client_secret.split(":")[1]
        for secret in (PASSWORD, CARD, partner.token, client_secret):
            assert secret not in log, f"a secret reached {partner.api.log}"
