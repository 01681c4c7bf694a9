"""A signup's first-period invoice under faults: billing's answers to the saga are lost.

The API under test runs as its own process (`served_api`) whose registration saga reaches
billing through a fault-injecting proxy (in front of the session's API, which serves
billing on the same database). Billing really makes the invoice; its answer never comes
back, on every attempt of the saga's call, so the signup answers 503 after its charge.
Whoever finishes the signup (the client's retry with its key, or the recovery sweep) asks
billing again and is answered the invoice it made: one first-period invoice, one charge.
Counted where they live: invoices and their events in billing, payments in the payment
service, PaymentIntents at the Stripe stand-in.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from paywall import clients
from paywall.settings import Settings
from tests.conftest import Api, client_token, register_client
from tests.faults.conftest import ServedApi
from tests.faults.proxy import FaultProxy
from tests.integration.test_signup import signup_body

pytestmark = pytest.mark.integration

PARTNER = "registrations:write customers:read subscriptions:read invoices:read"
FIRST_PERIOD = "/v1/first_period_invoices"
# The saga's service client tries a call three times when its answer is lost.
LOST_FOR_ONE_CALL = 3


@pytest.fixture
def served(served_api: Callable[..., ServedApi], api_proxy: FaultProxy, api: Api) -> ServedApi:
    # Tokens come from the session API's auth, so the billing behind the proxy accepts the
    # served registration's token.
    return served_api(
        BILLING_SERVICE_URL=api_proxy.url, AUTH_ISSUER=api.url, AUTH_SERVICE_URL=api.url
    )


def token(api: Api, settings: Settings, scopes: str, tenant: str | None = None) -> str:
    return client_token(api.url, *register_client(settings, scopes, tenant, "fault"), scopes)


def sql(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def register(url: str, bearer: str, body: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/registrations",
        json=body,
        headers={"Authorization": f"Bearer {bearer}", "Idempotency-Key": key},
        timeout=120,
    )


def invoiced_and_charged_once(api: Api, email: str) -> None:
    """One first-period invoice, paid by the one charge, with its three events, for the
    one active subscription of the customer signed up as `email`."""
    settings = api.settings
    [(customer_id,)] = sql(
        settings, "SELECT id::text FROM customer.customers WHERE email = %s", email
    )
    [(sub_id, status)] = sql(
        settings,
        "SELECT id::text, status FROM subscription.subscriptions WHERE customer_id = %s",
        customer_id,
    )
    assert status == "active"
    payments = sql(
        settings,
        "SELECT id::text, status, amount FROM payment.payments WHERE customer_id = %s",
        customer_id,
    )
    [(payment_id, payment_status, amount)] = payments
    assert (payment_status, amount) == ("succeeded", 2900)
    [(invoice_id, kind, invoice_status, paid, paid_by)] = sql(
        settings,
        "SELECT id::text, kind, status, amount_paid, payment_id FROM billing.invoices "
        "WHERE subscription_id = %s",
        sub_id,
    )
    assert (kind, invoice_status, paid, paid_by) == ("first_period", "paid", 2900, payment_id)
    events = sql(
        settings, "SELECT type FROM billing.outbox WHERE aggregate_id = %s ORDER BY seq", invoice_id
    )
    assert [t for (t,) in events] == ["invoice.created", "invoice.finalized", "invoice.paid"]
    [(stripe_customer,)] = sql(
        settings,
        "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s",
        customer_id,
    )
    intents = clients.stripe_client(settings).v1.payment_intents.list(params={"limit": 100})
    assert sum(1 for pi in intents.auto_paging_iter() if pi.customer == stripe_customer) == 1


def lose_billings_answers(
    api: Api, served: ServedApi, api_proxy: FaultProxy
) -> tuple[str, dict[str, Any], str]:
    """A signup charged and invoiced whose every answer from billing was lost: 503."""
    bearer = token(api, api.settings, PARTNER, f"t-{uuid.uuid4().hex[:8]}")
    body, key = signup_body(api), str(uuid.uuid4())
    lost = api_proxy.rule("POST", FIRST_PERIOD, drop=LOST_FOR_ONE_CALL)
    answer = register(served.url, bearer, body, key)
    assert lost.forwarded.is_set() and api_proxy.dropped == LOST_FOR_ONE_CALL
    assert answer.status_code == 503, answer.text
    # Billing made the invoice on the first attempt; its retries were answered it again.
    [(made,)] = sql(
        api.settings,
        "SELECT count(*) FROM billing.invoices i JOIN customer.customers c "
        "ON c.id::text = i.customer_id WHERE c.email = %s",
        body["email"],
    )
    assert made == 1
    api_proxy.rules.clear()
    return bearer, body, key


def test_a_signup_retried_after_billings_answer_was_lost_is_invoiced_once(
    api: Api, served: ServedApi, api_proxy: FaultProxy
) -> None:
    bearer, body, key = lose_billings_answers(api, served, api_proxy)

    retry = register(served.url, bearer, body, key)

    assert retry.status_code == 201, retry.text
    assert retry.json()["subscription_status"] == "active"
    invoiced_and_charged_once(api, body["email"])
    replay = register(served.url, bearer, body, key)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    invoiced_and_charged_once(api, body["email"])


def test_the_sweep_finishes_a_signup_whose_invoice_answer_was_lost(
    api: Api, served: ServedApi, api_proxy: FaultProxy
) -> None:
    bearer, body, key = lose_billings_answers(api, served, api_proxy)
    operator = token(api, api.settings, "operations internal")

    sweep = httpx.post(
        f"{served.url}/v1/operations/signup-recovery",
        params={"older_than_seconds": 0},
        headers={"Authorization": f"Bearer {operator}"},
        timeout=120,
    )

    assert sweep.status_code == 200, sweep.text
    assert sweep.json()["completed"] >= 1
    invoiced_and_charged_once(api, body["email"])
    # The client comes back: the answer the sweep stored.
    replay = register(served.url, bearer, body, key)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    invoiced_and_charged_once(api, body["email"])


def test_a_signup_canceled_while_its_charge_ran_is_refunded_by_a_credit_note(
    api: Api, served_api: Callable[..., ServedApi], settings: Settings
) -> None:
    """The subscription is canceled while Stripe is slow to answer its first charge: the
    charge is invoiced, the activation refused, and all of it refunded once, as a credit
    note on the first-period invoice (so billing's figures and the payment's refund agree)."""
    assert settings.stripe_api_base
    with FaultProxy(settings.stripe_api_base) as stripe:
        served = served_api(STRIPE_API_BASE=stripe.url)
        scopes = f"{PARTNER} subscriptions:write"
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        bearer = client_token(
            served.url, *register_client(settings, scopes, tenant, "fault"), scopes
        )
        body = signup_body(api)
        slow = stripe.rule("POST", "/v1/payment_intents", delay=3.0, times=1)
        answers: list[httpx.Response] = []
        signing_up = threading.Thread(
            target=lambda: answers.append(register(served.url, bearer, body, str(uuid.uuid4())))
        )
        signing_up.start()
        assert slow.forwarded.wait(60), "the charge never reached Stripe"
        [(sub_id,)] = sql(
            settings,
            "SELECT s.id::text FROM subscription.subscriptions s JOIN customer.customers c "
            "ON c.id = s.customer_id WHERE c.email = %s",
            body["email"],
        )
        canceled = httpx.post(
            f"{served.url}/v1/subscriptions/{sub_id}/cancel",
            json={"at_period_end": False},
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=60,
        )
        assert canceled.status_code == 200, canceled.text
        signing_up.join(120)

    [answer] = answers
    assert answer.status_code == 409, answer.text
    [(invoice_id, status, paid, payment_id)] = sql(
        settings,
        "SELECT id::text, status, amount_paid, payment_id FROM billing.invoices "
        "WHERE subscription_id = %s AND kind = 'first_period'",
        sub_id,
    )
    assert (status, paid) == ("paid", 2900)
    notes = sql(
        settings,
        "SELECT amount, settlement, status FROM billing.credit_notes WHERE invoice_id = %s",
        invoice_id,
    )
    assert notes == [(2900, "refund", "issued")]
    [(payment_status, refunded)] = sql(
        settings,
        "SELECT status, amount_refunded FROM payment.payments WHERE id::text = %s",
        payment_id,
    )
    assert (payment_status, refunded) == ("refunded", 2900)
