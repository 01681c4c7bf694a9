"""Customer and subscription APIs over HTTP: tenancy, cache, lifecycle, proration."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
import redis

from tests.conftest import Api

pytestmark = pytest.mark.integration


@pytest.fixture
def b2b(issue_token: Callable[..., str]) -> dict[str, str]:
    token = issue_token(
        "customers:read customers:write subscriptions:read subscriptions:write",
        f"tenant-{uuid.uuid4().hex[:8]}",
    )
    return {"Authorization": f"Bearer {token}"}


def new_customer(api: Api, auth: dict[str, str], **fields: object) -> dict[str, object]:
    body = {"email": f"{uuid.uuid4().hex[:10]}@example.com", "name": "Grace Hopper", **fields}
    resp = httpx.post(f"{api.url}/v1/customers", json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_customer_crud_with_cache_invalidation(api: Api, b2b: dict[str, str]) -> None:
    c = new_customer(api, b2b, phone="+14155550100")
    url = f"{api.url}/v1/customers/{c['id']}"
    assert httpx.get(url, headers=b2b).json()["name"] == "Grace Hopper"  # now cached
    patched = httpx.patch(url, json={"name": "Rear Admiral Hopper"}, headers=b2b)
    assert patched.status_code == 200
    assert httpx.get(url, headers=b2b).json()["name"] == "Rear Admiral Hopper"
    assert httpx.delete(url, headers=b2b).status_code == 204
    # Deleted reads as absent, in the same words: GET, PATCH and DELETE again are 404.
    gone = httpx.get(url, headers=b2b)
    absent = httpx.get(f"{api.url}/v1/customers/{uuid.uuid4()}", headers=b2b)
    assert gone.status_code == absent.status_code == 404
    assert gone.json()["type"] == absent.json()["type"]
    assert gone.json()["title"] == absent.json()["title"]
    assert httpx.patch(url, json={"name": "X"}, headers=b2b).status_code == 404
    assert httpx.delete(url, headers=b2b).status_code == 404
    listed = httpx.get(f"{api.url}/v1/customers", params={"email": c["email"]}, headers=b2b)
    assert listed.json()["data"] == []


def test_gdpr_erase_reaches_a_deleted_customer(api: Api, b2b: dict[str, str]) -> None:
    c = new_customer(api, b2b, phone="+14155550100")
    url = f"{api.url}/v1/customers/{c['id']}"
    assert httpx.delete(url, headers=b2b).status_code == 204
    erased = httpx.post(f"{url}/erase", headers=b2b)
    assert erased.status_code == 200, erased.text
    assert erased.json()["phone"] is None and erased.json()["erased_at"]
    again = httpx.post(f"{url}/erase", headers=b2b)
    assert again.status_code == 409
    assert again.json()["type"] == "https://paywall.dev/problems/already-erased"


def test_gdpr_erase_removes_personal_data(api: Api, b2b: dict[str, str]) -> None:
    c = new_customer(api, b2b, phone="+14155550100")
    erased = httpx.post(f"{api.url}/v1/customers/{c['id']}/erase", headers=b2b).json()
    assert erased["email"].startswith("erased+") and erased["phone"] is None
    assert erased["name"] is None and erased["erased_at"]


def test_duplicate_email_in_a_tenant_is_409(api: Api, b2b: dict[str, str]) -> None:
    c = new_customer(api, b2b)
    again = httpx.post(
        f"{api.url}/v1/customers", json={"email": c["email"], "name": "X"}, headers=b2b
    )
    assert again.status_code == 409


def test_a_taken_email_names_the_customer_to_internal_callers_only(
    api: Api, b2b: dict[str, str], issue_token: Callable[..., str]
) -> None:
    c = new_customer(api, b2b)
    internal = {"Authorization": f"Bearer {issue_token('customers:write internal')}"}
    body = {"email": c["email"], "name": "X", "tenant_id": c["tenant_id"]}
    # Registration (internal) resumes a signup with the customer it made before.
    resumed = httpx.post(f"{api.url}/v1/customers", json=body, headers=internal)
    assert resumed.status_code == 409
    assert resumed.json()["type"] == "https://paywall.dev/problems/email-taken"
    assert resumed.json()["customer_id"] == c["id"]
    del body["tenant_id"]
    partner = httpx.post(f"{api.url}/v1/customers", json=body, headers=b2b)
    assert partner.status_code == 409 and "customer_id" not in partner.json()


def test_a_cursor_the_api_did_not_return_is_a_400(api: Api, b2b: dict[str, str]) -> None:
    for cursor in ("not-a-cursor", "WyJ4IiwgInkiXQ"):  # garbage; base64 of ["x", "y"]
        resp = httpx.get(f"{api.url}/v1/customers", params={"cursor": cursor}, headers=b2b)
        assert resp.status_code == 400, resp.text
        assert resp.json()["type"] == "https://paywall.dev/problems/bad-cursor"


def test_cursor_pagination_walks_every_customer_once(api: Api, b2b: dict[str, str]) -> None:
    made = {new_customer(api, b2b)["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{api.url}/v1/customers", params=params, headers=b2b).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    bad = httpx.get(f"{api.url}/v1/customers", params={"cursor": "garbage"}, headers=b2b)
    assert bad.status_code == 400


def test_reads_work_while_redis_stalls(api: Api, b2b: dict[str, str]) -> None:
    c = new_customer(api, b2b)
    assert api.settings.redis_url
    # CLIENT PAUSE stalls every client: the cache times out and Postgres answers instead.
    redis.Redis.from_url(api.settings.redis_url).client_pause(1500)
    resp = httpx.get(f"{api.url}/v1/customers/{c['id']}", headers=b2b, timeout=10)
    assert resp.status_code == 200


def test_tenant_cannot_set_another_tenant(api: Api, b2b: dict[str, str]) -> None:
    resp = httpx.post(
        f"{api.url}/v1/customers",
        json={"email": "x@example.com", "name": "X", "tenant_id": "other"},
        headers=b2b,
    )
    assert resp.status_code == 403


def subscribe(api: Api, auth: dict[str, str], plan: str, trial: bool = False) -> dict[str, object]:
    c = new_customer(api, auth)
    resp = httpx.post(
        f"{api.url}/v1/subscriptions",
        json={"customer_id": c["id"], "plan_id": plan, "trial": trial},
        headers=auth,
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_lifecycle_pause_resume_cancel(api: Api, b2b: dict[str, str]) -> None:
    sub = subscribe(api, b2b, "basic-monthly", trial=True)
    assert sub["status"] == "trialing"
    base = f"{api.url}/v1/subscriptions/{sub['id']}"
    assert httpx.post(f"{base}/pause", headers=b2b).json()["status"] == "paused"
    assert httpx.post(f"{base}/pause", headers=b2b).status_code == 409
    assert httpx.post(f"{base}/resume", headers=b2b).json()["status"] == "active"
    scheduled = httpx.post(f"{base}/cancel", json={"at_period_end": True}, headers=b2b).json()
    assert scheduled["status"] == "active" and scheduled["cancel_at_period_end"] is True
    now = httpx.post(f"{base}/cancel", json={"at_period_end": False}, headers=b2b).json()
    assert now["status"] == "canceled"
    refused = httpx.post(f"{base}/resume", headers=b2b)
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")


def test_activation_is_internal_only(api: Api, b2b: dict[str, str]) -> None:
    sub = subscribe(api, b2b, "team-monthly")
    assert sub["status"] == "incomplete"
    resp = httpx.post(
        f"{api.url}/v1/subscriptions/{sub['id']}/activate", json={"payment_id": "p1"}, headers=b2b
    )
    assert resp.status_code == 403


def test_an_upgrade_nobody_can_pay_keeps_the_plan_and_downgrade_waits_for_period_end(
    api: Api, b2b: dict[str, str]
) -> None:
    """Upgrades are charged before they take effect (tests/integration/test_invoices.py):
    a customer with no payment account cannot be charged, so the plan stays."""
    sub = subscribe(api, b2b, "pro-monthly", trial=True)
    base = f"{api.url}/v1/subscriptions/{sub['id']}"
    httpx.post(f"{base}/pause", headers=b2b)
    httpx.post(f"{base}/resume", headers=b2b)  # now active
    up = httpx.post(f"{base}/change-plan", json={"plan_id": "team-monthly"}, headers=b2b)
    assert up.status_code == 402, up.text
    assert up.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(base, headers=b2b).json()["plan_id"] == "pro-monthly"
    down = httpx.post(f"{base}/change-plan", json={"plan_id": "basic-monthly"}, headers=b2b)
    assert down.json()["effective"] == "period_end"
    assert down.json()["subscription"]["plan_id"] == "pro-monthly"
    assert down.json()["subscription"]["pending_plan_id"] == "basic-monthly"
    yearly = httpx.post(f"{base}/change-plan", json={"plan_id": "pro-yearly"}, headers=b2b)
    assert yearly.status_code == 422


def test_probes_and_metrics(api: Api) -> None:
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api.url}/readyz")
    assert ready.status_code == 200, ready.text
    rid = "trace-me-123"
    assert (
        httpx.get(f"{api.url}/v1/plans", headers={"X-Request-ID": rid}).headers["x-request-id"]
        == rid
    )
    metrics = httpx.get(f"{api.url}/metrics").text
    assert any(
        line.startswith("paywall_http_requests_total{")
        and 'route="/v1/plans"' in line
        and 'status="200"' in line
        for line in metrics.splitlines()
    )
