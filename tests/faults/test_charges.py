"""Signups and charges under faults: answers lost, a slow Stripe, Postgres killed mid-saga.

The API runs as its own process (`served_api`), talking to the Stripe stand-in through a
fault-injecting proxy. Every test counts what matters where it lives: PaymentIntents in
the Stripe stand-in, payments, subscriptions and registration keys in Postgres.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from paywall import clients
from paywall.db import engine
from paywall.settings import Settings
from paywall.stack.local import LocalStack
from tests.conftest import client_token, register_client
from tests.faults.conftest import ServedApi
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.integration

GOOD_CARD = "4242424242424242"
CHARGES = "/v1/payment_intents"
PARTNER_SCOPES = "registrations:write customers:read subscriptions:read payments:read"


@pytest.fixture
def proxy(settings: Settings) -> Iterator[FaultProxy]:
    assert settings.stripe_api_base
    with FaultProxy(settings.stripe_api_base) as running:
        yield running


def token(served: ServedApi, settings: Settings, scopes: str, tenant: str | None) -> str:
    """A client-credentials token from the served API's own auth (its own issuer)."""
    return client_token(served.url, *register_client(settings, scopes, tenant, "fault"), scopes)


def signup_body(settings: Settings, **overrides: Any) -> dict[str, Any]:
    card = clients.stripe_client(settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": GOOD_CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return {
        "email": f"{uuid.uuid4().hex[:12]}@example.com",
        "password": "correct horse battery",
        "name": "Ada Lovelace",
        "plan_id": "pro-monthly",
        "payment_method_id": str(card.id),
        **overrides,
    }


def lose_stripe_answers(proxy: FaultProxy) -> None:
    proxy.rule("POST", CHARGES, drop=1000)
    proxy.rule("GET", CHARGES, drop=1000)


def test_a_lost_stripe_answer_is_found_again_by_the_sagas_own_retry(
    served_api: Callable[..., ServedApi], proxy: FaultProxy, settings: Settings
) -> None:
    served = served_api(STRIPE_API_BASE=proxy.url)
    bearer = token(served, settings, PARTNER_SCOPES, f"t-{uuid.uuid4().hex[:8]}")
    body = signup_body(settings)
    # The charge's answer (and its stripe-library retries') is lost; the payment service
    # answers 503, the saga retries with the same key, and the retry asks Stripe first.
    lost = proxy.rule("POST", CHARGES, drop=3)

    resp = register(served, bearer, body, str(uuid.uuid4()))

    assert lost.matched == 3 and proxy.dropped == 3
    assert resp.status_code == 201, resp.text
    charged_once(settings, body["email"])


def register(served: ServedApi, bearer: str, body: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(
        f"{served.url}/v1/registrations",
        json=body,
        headers={"Authorization": f"Bearer {bearer}", "Idempotency-Key": key},
        timeout=120,
    )


def rows(settings: Settings, sql: str, *args: object) -> list[tuple[Any, ...]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(sql, args).fetchall()


def money_for(settings: Settings, email: str) -> dict[str, Any]:
    """Everything a signup for `email` left, counted where each thing lives."""
    [(customer_id,)] = rows(settings, "SELECT id FROM customer.customers WHERE email = %s", email)
    [(stripe_customer,)] = rows(
        settings,
        "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s",
        str(customer_id),
    )
    intents = clients.stripe_client(settings).v1.payment_intents.list(params={"limit": 100})
    charged = [
        pi.id
        for pi in intents.auto_paging_iter()
        if pi.customer == stripe_customer and pi.status == "succeeded"
    ]
    return {
        "stripe_charges": len(charged),
        "payments": rows(
            settings,
            "SELECT status, amount FROM payment.payments WHERE customer_id = %s",
            str(customer_id),
        ),
        "subscriptions": rows(
            settings,
            "SELECT status FROM subscription.subscriptions WHERE customer_id = %s",
            customer_id,
        ),
        "keys": rows(
            settings,
            "SELECT status, response_status FROM registration.registrations WHERE email = %s",
            email,
        ),
    }


def charged_once(settings: Settings, email: str) -> None:
    money = money_for(settings, email)
    assert money["stripe_charges"] == 1, money
    assert money["payments"] == [("succeeded", 2900)], money
    assert money["subscriptions"] == [("active",)], money
    assert money["keys"] == [("completed", 201)], money


def test_a_lost_stripe_answer_then_a_retry_charges_once(
    served_api: Callable[..., ServedApi], proxy: FaultProxy, settings: Settings
) -> None:
    served = served_api(STRIPE_API_BASE=proxy.url)
    bearer = token(served, settings, PARTNER_SCOPES, f"t-{uuid.uuid4().hex[:8]}")
    body, key = signup_body(settings), str(uuid.uuid4())
    # Stripe charges, and every answer about PaymentIntents is lost for a while: the
    # charge's, the stripe library's retries', the saga's own retries' and their lookups'.
    lose_stripe_answers(proxy)

    first = register(served, bearer, body, key)

    assert first.status_code == 503, first.text
    assert first.headers["content-type"].startswith("application/problem+json")
    assert first.headers["retry-after"]
    assert proxy.dropped >= 3
    assert money_for(settings, body["email"])["stripe_charges"] == 1  # the money did move
    proxy.rules.clear()

    again = register(served, bearer, body, key)

    assert again.status_code == 201, again.text
    assert again.json()["subscription_status"] == "active"
    charged_once(settings, body["email"])
    replay = register(served, bearer, body, key)
    assert replay.json() == again.json() and replay.headers["idempotent-replayed"] == "true"


def test_a_charge_slower_than_the_service_timeout_completes_the_signup_once(
    served_api: Callable[..., ServedApi], proxy: FaultProxy, settings: Settings
) -> None:
    # The saga's call to the payment service times out after 1 s and is retried while the
    # first attempt still holds the payment: "in progress" must be waited for, not final.
    served = served_api(STRIPE_API_BASE=proxy.url, SERVICE_TIMEOUT_SECONDS="1")
    bearer = token(served, settings, PARTNER_SCOPES, f"t-{uuid.uuid4().hex[:8]}")
    body = signup_body(settings)
    slow = proxy.rule("POST", CHARGES, delay=3.0, times=1)

    resp = register(served, bearer, body, str(uuid.uuid4()))

    assert slow.matched == 1
    assert resp.status_code == 201, resp.text
    assert resp.json()["subscription_status"] == "active"
    charged_once(settings, body["email"])


def test_postgres_killed_mid_saga_leaves_no_stuck_key_and_the_retry_charges_once(
    served_api: Callable[..., ServedApi],
    proxy: FaultProxy,
    settings: Settings,
    local_stack: LocalStack,
) -> None:
    served = served_api(STRIPE_API_BASE=proxy.url)
    bearer = token(served, settings, PARTNER_SCOPES, f"t-{uuid.uuid4().hex[:8]}")
    body, key = signup_body(settings), str(uuid.uuid4())
    charging = proxy.rule("POST", CHARGES, delay=5.0, times=1)
    answers: list[httpx.Response] = []
    signup = threading.Thread(target=lambda: answers.append(register(served, bearer, body, key)))

    signup.start()
    try:
        assert charging.forwarded.wait(60), "the first charge never reached Stripe"
        local_stack.stop("postgres")  # Stripe has charged; nothing can be recorded now
        signup.join(120)
    finally:
        local_stack.start("postgres")

    assert answers and answers[0].status_code == 503, answers and answers[0].text
    [(status, step)] = rows(
        settings,
        "SELECT status, step FROM registration.registrations WHERE email = %s",
        body["email"],
    )
    # Unfinished and resumable, not stuck behind a dead request; charged at Stripe meanwhile.
    assert (status, step) == ("in_progress", "charging")

    retry = register(served, bearer, body, key)

    assert retry.status_code == 201, retry.text
    charged_once(settings, body["email"])


def test_the_sweep_finishes_a_signup_its_client_abandoned(
    served_api: Callable[..., ServedApi], proxy: FaultProxy, settings: Settings
) -> None:
    served = served_api(STRIPE_API_BASE=proxy.url)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    bearer = token(served, settings, PARTNER_SCOPES, tenant)
    operator = token(served, settings, "operations internal payments:read", None)
    charged, early = signup_body(settings), signup_body(settings)
    charged_key, early_key = str(uuid.uuid4()), str(uuid.uuid4())
    lose_stripe_answers(proxy)
    assert register(served, bearer, charged, charged_key).status_code == 503
    proxy.rules.clear()
    # A second signup stopped before its login: no money can have moved.
    proxy.rule("POST", "/v1/customers", drop=100)
    assert register(served, bearer, early, early_key).status_code == 503
    proxy.rules.clear()

    sweep = httpx.post(
        f"{served.url}/v1/operations/signup-recovery",
        params={"older_than_seconds": 0},
        headers={"Authorization": f"Bearer {operator}"},
        timeout=120,
    )

    assert sweep.status_code == 200, sweep.text
    assert sweep.json()["completed"] >= 1 and sweep.json()["released"] >= 1
    charged_once(settings, charged["email"])
    assert rows(
        settings, "SELECT count(*) FROM registration.registrations WHERE email = %s", early["email"]
    ) == [(0,)]
    # The client comes back later: the answer the sweep stored, not a second charge.
    replay = register(served, bearer, charged, charged_key)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    charged_once(settings, charged["email"])
    assert register(served, bearer, early, early_key).status_code == 201
    charged_once(settings, early["email"])


def test_the_sweep_settles_a_payment_left_pending_by_asking_stripe(
    served_api: Callable[..., ServedApi], proxy: FaultProxy, settings: Settings
) -> None:
    served = served_api(STRIPE_API_BASE=proxy.url)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    bearer = token(served, settings, PARTNER_SCOPES, tenant)
    body = signup_body(settings, trial=True)
    reg = register(served, bearer, body, str(uuid.uuid4())).json()
    customer_id = reg["customer_id"]
    payer = token(served, settings, "payments:write payments:read", tenant)
    operator = token(served, settings, "operations internal", None)
    lose_stripe_answers(proxy)
    pay = httpx.post(
        f"{served.url}/v1/payments",
        json={"customer_id": customer_id, "amount": 1234, "currency": "usd"},
        headers={"Authorization": f"Bearer {payer}", "Idempotency-Key": "once"},
        timeout=60,
    )
    assert pay.status_code == 503, pay.text
    proxy.rules.clear()
    assert rows(
        settings, "SELECT status FROM payment.payments WHERE customer_id = %s", customer_id
    ) == [("pending",)]

    sweep = httpx.post(
        f"{served.url}/v1/operations/payment-recovery",
        params={"older_than_seconds": 0},
        headers={"Authorization": f"Bearer {operator}"},
        timeout=120,
    )

    assert sweep.status_code == 200, sweep.text
    assert sweep.json()["settled"] >= 1
    assert rows(
        settings, "SELECT status FROM payment.payments WHERE customer_id = %s", customer_id
    ) == [("succeeded",)]
    assert money_for(settings, body["email"])["stripe_charges"] == 1
    # The partner's retry with its key gets the settled payment, not a second charge.
    again = httpx.post(
        f"{served.url}/v1/payments",
        json={"customer_id": customer_id, "amount": 1234, "currency": "usd"},
        headers={"Authorization": f"Bearer {payer}", "Idempotency-Key": "once"},
        timeout=60,
    )
    assert again.status_code == 201 and again.json()["status"] == "succeeded"
    assert money_for(settings, body["email"])["stripe_charges"] == 1


def test_reconciliation_finds_money_stripe_took_that_we_did_not_record(
    served_api: Callable[..., ServedApi], settings: Settings
) -> None:
    served = served_api()
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    bearer = token(served, settings, PARTNER_SCOPES, tenant)
    operator = token(served, settings, "operations internal", None)
    body = signup_body(settings)
    reg = register(served, bearer, body, str(uuid.uuid4())).json()
    [(stripe_customer, method)] = rows(
        settings,
        "SELECT stripe_customer_id, default_payment_method FROM payment.accounts "
        "WHERE customer_id = %s",
        reg["customer_id"],
    )
    # Money taken at Stripe behind our back (the dashboard, a bug): no payment row.
    stray = clients.stripe_client(settings).v1.payment_intents.create(
        params={
            "amount": 777,
            "currency": "eur",
            "customer": stripe_customer,
            "payment_method": method,
            "payment_method_types": ["card"],
            "confirm": True,
            "off_session": True,
        }
    )
    today = datetime.now(UTC).date().isoformat()

    report = httpx.get(
        f"{served.url}/v1/operations/reconciliation",
        params={"date": today},
        headers={"Authorization": f"Bearer {operator}"},
        timeout=120,
    )

    assert report.status_code == 200, report.text
    found = {m["payment_intent_id"]: m for m in report.json()["mismatches"]}
    assert found[stray.id]["problem"] == "charged_not_recorded"
    assert found[stray.id]["amount"] == 777
    assert report.json()["matched"] is False
    clean = reg["payment"]["id"]
    assert all(m["payment_id"] != clean for m in report.json()["mismatches"])
    eur = next(t for t in report.json()["totals"] if t["currency"] == "eur")
    assert eur["stripe_amount"] - eur["recorded_amount"] >= 777


def test_the_operators_see_recovery_and_reconciliation_in_dagster(
    api: Any, issue_token: Callable[..., str], settings: Settings
) -> None:
    from dagster import materialize
    from pydantic import SecretStr

    from assets.payments.assets import payment_recovery, stripe_reconciliation
    from paywall.service_client import SERVICE_SCOPES
    from pipelines.resources import build_resources

    client_id, secret = register_client(settings, " ".join(SERVICE_SCOPES["billing"]))
    resources = build_resources(
        api.settings.model_copy(
            update={"billing_client_id": client_id, "billing_client_secret": SecretStr(secret)}
        )
    )
    # Yesterday (the newest complete day) gets a payment recorded as taken that Stripe
    # never saw: the check must fail and list it.
    yesterday = datetime.now(UTC) - timedelta(days=1)
    customer, intent = str(uuid.uuid4()), f"pi_never_{uuid.uuid4().hex[:10]}"
    with engine(settings).begin() as conn:
        conn.execute(
            text("INSERT INTO payment.accounts (customer_id, stripe_customer_id) VALUES (:c, :s)"),
            {"c": customer, "s": f"cus_{uuid.uuid4().hex[:10]}"},
        )
        conn.execute(
            text(
                "INSERT INTO payment.payments (id, customer_id, idempotency_key, "
                "request_fingerprint, amount, currency, status, stripe_payment_intent_id, "
                "created_at, updated_at) VALUES (:id, :c, :k, 'f', 4200, 'usd', 'succeeded', "
                ":pi, :at, :at)"
            ),
            {
                "id": uuid.uuid4(),
                "c": customer,
                "k": uuid.uuid4().hex,
                "pi": intent,
                "at": yesterday,
            },
        )
    day = yesterday.date().isoformat()

    swept = materialize([payment_recovery], resources=resources)
    checked = materialize(
        [stripe_reconciliation], partition_key=day, resources=resources, raise_on_error=False
    )

    assert swept.success
    recovery = swept.asset_materializations_for_node("payment_recovery")[0].metadata
    assert {"signups_examined", "signups_completed", "payments_settled"} <= set(recovery)
    [reconciled] = checked.asset_materializations_for_node("stripe_reconciliation")
    assert reconciled.metadata["day"].value == day
    assert "| usd |" in reconciled.metadata["totals"].value
    assert f"| recorded_not_charged | {intent} |" in reconciled.metadata["mismatched"].value
    [evaluation] = checked.get_asset_check_evaluations()
    assert evaluation.check_name == "stripe_matches_payments"
    assert evaluation.passed is False
