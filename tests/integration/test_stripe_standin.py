"""The Stripe stand-in itself (paywall/stack/localstripe_server.py), a server of this test's
own over loopback: lists read from its per-type index (localstripe_index.py) answer as the
store walk did, across deletes and a restart that reloads the state file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paywall.settings import LOCAL_STRIPE_KEY
from paywall.stack.component import Running, StackContext
from paywall.stack.stripe import Stripe

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {LOCAL_STRIPE_KEY}"}


class StandIn:
    """One stand-in on a state file; `restart` stops it (SIGTERM writes the store) and
    starts another on the same file."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.running: Running | None = None
        self.http: httpx.Client | None = None

    def start(self) -> None:
        # The stack's own component, on a context of this test's: one state file for all.
        self.running = Stripe().start(StackContext(self.home))
        self.http = httpx.Client(base_url=self.running.env["STRIPE_API_BASE"], headers=AUTH)

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.running is not None:
            Stripe().stop(self.running)

    def restart(self) -> None:
        self.stop()
        self.start()

    def call(
        self, method: str, path: str, status: int | None = 200, **kwargs: Any
    ) -> httpx.Response:
        assert self.http is not None
        resp = self.http.request(method, path, **kwargs)
        if status is not None:
            assert resp.status_code == status, resp.text
        return resp

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[StandIn]:
    server = StandIn(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ids(page: dict[str, Any]) -> list[str]:
    return [obj["id"] for obj in page["data"]]


def pages(s: StandIn, cus: list[str]) -> dict[str, Any]:
    """Every listing this test checks, as answered."""
    return {
        "first": s.json("GET", "/v1/customers", params={"limit": 2}),
        "after": s.json("GET", "/v1/customers", params={"limit": 2, "starting_after": cus[1]}),
        "rest": s.json("GET", "/v1/customers", params={"starting_after": cus[4]}),
        "by_email": s.json("GET", "/v1/customers", params={"email": "twin@example.com"}),
    }


def charge(s: StandIn, customer: str) -> str:
    card = s.json(
        "POST",
        "/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": "4242424242424242",
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
    )["id"]
    s.call("POST", f"/v1/payment_methods/{card}/attach", data={"customer": customer})
    intent = s.json(
        "POST",
        "/v1/payment_intents",
        data={
            "amount": "2900",
            "currency": "usd",
            "customer": customer,
            "payment_method": card,
            "payment_method_types[]": "card",
            "confirm": "true",
            "off_session": "true",
        },
    )
    assert intent["status"] == "succeeded"
    return str(intent["latest_charge"]["id"])  # localstripe answers it expanded


def refunds(s: StandIn, charge_id: str) -> tuple[set[str], int, set[str]]:
    """A charge's refunds as its own answer shows them, its amount refunded, and the
    refunds listed by charge."""
    shown = s.json("GET", f"/v1/charges/{charge_id}")
    listed = s.json("GET", "/v1/refunds", params={"charge": charge_id})
    return set(ids(shown["refunds"])), shown["amount_refunded"], set(ids(listed))


def test_lists_pages_refunds_and_replays_answer_as_before_and_after_a_restart(
    stand_in: StandIn,
) -> None:
    s = stand_in
    emails = ["a@example.com", "twin@example.com", "c@example.com"]
    emails += ["twin@example.com", "e@example.com", "f@example.com", "g@example.com"]
    cus = [s.json("POST", "/v1/customers", data={"email": e})["id"] for e in emails]
    s.call("DELETE", f"/v1/customers/{cus.pop(2)}")  # c@: gone from every list
    # localstripe lists customers in the order they were made (oldest first).
    before = pages(s, cus)
    assert (ids(before["first"]), before["first"]["has_more"]) == (cus[:2], True)
    assert (ids(before["after"]), before["after"]["has_more"]) == (cus[2:4], True)
    assert (ids(before["rest"]), before["rest"]["has_more"]) == (cus[5:], False)
    assert ids(before["by_email"]) == [cus[1], cus[2]]
    # Nor does it know ending_before: refused, as the walk refused it.
    s.call("GET", "/v1/customers", status=400, params={"ending_before": cus[3]})

    charged = charge(s, cus[0])
    assert refunds(s, charged) == (set(), 0, set())
    made = {
        s.json("POST", "/v1/refunds", data={"charge": charged, "amount": amount})["id"]
        for amount in ("500", "700")
    }
    assert refunds(s, charged) == (made, 1200, made)

    # A repeated key replays the first answer and makes nothing new.
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = s.call("POST", "/v1/customers", data={"email": "h@example.com"}, headers=key)
    again = s.call("POST", "/v1/customers", data={"email": "h@example.com"}, headers=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    cus.append(first.json()["id"])
    everyone = s.json("GET", "/v1/customers", params={"limit": 100})
    assert ids(everyone) == cus

    # The state file is reloaded on start; the index is rebuilt from what was loaded.
    kept = pages(s, cus)
    s.restart()
    assert pages(s, cus) == kept
    assert s.json("GET", "/v1/customers", params={"limit": 100}) == everyone
    assert refunds(s, charged) == (made, 1200, made)
    # And kept from then on: a new object lists last, a deleted one is gone, a new refund
    # counts.
    cus.append(s.json("POST", "/v1/customers", data={"email": "i@example.com"})["id"])
    s.call("DELETE", f"/v1/customers/{cus.pop(1)}")
    assert ids(s.json("GET", "/v1/customers", params={"limit": 100})) == cus
    assert ids(s.json("GET", "/v1/customers", params={"email": "twin@example.com"})) == [cus[1]]
    made.add(s.json("POST", "/v1/refunds", data={"charge": charged, "amount": "300"})["id"])
    assert refunds(s, charged) == (made, 1500, made)
