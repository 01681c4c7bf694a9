"""Every public list has one envelope (`data`, `next_cursor`) and cursor pages that neither
repeat nor skip a row, scoped to the caller's tenant, on the real stack."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.integration.test_signup import register, signup_body

pytestmark = pytest.mark.integration

SCOPES = "registrations:write customers:read subscriptions:read payments:read invoices:read"


def walk(api: Api, path: str, token: str | None, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, a page of 2 at a time, checking the envelope on each page."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = httpx.get(f"{api.url}{path}", params=query, headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert set(page) == {"data", "next_cursor"}
        assert len(page["data"]) <= 2
        items += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.fixture(scope="module")
def two_tenants(api: Api, issue_token: Callable[..., str]) -> dict[str, Any]:
    """Tenant A with three signups, tenant B with one."""
    out: dict[str, Any] = {}
    for name, signups in (("a", 3), ("b", 1)):
        token = issue_token(SCOPES, f"tenant-{name}-{uuid.uuid4().hex[:8]}")
        done = []
        for _ in range(signups):
            resp = register(api, token, signup_body(api), str(uuid.uuid4()))
            assert resp.status_code == 201, resp.text
            done.append(resp.json())
        out[name] = {"token": token, "signups": done}
    return out


def test_plans_page_through_the_whole_price_list(api: Api) -> None:
    plans = walk(api, "/v1/plans", None)
    ids = [p["id"] for p in plans]
    assert len(ids) == len(set(ids)) >= 3
    assert [p["amount"] for p in plans] == sorted(p["amount"] for p in plans)
    one = httpx.get(f"{api.url}/v1/plans/{ids[0]}", timeout=10)
    assert one.status_code == 200 and one.json() == plans[0]
    missing = httpx.get(f"{api.url}/v1/plans/no-such-plan", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "key"),
    [("/v1/subscriptions", "subscription_id"), ("/v1/customers", "customer_id")],
)
def test_a_tenant_pages_through_its_own_rows_only(
    api: Api, two_tenants: dict[str, Any], path: str, key: str
) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    seen = [item["id"] for item in walk(api, path, a["token"])]
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(s[key] for s in a["signups"])
    assert not {s[key] for s in b["signups"]} & set(seen)


def test_payments_list_is_the_tenants_first_charges_newest_first(
    api: Api, two_tenants: dict[str, Any]
) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    payments = walk(api, "/v1/payments", a["token"])
    assert sorted(p["customer_id"] for p in payments) == sorted(
        s["customer_id"] for s in a["signups"]
    )
    assert all(p["status"] == "succeeded" for p in payments)
    assert [p["created_at"] for p in payments] == sorted(
        (p["created_at"] for p in payments), reverse=True
    )
    mine = walk(api, "/v1/payments", b["token"], customer_id=b["signups"][0]["customer_id"])
    assert [p["customer_id"] for p in mine] == [b["signups"][0]["customer_id"]]
    # A filter naming another tenant's customer narrows to nothing; it never widens.
    assert walk(api, "/v1/payments", b["token"], customer_id=a["signups"][0]["customer_id"]) == []


def test_subscriptions_filter_by_customer_and_status(api: Api, two_tenants: dict[str, Any]) -> None:
    a = two_tenants["a"]
    first = a["signups"][0]
    by_customer = walk(api, "/v1/subscriptions", a["token"], customer_id=first["customer_id"])
    assert [s["id"] for s in by_customer] == [first["subscription_id"]]
    assert len(walk(api, "/v1/subscriptions", a["token"], status="active")) == 3
    assert walk(api, "/v1/subscriptions", a["token"], status="canceled") == []
    nested = walk(api, f"/v1/customers/{first['customer_id']}/subscriptions", a["token"])
    assert [s["id"] for s in nested] == [first["subscription_id"]]


@pytest.mark.parametrize("path", ["/v1/plans", "/v1/subscriptions", "/v1/payments"])
def test_a_cursor_this_api_never_gave_is_a_400_problem(
    api: Api, two_tenants: dict[str, Any], path: str
) -> None:
    resp = httpx.get(
        f"{api.url}{path}",
        params={"cursor": "bm90LWEtY3Vyc29y"},
        headers={"Authorization": f"Bearer {two_tenants['a']['token']}"},
        timeout=10,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["type"].endswith("/bad-cursor")
