"""Partner onboarding: the admin API (scope `admin`, the platform operator's) and the
`paywall tenants|clients|cards` commands, on the session stack over real HTTP."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from paywall.db import engine
from tests.conftest import REPO, Api, client_token
from transactional.auth import admin
from transactional.auth.admin_models import ClientCreate

pytestmark = pytest.mark.integration

PAYWALL = str(REPO / ".venv" / "bin" / "paywall")
PARTNER = "registrations:write customers:read"


def _slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def paywall(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAYWALL, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _env_lines(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def token_answer(api: Api, client_id: str, secret: str, scope: str = PARTNER) -> httpx.Response:
    return httpx.post(
        f"{api.url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": scope},
        timeout=30,
    )


@pytest.fixture(scope="module")
def operator(api: Api) -> dict[str, str]:
    """Headers of an operator: a client of no tenant with scope admin."""
    with engine(api.settings).begin() as conn:
        made = admin.create_client_for(
            conn, ClientCreate(tenant_id=None, name="ops", scopes=["admin"]), None
        ).body
    token = client_token(api.url, made["client_id"], made["client_secret"], "admin")
    return {"Authorization": f"Bearer {token}"}


def post(
    api: Api, path: str, headers: dict[str, str], key: str | None = None, **body: Any
) -> httpx.Response:
    extra = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{api.url}{path}", json=body, headers={**headers, **extra}, timeout=30)


def problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(f"/{slug}"), response.text


def test_tenants_are_created_once_per_key_and_listed_in_pages(
    api: Api, operator: dict[str, str]
) -> None:
    tenant, key = _slug("t"), str(uuid.uuid4())
    problem(
        post(api, "/v1/tenants", operator, id=tenant, name="T"), 400, "idempotency-key-required"
    )
    first = post(api, "/v1/tenants", operator, key, id=tenant, name="T")
    assert first.status_code == 201, first.text
    assert first.json()["id"] == tenant
    again = post(api, "/v1/tenants", operator, key, id=tenant, name="T")
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    problem(
        post(api, "/v1/tenants", operator, key, id=tenant, name="U"), 422, "idempotency-key-reused"
    )
    taken = post(api, "/v1/tenants", operator, str(uuid.uuid4()), id=tenant, name="T")
    problem(taken, 409, "already-exists")
    problem(
        post(api, "/v1/tenants", operator, str(uuid.uuid4()), id="Not A Slug", name="x"),
        422,
        "validation",
    )

    post(api, "/v1/tenants", operator, str(uuid.uuid4()), id=_slug("t"), name="T2")
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{api.url}/v1/tenants", params=params, headers=operator).json()
        seen += [t["id"] for t in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert tenant in seen and seen == sorted(seen) and len(seen) == len(set(seen)) >= 2
    bad = httpx.get(f"{api.url}/v1/tenants", params={"cursor": "!!"}, headers=operator)
    problem(bad, 400, "bad-cursor")


def test_a_client_secret_is_shown_once_rotated_and_disabled(
    api: Api, operator: dict[str, str], issue_token: Callable[..., str]
) -> None:
    tenant, key = _slug("t"), str(uuid.uuid4())
    assert (
        post(api, "/v1/tenants", operator, str(uuid.uuid4()), id=tenant, name="T").status_code
        == 201
    )
    made = post(
        api, "/v1/clients", operator, key, tenant_id=tenant, name="backend", scopes=PARTNER.split()
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    client = made.json()
    client_id, secret = client["client_id"], client["client_secret"]
    assert client["tenant_id"] == tenant and client["grant_types"] == ["client_credentials"]
    assert secret and client["disabled_at"] is None

    # Shown once: a replay, a read and a listing never carry it.
    replay = post(
        api, "/v1/clients", operator, key, tenant_id=tenant, name="backend", scopes=PARTNER.split()
    )
    assert replay.status_code == 201 and replay.json()["client_secret"] is None
    assert replay.json()["client_id"] == client_id
    read = httpx.get(f"{api.url}/v1/clients/{client_id}", headers=operator)
    listed = httpx.get(f"{api.url}/v1/clients", params={"tenant_id": tenant}, headers=operator)
    # Beside the partner's: the portal's login client, made with the tenant.
    assert sorted(c["client_id"] for c in listed.json()["data"]) == sorted(
        [client_id, f"portal.{tenant}"]
    )
    for answer in (read, listed):
        assert answer.status_code == 200 and secret not in answer.text
        assert "client_secret" not in answer.text

    # The token carries the tenant, and the partner reaches its tenant's data with it.
    assert token_answer(api, client_id, secret).status_code == 200
    live = token_answer(api, client_id, secret).json()["access_token"]
    bearer = {"Authorization": f"Bearer {live}"}
    assert httpx.get(f"{api.url}/v1/customers", headers=bearer).status_code == 200

    rotated = httpx.post(f"{api.url}/v1/clients/{client_id}/rotate-secret", headers=operator)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    assert new_secret and new_secret != secret
    assert token_answer(api, client_id, secret).status_code == 401
    assert token_answer(api, client_id, new_secret).status_code == 200

    disabled = httpx.post(f"{api.url}/v1/clients/{client_id}/disable", headers=operator)
    assert disabled.status_code == 200 and disabled.json()["disabled_at"]
    assert token_answer(api, client_id, new_secret).status_code == 401
    # The token it held stops working at the services and at introspection.
    problem(httpx.get(f"{api.url}/v1/customers", headers=bearer), 401, "invalid-token")
    introspected = httpx.post(f"{api.url}/oauth/introspect", data={"token": live}, headers=bearer)
    assert introspected.json() == {"active": False}
    again = httpx.post(f"{api.url}/v1/clients/{client_id}/disable", headers=operator)
    assert (
        again.status_code == 200 and again.json()["disabled_at"] == disabled.json()["disabled_at"]
    )
    problem(
        httpx.post(f"{api.url}/v1/clients/{client_id}/rotate-secret", headers=operator),
        409,
        "client-disabled",
    )


def test_clients_get_only_the_scopes_of_their_kind(api: Api, operator: dict[str, str]) -> None:
    tenant = _slug("t")
    post(api, "/v1/tenants", operator, str(uuid.uuid4()), id=tenant, name="T")

    def create(**body: Any) -> httpx.Response:
        return post(api, "/v1/clients", operator, str(uuid.uuid4()), name="c", **body)

    for scopes in (["internal"], ["operations"], ["users:write"], ["admin"]):
        problem(create(tenant_id=tenant, scopes=scopes), 422, "scope-not-allowed")
    problem(create(tenant_id=None, scopes=["customers:read"]), 422, "scope-not-allowed")
    problem(create(tenant_id=_slug("nobody")), 422, "unknown-tenant")
    default = create(tenant_id=tenant)
    assert default.status_code == 201
    assert "admin" not in default.json()["scopes"] and "internal" not in default.json()["scopes"]


def test_only_an_operator_reaches_the_admin_api(
    api: Api, operator: dict[str, str], issue_token: Callable[..., str]
) -> None:
    """`admin` is a platform operator's scope: no tenant's token, with whatever other
    scopes, reads or changes a tenant or a client, its own tenant's included."""
    tenant = _slug("t")
    post(api, "/v1/tenants", operator, str(uuid.uuid4()), id=tenant, name="T")
    own = post(api, "/v1/clients", operator, str(uuid.uuid4()), tenant_id=tenant, name="c").json()
    partner = {"Authorization": f"Bearer {issue_token('customers:read customers:write', tenant)}"}
    # Written into auth's table by hand: the admin API itself refuses to make this client.
    tenant_admin = {"Authorization": f"Bearer {issue_token('admin', tenant)}"}
    calls = [
        ("GET", "/v1/tenants"),
        ("POST", "/v1/tenants"),
        ("GET", "/v1/clients"),
        ("POST", "/v1/clients"),
        ("GET", f"/v1/clients/{own['client_id']}"),
        ("POST", f"/v1/clients/{own['client_id']}/rotate-secret"),
        ("POST", f"/v1/clients/{own['client_id']}/disable"),
    ]
    body = {"id": _slug("t"), "name": "x", "tenant_id": tenant}
    for method, path in calls:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        for who, slug in ((partner, "insufficient-scope"), (tenant_admin, "forbidden-tenant")):
            answer = httpx.request(
                method, f"{api.url}{path}", headers={**who, **headers}, json=body
            )
            problem(answer, 403, slug)
        problem(
            httpx.request(method, f"{api.url}{path}", headers=headers, json=body),
            401,
            "invalid-token",
        )
    # Nothing changed: the client still works with its secret, and no tenant was made.
    assert (
        token_answer(api, own["client_id"], own["client_secret"], "customers:read").status_code
        == 200
    )
    tenants = httpx.get(f"{api.url}/v1/tenants", params={"limit": 100}, headers=operator).json()
    assert body["id"] not in {t["id"] for t in tenants["data"]}


def test_the_cli_onboards_a_partner(api: Api, cli_env: dict[str, str]) -> None:
    tenant = _slug("cli")
    created = paywall(cli_env, "tenants", "create", tenant, "--name", "CLI Partner")
    assert created.returncode == 0, created.stderr
    listed = json.loads(paywall(cli_env, "tenants", "list", "--format", "json").stdout)
    assert {"id": tenant, "name": "CLI Partner"}.items() <= next(
        t for t in listed if t["id"] == tenant
    ).items()
    dup = paywall(cli_env, "tenants", "create", tenant)
    assert dup.returncode == 2 and dup.stderr.count("\n") == 1 and "exists" in dup.stderr

    made = paywall(cli_env, "clients", "create", "--tenant", tenant, "--format", "env")
    assert made.returncode == 0, made.stderr
    assert "shown this once" in made.stderr
    creds = _env_lines(made.stdout)
    client_id, secret = creds["CLIENT_ID"], creds["CLIENT_SECRET"]
    assert token_answer(api, client_id, secret).status_code == 200
    clients = paywall(cli_env, "clients", "list", "--tenant", tenant, "--format", "json")
    listed = sorted(c["client_id"] for c in json.loads(clients.stdout))
    assert listed == sorted([client_id, f"portal.{tenant}"])  # the portal's, made with it
    assert secret not in clients.stdout

    rotated = paywall(cli_env, "clients", "rotate-secret", client_id, "--format", "env")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = _env_lines(rotated.stdout)["CLIENT_SECRET"]
    assert token_answer(api, client_id, secret).status_code == 401
    live = token_answer(api, client_id, new_secret).json()["access_token"]
    assert paywall(cli_env, "clients", "disable", client_id).returncode == 0
    assert token_answer(api, client_id, new_secret).status_code == 401
    refused = httpx.get(f"{api.url}/v1/customers", headers={"Authorization": f"Bearer {live}"})
    assert refused.status_code == 401

    operator = paywall(cli_env, "clients", "create", "--admin", "--format", "env")
    ops = _env_lines(operator.stdout)
    ops_token = client_token(api.url, ops["CLIENT_ID"], ops["CLIENT_SECRET"], "admin")
    found = httpx.get(
        f"{api.url}/v1/clients/{client_id}", headers={"Authorization": f"Bearer {ops_token}"}
    )
    assert found.status_code == 200 and found.json()["disabled_at"]

    unknown = paywall(cli_env, "clients", "create", "--tenant", _slug("nobody"))
    assert unknown.returncode == 2 and "no tenant" in unknown.stderr
    both = paywall(cli_env, "clients", "create", "--tenant", tenant, "--admin")
    assert both.returncode == 2


def test_cards_are_test_payment_methods_on_the_local_stripe(
    api: Api, cli_env: dict[str, str]
) -> None:
    from paywall import clients

    stripe = clients.stripe_client(api.settings)
    for args, last4 in (((), "4242"), (("--declined",), "0341")):
        made = paywall(cli_env, "cards", "create", *args)
        assert made.returncode == 0, made.stderr
        pm = made.stdout.strip()
        assert pm.startswith("pm_")
        assert stripe.v1.payment_methods.retrieve(pm).card.last4 == last4  # type: ignore[union-attr]


def test_a_tenants_login_client_signs_in_its_customers_and_only_back_to_its_uris(
    api: Api, operator: dict[str, str], issue_token: Callable[..., str], cli_env: dict[str, str]
) -> None:
    from tests.integration.test_auth import PASSWORD, REDIRECT_URI, _code_flow
    from tests.integration.test_signup import GOOD_CARD, register, signup_body
    from transactional.auth.users import find_user

    tenant = _slug("t")
    assert post(api, "/v1/tenants", operator, str(uuid.uuid4()), id=tenant, name="T").is_success
    made = post(
        api, "/v1/clients", operator, str(uuid.uuid4()),
        tenant_id=tenant, name="T web app", redirect_uris=[REDIRECT_URI],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    web = made.json()
    assert web["client_secret"] is None and web["redirect_uris"] == [REDIRECT_URI]
    assert web["grant_types"] == ["authorization_code", "refresh_token"]
    assert "openid" in web["scopes"] and "registrations:write" not in web["scopes"]
    rotated = post(api, f"/v1/clients/{web['client_id']}/rotate-secret", operator)
    assert rotated.status_code == 404, rotated.text  # a public client has no secret

    # A customer of the tenant signs up, then signs in through its web app's client.
    body = signup_body(api, GOOD_CARD, password=PASSWORD)
    signed = register(api, issue_token("registrations:write", tenant), body, str(uuid.uuid4()))
    assert signed.status_code == 201, signed.text
    with engine(api.settings).connect() as conn:
        user = find_user(conn, body["email"], tenant)
    assert user is not None
    with httpx.Client(base_url=api.url, timeout=30) as http:
        login = _code_flow(http, web["client_id"], user, "openid customers:read")
        me = http.get("/userinfo", headers={"Authorization": f"Bearer {login['access_token']}"})
        assert me.status_code == 200 and me.json()["sub"] == str(user.id)
        elsewhere = http.get(
            "/oauth/authorize",
            params={
                "response_type": "code", "client_id": web["client_id"],
                "redirect_uri": "https://attacker.example.com/cb", "scope": "openid",
                "code_challenge": "x" * 43, "code_challenge_method": "S256",
            },
        )  # fmt: skip
        assert elsewhere.status_code == 400 and "location" not in elsewhere.headers

    # Bad input changes nothing: no tenant, scopes of its own, a URI with a fragment.
    for bad in (
        {"tenant_id": None, "name": "x", "redirect_uris": [REDIRECT_URI]},
        {"tenant_id": tenant, "name": "x", "redirect_uris": [REDIRECT_URI], "scopes": ["openid"]},
        {"tenant_id": tenant, "name": "x", "redirect_uris": ["https://app.example.com/#cb"]},
    ):
        problem(post(api, "/v1/clients", operator, str(uuid.uuid4()), **bad), 422, "validation")
    listed = httpx.get(f"{api.url}/v1/clients", params={"tenant_id": tenant}, headers=operator)
    names = [c["name"] for c in listed.json()["data"]]
    assert "T web app" in names and "x" not in names

    # The same from the shell; a bad URI is one line.
    cli = paywall(cli_env, "clients", "create", "--tenant", tenant, "--redirect-uri",
                  "https://app.example.com/callback", "--format", "json")  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["redirect_uris"] == ["https://app.example.com/callback"]
    refused = paywall(cli_env, "clients", "create", "--tenant", tenant, "--redirect-uri", "nope")
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert "redirect_uris" in refused.stderr and "Traceback" not in refused.stderr


def test_browsers_may_call_from_the_web_apps_origin_only(api: Api) -> None:
    """CORS: the origins of WEB_REDIRECT_URIS (CORS_ALLOW_ORIGINS when set) get answers."""
    [origin] = api.settings.cors_origins
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers":
             "authorization, content-type, idempotency-key"}  # fmt: skip
    for path in ("/oauth/token", "/v1/registrations", "/v1/customers"):
        ok = httpx.options(f"{api.url}{path}", headers={"Origin": origin, **asked})
        assert ok.status_code == 200, (path, ok.text)
        assert ok.headers["access-control-allow-origin"] == origin
        assert "idempotency-key" in ok.headers["access-control-allow-headers"].lower()
        other = httpx.options(
            f"{api.url}{path}", headers={"Origin": "https://evil.example.com", **asked}
        )
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    plans = httpx.get(f"{api.url}/v1/plans", headers={"Origin": origin})
    assert plans.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-credentials" not in plans.headers  # bearer tokens, no cookies
