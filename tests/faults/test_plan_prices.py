"""A signup resumed after its plan got a new price version is charged the price its
subscription was made at (the real stack, Stripe's answers lost through a fault proxy)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from paywall.settings import Settings
from tests.faults.conftest import ServedApi
from tests.faults.proxy import FaultProxy
from tests.faults.test_charges import (
    PARTNER_SCOPES,
    lose_stripe_answers,
    money_for,
    proxy,
    register,
    rows,
    signup_body,
    token,
)

pytestmark = pytest.mark.integration
__all__ = ["proxy"]  # the fault proxy in front of Stripe, a fixture of test_charges.py


def test_a_signup_resumed_after_a_new_price_is_charged_the_price_it_was_made_at(
    served_api: Callable[..., ServedApi], proxy: FaultProxy, settings: Settings
) -> None:
    served = served_api(STRIPE_API_BASE=proxy.url)
    bearer = token(served, settings, f"{PARTNER_SCOPES} plans:write", f"t-{uuid.uuid4().hex[:8]}")
    auth = {"Authorization": f"Bearer {bearer}"}

    def post(path: str, body: dict[str, object]) -> httpx.Response:
        keyed = {**auth, "Idempotency-Key": str(uuid.uuid4())}
        return httpx.post(f"{served.url}{path}", json=body, headers=keyed, timeout=60)

    plan = post(
        "/v1/plans", {"name": "Gold", "amount": 4900, "currency": "usd", "interval": "month"}
    )
    assert plan.status_code == 201, plan.text
    plan_id = plan.json()["id"]
    body, key = signup_body(settings, plan_id=plan_id), str(uuid.uuid4())
    lose_stripe_answers(proxy)
    assert register(served, bearer, body, key).status_code == 503  # charged, answer lost
    proxy.rules.clear()
    assert post(f"/v1/plans/{plan_id}/prices", {"amount": 5900}).status_code == 201

    again = register(served, bearer, body, key)

    assert again.status_code == 201, again.text
    money = money_for(settings, body["email"])
    assert money["stripe_charges"] == 1, money
    assert money["payments"] == [("succeeded", 4900)], money
    assert rows(
        settings,
        "SELECT price_version FROM subscription.subscriptions WHERE id = %s",
        again.json()["subscription_id"],
    ) == [(1,)]
    # Asked for directly, the earlier price is the plan at that version.
    earlier = httpx.get(
        f"{served.url}/v1/plans/{plan_id}", params={"price_version": 1}, headers=auth
    )
    assert (earlier.json()["amount"], earlier.json()["price_version"]) == (4900, 1)
    absent = httpx.get(
        f"{served.url}/v1/plans/{plan_id}", params={"price_version": 3}, headers=auth
    )
    assert absent.status_code == 404
