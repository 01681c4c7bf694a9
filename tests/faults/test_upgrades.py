"""An upgrade's charge under faults: the payment service's answers to billing are lost.

The API under test runs as its own process (`served_api`) whose billing reaches the
payment service through a fault-injecting proxy (in front of the session's API, which
serves payment on the same database and Stripe stand-in). The charge really happens; its
answer never comes back; the client is told 503 and the plan has not changed. Then
whoever comes next finishes it with the same payment Idempotency-Key: the client's retry
with its own key, or, when nobody retries, the recovery sweep. Counted where it lives:
payments in Postgres, PaymentIntents at the Stripe stand-in.
"""

from __future__ import annotations

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
from tests.integration.test_signup import register, signup_body

pytestmark = pytest.mark.integration

PARTNER = "registrations:write customers:read subscriptions:read subscriptions:write"
# Billing's call to the payment service gives up after 3 lost answers, and the
# subscription service asks billing 3 times: every answer of one upgrade request is lost.
LOST_FOR_ONE_REQUEST = 9


@pytest.fixture
def served(served_api: Callable[..., ServedApi], api_proxy: FaultProxy, api: Api) -> ServedApi:
    # Tokens come from the session API's auth, so the payment service behind the proxy
    # accepts the served billing's token.
    return served_api(
        PAYMENT_SERVICE_URL=api_proxy.url, AUTH_ISSUER=api.url, AUTH_SERVICE_URL=api.url
    )


def token(api: Api, settings: Settings, scopes: str, tenant: str | None = None) -> dict[str, str]:
    issued = client_token(api.url, *register_client(settings, scopes, tenant, "fault"), scopes)
    return {"Authorization": f"Bearer {issued}"}


def sql(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def signed_up(api: Api, auth: dict[str, str]) -> dict[str, Any]:
    bearer = auth["Authorization"].removeprefix("Bearer ")
    resp = register(api, bearer, signup_body(api, plan_id="basic-monthly"), str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def upgrade(url: str, auth: dict[str, str], sub_id: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/subscriptions/{sub_id}/change-plan",
        json={"plan_id": "pro-monthly"},
        headers={**auth, "Idempotency-Key": key},
        timeout=120,
    )


def plan_of(settings: Settings, sub_id: str) -> str:
    rows = sql(settings, "SELECT plan_id FROM subscription.subscriptions WHERE id = %s", sub_id)
    return str(rows[0][0])


def upgrade_charges(settings: Settings, sub_id: str) -> list[tuple[Any, ...]]:
    """Payments made for the subscription's proration invoices: (status, amount)."""
    return sql(
        settings,
        "SELECT p.status, p.amount FROM payment.payments p JOIN billing.invoices i "
        "ON p.idempotency_key LIKE '%%|invoice:' || i.id || ':%%' "
        "WHERE i.subscription_id = %s AND i.kind = 'proration'",
        sub_id,
    )


def stripe_intents(api: Api, customer_id: str) -> int:
    stripe_customer = sql(
        api.settings,
        "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s",
        customer_id,
    )[0][0]
    intents = clients.stripe_client(api.settings).v1.payment_intents.list(params={"limit": 100})
    return sum(1 for pi in intents.auto_paging_iter() if pi.customer == stripe_customer)


def charged_but_unanswered(
    api: Api, served: ServedApi, api_proxy: FaultProxy, auth: dict[str, str], key: str
) -> dict[str, Any]:
    """A signup, then an upgrade whose charge happens while every answer to it is lost."""
    reg = signed_up(api, auth)
    lost = api_proxy.rule("POST", "/v1/payments", drop=LOST_FOR_ONE_REQUEST)
    answer = upgrade(served.url, auth, reg["subscription_id"], key)
    assert lost.forwarded.is_set() and api_proxy.dropped == LOST_FOR_ONE_REQUEST
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"]
    assert answer.headers["content-type"].startswith("application/problem+json")
    # Money moved, once (the payment service deduped billing's own retries by key) ...
    charges = upgrade_charges(api.settings, reg["subscription_id"])
    assert [status for status, _ in charges] == ["succeeded"]
    # ... and the plan has not changed yet: nothing is applied on an unknown outcome.
    assert plan_of(api.settings, reg["subscription_id"]) == "basic-monthly"
    return reg


def test_a_lost_payment_answer_is_finished_by_the_clients_retry_with_one_charge(
    api: Api, served: ServedApi, api_proxy: FaultProxy
) -> None:
    auth = token(api, api.settings, PARTNER, f"t-{uuid.uuid4().hex[:8]}")
    key = str(uuid.uuid4())
    reg = charged_but_unanswered(api, served, api_proxy, auth, key)

    retried = upgrade(served.url, auth, reg["subscription_id"], key)
    assert retried.status_code == 200, retried.text
    assert plan_of(api.settings, reg["subscription_id"]) == "pro-monthly"
    [(status, amount)] = upgrade_charges(api.settings, reg["subscription_id"])
    assert status == "succeeded" and amount == retried.json()["proration"]["amount_due"]
    assert stripe_intents(api, reg["customer_id"]) == 2  # the signup's and one upgrade's

    again = upgrade(served.url, auth, reg["subscription_id"], key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert len(upgrade_charges(api.settings, reg["subscription_id"])) == 1


def test_a_lost_payment_answer_nobody_retries_is_finished_by_the_recovery_sweep(
    api: Api, served: ServedApi, api_proxy: FaultProxy
) -> None:
    auth = token(api, api.settings, PARTNER, f"t-{uuid.uuid4().hex[:8]}")
    reg = charged_but_unanswered(api, served, api_proxy, auth, str(uuid.uuid4()))

    operator = token(api, api.settings, "operations internal")
    swept = httpx.post(
        f"{served.url}/v1/operations/invoice-recovery",
        params={"older_than_seconds": 0},
        headers=operator,
        timeout=120,
    )
    assert swept.status_code == 200, swept.text
    assert swept.json()["paid"] >= 1 and swept.json()["applied"] >= 1
    assert plan_of(api.settings, reg["subscription_id"]) == "pro-monthly"
    assert [p[0] for p in upgrade_charges(api.settings, reg["subscription_id"])] == ["succeeded"]
    assert stripe_intents(api, reg["customer_id"]) == 2
    [(status, pending)] = sql(
        api.settings,
        "SELECT status, pending_action FROM billing.invoices WHERE subscription_id = %s "
        "AND kind = 'proration'",
        reg["subscription_id"],
    )
    assert (status, pending) == ("paid", None)

    # A sweep that finds it finished does nothing more.
    again = httpx.post(
        f"{served.url}/v1/operations/invoice-recovery",
        params={"older_than_seconds": 0},
        headers=operator,
        timeout=120,
    )
    assert again.status_code == 200
    assert len(upgrade_charges(api.settings, reg["subscription_id"])) == 1
