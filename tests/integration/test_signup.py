"""The signup saga through the public HTTP API, on real Postgres, Redis and localstripe."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from paywall import clients
from tests.conftest import Api

pytestmark = pytest.mark.integration

GOOD_CARD = "4242424242424242"
DECLINED_ON_ATTACH = "4000000000000002"
DECLINED_ON_CHARGE = "4000000000000341"  # attaches fine, declined when charged


def card(api: Api, number: str) -> str:
    pm = clients.stripe_client(api.settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return str(pm.id)


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client_token(issue_token: Callable[..., str], tenant: str) -> str:
    return issue_token(
        "registrations:write customers:read subscriptions:read subscriptions:write", tenant
    )


def signup_body(api: Api, number: str = GOOD_CARD, **overrides: Any) -> dict[str, Any]:
    body = {
        "email": f"{uuid.uuid4().hex[:10]}@example.com",
        "password": "correct horse battery",
        "name": "Ada Lovelace",
        "phone": "+447700900123",
        "plan_id": "pro-monthly",
        "trial": False,
        "payment_method_id": card(api, number),
    }
    return {**body, **overrides}


def register(api: Api, token: str, body: dict[str, Any], key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{api.url}/v1/registrations", json=body, headers=headers, timeout=60)


def customers_with_email(api: Api, email: str) -> int:
    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM customer.customers WHERE email = %s", (email,)
        ).fetchone()
    return int(row[0]) if row else 0


def outbox_types(api: Api, schema: str, aggregate_id: str) -> list[str]:
    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url) as conn:
        rows = conn.execute(
            f"SELECT type FROM {schema}.outbox WHERE aggregate_id = %s ORDER BY seq",
            (aggregate_id,),
        ).fetchall()
    return [r[0] for r in rows]


def test_full_signup_charges_once_and_activates(api: Api, client_token: str) -> None:
    body = signup_body(api)
    resp = register(api, client_token, body, str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    reg = resp.json()
    assert reg["subscription_status"] == "active"
    assert reg["payment"]["status"] == "succeeded"
    assert reg["payment"]["amount"] == 2900

    # The client sees its tenant's new customer and subscription through the API.
    auth = {"Authorization": f"Bearer {client_token}"}
    customer = httpx.get(f"{api.url}/v1/customers/{reg['customer_id']}", headers=auth)
    assert customer.status_code == 200
    assert customer.json()["email"] == body["email"]
    sub = httpx.get(f"{api.url}/v1/subscriptions/{reg['subscription_id']}", headers=auth)
    assert sub.json()["status"] == "active"

    assert outbox_types(api, "registration", reg["registration_id"]) == ["registration.completed"]
    assert outbox_types(api, "subscription", reg["subscription_id"]) == [
        "subscription.created",
        "subscription.activated",
    ]


def test_trial_signup_charges_nothing(api: Api, client_token: str) -> None:
    resp = register(api, client_token, signup_body(api, trial=True), str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    assert resp.json()["subscription_status"] == "trialing"
    assert resp.json()["payment"] is None


@pytest.mark.parametrize("declined", [DECLINED_ON_ATTACH, DECLINED_ON_CHARGE])
def test_declined_card_is_402_leaves_nothing_active_and_can_be_retried(
    api: Api, client_token: str, declined: str
) -> None:
    body = signup_body(api, declined)
    declined = register(api, client_token, body, str(uuid.uuid4()))
    assert declined.status_code == 402, declined.text
    assert declined.headers["content-type"].startswith("application/problem+json")
    assert declined.json()["type"].endswith("/payment-declined")

    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url) as conn:
        live = conn.execute(
            "SELECT count(*) FROM subscription.subscriptions s JOIN customer.customers c "
            "ON c.id = s.customer_id WHERE c.email = %s AND s.status <> 'canceled'",
            (body["email"],),
        ).fetchone()
    assert live == (0,)

    retry = register(
        api, client_token, {**body, "payment_method_id": card(api, GOOD_CARD)}, str(uuid.uuid4())
    )
    assert retry.status_code == 201, retry.text
    assert retry.json()["subscription_status"] == "active"
    assert customers_with_email(api, body["email"]) == 1


def test_replay_returns_the_first_response(api: Api, client_token: str) -> None:
    body, key = signup_body(api), str(uuid.uuid4())
    first = register(api, client_token, body, key)
    again = register(api, client_token, body, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert customers_with_email(api, body["email"]) == 1


def test_same_key_other_body_is_422_and_changes_nothing(api: Api, client_token: str) -> None:
    body, key = signup_body(api), str(uuid.uuid4())
    assert register(api, client_token, body, key).status_code == 201
    other = register(api, client_token, {**body, "plan_id": "basic-monthly"}, key)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")


def test_concurrent_duplicates_make_one_customer_and_one_charge(
    api: Api, client_token: str
) -> None:
    body, key = signup_body(api), str(uuid.uuid4())

    def until_answered(_: int) -> httpx.Response:
        # A duplicate of a request still running gets 409 at once; the client retries.
        while (answer := register(api, client_token, body, key)).status_code == 409:
            assert answer.json()["type"].endswith("/idempotency-in-progress"), answer.text
            time.sleep(float(answer.headers["retry-after"]) / 10)
        return answer

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(until_answered, range(4)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["registration_id"] for a in answers}) == 1
    assert customers_with_email(api, body["email"]) == 1
    stripe = clients.stripe_client(api.settings)
    cus = answers[0].json()["customer_id"]
    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url) as conn:
        row = conn.execute(
            "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s", (cus,)
        ).fetchone()
    assert row is not None
    # localstripe cannot filter PaymentIntents by customer: walk them all.
    intents = stripe.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    assert sum(1 for pi in intents if pi.customer == row[0]) == 1


def test_missing_idempotency_key_is_400(api: Api, client_token: str) -> None:
    resp = register(api, client_token, signup_body(api), None)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_unknown_plan_is_422_and_creates_nothing(api: Api, client_token: str) -> None:
    body = signup_body(api, plan_id="no-such-plan")
    resp = register(api, client_token, body, str(uuid.uuid4()))
    assert resp.status_code == 422
    assert customers_with_email(api, body["email"]) == 0


def test_another_tenant_cannot_see_the_customer(
    api: Api, client_token: str, issue_token: Callable[..., str]
) -> None:
    reg = register(api, client_token, signup_body(api), str(uuid.uuid4())).json()
    intruder = issue_token("customers:read subscriptions:read", "another-tenant")
    auth = {"Authorization": f"Bearer {intruder}"}
    assert (
        httpx.get(f"{api.url}/v1/customers/{reg['customer_id']}", headers=auth).status_code == 404
    )
    sub = httpx.get(f"{api.url}/v1/subscriptions/{reg['subscription_id']}", headers=auth)
    assert sub.status_code == 404


def test_no_token_is_401_problem(api: Api) -> None:
    resp = httpx.post(f"{api.url}/v1/registrations", json={})
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")


def end_user_token(
    api: Api,
    tenant: str,
    email: str,
    password: str,
    scope: str = "openid customers:read subscriptions:read invoices:read",
) -> str:
    """What the tenant's web app does after signup: authorization code + PKCE with authlib."""
    import re
    from html import unescape

    from authlib.integrations.httpx_client import OAuth2Client

    from paywall.db import engine
    from transactional.auth.clients import USER_SCOPES, create_client

    back = "https://app.example.com/callback"  # the tenant's own web app

    # Users log in through their tenant's clients only (emails are unique per tenant).
    client_id = f"web-{tenant}"
    with engine(api.settings).begin() as conn:
        create_client(
            conn,
            client_id,
            redirect_uris=[back],
            scopes=USER_SCOPES,
            tenant_id=tenant,
            replace=True,
        )
    oauth = OAuth2Client(
        client_id=client_id,
        redirect_uri=back,
        scope=scope,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = uuid.uuid4().hex + uuid.uuid4().hex
    url, _ = oauth.create_authorization_url(f"{api.url}/oauth/authorize", code_verifier=verifier)
    with httpx.Client(base_url=api.url) as browser:
        page = browser.get(url)
        hidden = dict(
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
        )
        form = {k: unescape(v) for k, v in hidden.items()} | {"email": email, "password": password}
        redirect = browser.post("/oauth/authorize", data=form)
    assert redirect.status_code == 302, redirect.text
    token = oauth.fetch_token(
        f"{api.url}/oauth/token",
        authorization_response=redirect.headers["location"],
        code_verifier=verifier,
    )
    return str(token["access_token"])


def test_a_customers_token_is_refused_on_another_customer(
    api: Api, client_token: str, tenant: str
) -> None:
    a_body, b_body = signup_body(api), signup_body(api)
    a = register(api, client_token, a_body, str(uuid.uuid4())).json()
    b = register(api, client_token, b_body, str(uuid.uuid4())).json()
    token = end_user_token(api, tenant, a_body["email"], a_body["password"])
    auth = {"Authorization": f"Bearer {token}"}

    own = httpx.get(f"{api.url}/v1/customers/{a['customer_id']}", headers=auth)
    assert own.status_code == 200 and own.json()["email"] == a_body["email"]
    assert (
        httpx.get(f"{api.url}/v1/subscriptions/{a['subscription_id']}", headers=auth).status_code
        == 200
    )
    for path in (f"/v1/customers/{b['customer_id']}", f"/v1/subscriptions/{b['subscription_id']}"):
        refused = httpx.get(f"{api.url}{path}", headers=auth)
        assert refused.status_code == 404, path
    listing = httpx.get(f"{api.url}/v1/customers", headers=auth).json()
    assert [c["id"] for c in listing["data"]] == [a["customer_id"]]
    # Read-only: the end user's token cannot write.
    write = httpx.patch(
        f"{api.url}/v1/customers/{a['customer_id']}", json={"name": "X"}, headers=auth
    )
    assert write.status_code == 403


def test_one_email_signs_up_under_two_tenants_each_with_its_own_login(
    api: Api, issue_token: Callable[..., str]
) -> None:
    """Emails are unique per tenant: the second tenant's signup gets a login of its own,
    never a 409 it would take for someone else's login."""
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    signed_up = {}
    for tenant, password in ((f"tenant-{uuid.uuid4().hex[:8]}", f"password {n}") for n in (1, 2)):
        token = issue_token("registrations:write customers:read", tenant)
        body = signup_body(api, email=email, password=password)
        resp = register(api, token, body, str(uuid.uuid4()))
        assert resp.status_code == 201, resp.text
        signed_up[tenant] = (password, resp.json()["customer_id"])
    assert len({customer for _, customer in signed_up.values()}) == 2
    for tenant, (password, customer) in signed_up.items():
        user = end_user_token(api, tenant, email, password)
        own = httpx.get(f"{api.url}/v1/customers", headers={"Authorization": f"Bearer {user}"})
        assert [c["id"] for c in own.json()["data"]] == [customer]


def test_a_login_of_another_customer_is_never_taken_as_this_signups(
    api: Api, client_token: str, tenant: str, issue_token: Callable[..., str]
) -> None:
    """The email logs in as another customer of this tenant (made outside a signup): the
    signup is refused and that login keeps its customer."""
    email, other = f"{uuid.uuid4().hex[:10]}@example.com", str(uuid.uuid4())
    internal = issue_token("users:write internal")
    login = {
        "email": email,
        "password": "someone else's",
        "customer_id": other,
        "tenant_id": tenant,
    }
    made = httpx.post(
        f"{api.url}/v1/users", json=login, headers={"Authorization": f"Bearer {internal}"}
    )
    assert made.status_code == 201, made.text

    resp = register(api, client_token, signup_body(api, email=email), str(uuid.uuid4()))
    assert resp.status_code == 409, resp.text
    assert resp.json()["type"].endswith("/already-registered")
    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url) as conn:
        logins = conn.execute(
            "SELECT customer_id FROM auth.users WHERE email = %s AND tenant_id = %s",
            (email, tenant),
        ).fetchall()
    assert logins == [(other,)]
    # The other customer's password still logs in; the signup's never does.
    assert end_user_token(api, tenant, email, "someone else's")
