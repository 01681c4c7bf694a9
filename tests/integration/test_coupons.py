"""Coupons, discounts and tax on the real stack (Postgres, the services over HTTP, the
Stripe stand-in, the Dagster billing run materialized in process).

Billing days are moved to as test_billing.py does (a subscription's period end set to a
past day; the run's "today" is the partition); a discount redeemed today is moved back to
start before those days the same way.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from dateutil.relativedelta import relativedelta

from paywall import clients
from streaming import contracts
from tests.conftest import Api
from tests.integration.test_billing import at, bill, move_period_end, resources, sql
from tests.integration.test_signup import register, signup_body

pytestmark = pytest.mark.integration
__all__ = ["resources"]  # the billing run's resources, a fixture of test_billing.py

PARTNER = (
    "registrations:write customers:read customers:write subscriptions:read "
    "subscriptions:write payments:read invoices:read coupons:read coupons:write "
    "tax_rates:read tax_rates:write"
)
PROBLEMS = "https://paywall.dev/problems"


@pytest.fixture(scope="module")
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def partner(issue_token: Callable[..., str], tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(PARTNER, tenant)}"}


def post(
    api: Api, path: str, auth: dict[str, str], body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {**auth, "Idempotency-Key": key or str(uuid.uuid4())}
    return httpx.post(f"{api.url}{path}", json=body, headers=headers, timeout=60)


def coupon(api: Api, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"code": f"C{uuid.uuid4().hex[:10]}", "name": "Test coupon", **fields}
    made = post(api, "/v1/coupons", auth, body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def signup(api: Api, auth: dict[str, str], **extra: Any) -> httpx.Response:
    token = auth["Authorization"].removeprefix("Bearer ")
    return register(api, token, signup_body(api, **extra), str(uuid.uuid4()))


def invoice_rows(api: Api, sub_id: str) -> list[dict[str, Any]]:
    rows = sql(
        api,
        "SELECT id, status, subtotal, discount, tax, total, amount_paid, tax_inclusive "
        # The billing run's: a signup's first-period invoice is the registration saga's.
        "FROM billing.invoices WHERE subscription_id = %s AND kind <> 'first_period' "
        "ORDER BY period_start",
        sub_id,
    )
    keys = ("id", "status", "subtotal", "discount", "tax", "total", "paid", "inclusive")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def charged(api: Api, customer_id: str) -> list[int]:
    rows = sql(
        api,
        "SELECT amount FROM payment.payments WHERE customer_id = %s ORDER BY created_at",
        customer_id,
    )
    return [r[0] for r in rows]


# -- the coupon API ------------------------------------------------------------------------


def test_coupons_are_made_once_per_key_paged_archived_and_the_tenants_own(
    api: Api, partner: dict[str, str], issue_token: Callable[..., str]
) -> None:
    body = {
        "code": f"P{uuid.uuid4().hex[:8]}",
        "name": "Ten off",
        "percent_off": 10,
        "duration": "forever",
    }
    key = str(uuid.uuid4())
    first = post(api, "/v1/coupons", partner, body, key)
    again = post(api, "/v1/coupons", partner, body, key)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = post(api, "/v1/coupons", partner, {**body, "percent_off": 20}, key)
    assert other.status_code == 422
    taken = post(api, "/v1/coupons", partner, body)
    assert taken.status_code == 409 and taken.json()["type"] == f"{PROBLEMS}/already-exists"
    for bad in (
        {**body, "amount_off": 100},  # both kinds of off
        {**body, "percent_off": 0},
        {**body, "duration": "repeating"},  # no periods
        {"code": "X", "name": "y", "amount_off": 100, "duration": "once"},  # no currency
    ):
        refused = post(api, "/v1/coupons", partner, bad)
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"].startswith("application/problem+json")

    made = [first.json()] + [
        coupon(api, partner, amount_off=500, currency="usd", duration="once") for _ in range(2)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{api.url}/v1/coupons", params=params, headers=partner).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(c["id"] for c in made)

    one = made[1]["id"]
    archived = post(api, f"/v1/coupons/{one}/archive", partner, {})
    assert archived.status_code == 200 and archived.json()["archived_at"]
    assert archived.json()["redeemable"] is False

    stranger = {"Authorization": f"Bearer {issue_token(PARTNER, f't-{uuid.uuid4().hex[:8]}')}"}
    assert httpx.get(f"{api.url}/v1/coupons/{one}", headers=stranger).status_code == 404
    assert post(api, f"/v1/coupons/{one}/archive", stranger, {}).status_code == 404
    assert httpx.get(f"{api.url}/v1/coupons", headers=stranger).json()["data"] == []


def test_two_redemptions_racing_for_the_last_slot_one_wins(
    api: Api, partner: dict[str, str]
) -> None:
    last = coupon(api, partner, percent_off=50, duration="once", max_redemptions=1)
    subs = [signup(api, partner).json()["subscription_id"] for _ in range(2)]
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(2)

    def redeem(sub_id: str) -> None:
        barrier.wait()
        answers.append(
            post(api, "/v1/discounts", partner, {"subscription_id": sub_id, "coupon": last["code"]})
        )

    threads = [threading.Thread(target=redeem, args=(s,)) for s in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [201, 422]
    refused = next(a for a in answers if a.status_code == 422)
    assert refused.json()["type"] == f"{PROBLEMS}/coupon-not-redeemable"
    assert sql(api, "SELECT times_redeemed FROM billing.coupons WHERE id = %s", last["id"]) == [
        (1,)
    ]
    assert sql(api, "SELECT count(*) FROM billing.discounts WHERE coupon_id = %s", last["id"]) == [
        (1,)
    ]


# -- discounts on invoices -------------------------------------------------------------------


def test_a_coupon_for_three_periods_discounts_exactly_three_invoices(
    api: Api, partner: dict[str, str], resources: dict[str, Any]
) -> None:
    three = coupon(api, partner, percent_off=25, duration="repeating", duration_periods=3)
    reg = signup(api, partner)
    assert reg.status_code == 201, reg.text
    sub_id = reg.json()["subscription_id"]
    made = post(api, "/v1/discounts", partner, {"subscription_id": sub_id, "coupon": three["code"]})
    assert made.status_code == 201, made.text
    discount = made.json()
    assert (discount["periods"], discount["periods_remaining"]) == (3, 3)

    first = date(2025, 6, 27)
    sql(api, "UPDATE billing.discounts SET start = %s WHERE id = %s", at(first), discount["id"])
    move_period_end(api, sub_id, at(first))
    for n in range(5):
        day = first + relativedelta(months=n)
        bill(resources, day)
        if n == 2:  # a re-run of a discounted day spends nothing more
            bill(resources, day)
    found = invoice_rows(api, sub_id)
    assert [(i["subtotal"], i["discount"], i["total"]) for i in found] == [
        (2900, 725, 2175)
    ] * 3 + [(2900, 0, 2900)] * 2
    assert all(i["status"] == "paid" and i["paid"] == i["total"] for i in found)
    # The discount line, and nothing charged but the totals.
    lines = sql(
        api,
        "SELECT kind, amount FROM billing.invoice_lines WHERE invoice_id = %s ORDER BY position",
        found[0]["id"],
    )
    assert lines == [("subscription", 2900), ("discount", -725)]
    assert charged(api, reg.json()["customer_id"]) == [2900, 2175, 2175, 2175, 2900, 2900]
    shown = httpx.get(f"{api.url}/v1/discounts/{discount['id']}", headers=partner).json()
    assert (shown["periods_used"], shown["periods_remaining"]) == (3, 0)
    # Its events are version 2 or later (invoice.paid is the latest), with the amounts and
    # the period.
    events = sql(
        api,
        "SELECT payload FROM billing.outbox WHERE aggregate_id = %s ORDER BY seq",
        str(found[0]["id"]),
    )
    for (envelope,) in events:
        contracts.validate(envelope)
        assert envelope["schema_version"] >= 2
    data = events[0][0]["data"]
    assert (data["subtotal"], data["discount"], data["tax"], data["total"]) == (2900, 725, 0, 2175)
    assert datetime.fromisoformat(data["period_start"]) == at(first)


def test_a_coupon_at_signup_discounts_the_first_charge(api: Api, partner: dict[str, str]) -> None:
    once = coupon(api, partner, amount_off=1000, currency="usd", duration="once")
    reg = signup(api, partner, coupon=once["code"])
    assert reg.status_code == 201, reg.text
    assert reg.json()["payment"]["amount"] == 1900
    assert charged(api, reg.json()["customer_id"]) == [1900]
    [(periods, used)] = sql(
        api,
        "SELECT d.periods, (SELECT count(*) FROM billing.discount_uses u "
        "WHERE u.discount_id = d.id) FROM billing.discounts d WHERE subscription_id = %s",
        reg.json()["subscription_id"],
    )
    assert (periods, used) == (1, 1)  # `once`: spent on the first charge


def test_an_expired_or_used_up_coupon_is_refused_before_anything_is_charged(
    api: Api, partner: dict[str, str]
) -> None:
    used_up = coupon(api, partner, percent_off=100, duration="once", max_redemptions=1)
    expired = coupon(api, partner, percent_off=10, duration="forever")
    sql(
        api,
        "UPDATE billing.coupons SET redeem_by = now() - interval '1 day' WHERE id = %s",
        expired["id"],
    )
    taker = signup(api, partner, coupon=used_up["code"])
    assert taker.status_code == 201, taker.text
    assert taker.json()["payment"] is None  # 100 % off: nothing to charge
    assert taker.json()["subscription_status"] == "active"

    for code in (used_up["code"], expired["code"], "NOSUCHCOUPON"):
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        refused = signup(api, partner, coupon=code, email=email)
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"] == f"{PROBLEMS}/coupon-not-redeemable"
        assert sql(api, "SELECT count(*) FROM customer.customers WHERE email = %s", email) == [(0,)]
    # Stripe saw no charge for any of them (nor for the free signup).
    intents = clients.stripe_client(api.settings).v1.payment_intents.list(params={"limit": 100})
    stripe_customers = {
        r[0]
        for r in sql(
            api,
            "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s",
            taker.json()["customer_id"],
        )
    }
    assert not [pi for pi in intents.auto_paging_iter() if pi.customer in stripe_customers]


# -- tax -------------------------------------------------------------------------------------


def test_taxed_invoices_exclusive_and_inclusive_with_tax_per_line(
    api: Api, partner: dict[str, str], resources: dict[str, Any]
) -> None:
    for rate in (
        {
            "country": "US",
            "region": "CA",
            "percentage": 7.25,
            "inclusive": False,
            "display_name": "CA sales tax",
        },
        {"country": "US", "percentage": 5, "inclusive": False, "display_name": "US tax"},
        {"country": "DE", "percentage": 19, "inclusive": True, "display_name": "MwSt."},
    ):
        made = post(api, "/v1/tax-rates", partner, rate)
        assert made.status_code == 201, made.text
    again = post(
        api,
        "/v1/tax-rates",
        partner,
        {"country": "DE", "percentage": 7, "inclusive": True, "display_name": "x"},
    )
    assert again.status_code == 409  # one live rate per place
    half = coupon(api, partner, percent_off=50, duration="forever")

    ca = signup(api, partner, address={"country": "US", "region": "CA"})
    de = signup(api, partner, address={"country": "DE"}, coupon=half["code"])
    for reg in (ca, de):
        assert reg.status_code == 201, reg.text
    # The first charges: 29.00 + 7.25 % = 31.10; 50 % off 29.00 with 19 % inside = 14.50.
    assert charged(api, ca.json()["customer_id"]) == [3110]
    assert charged(api, de.json()["customer_id"]) == [1450]

    day = date(2025, 6, 19)
    for reg in (ca, de):
        move_period_end(api, reg.json()["subscription_id"], at(day))
    sql(
        api,
        "UPDATE billing.discounts SET start = %s WHERE subscription_id = %s",
        at(day) - timedelta(days=31),
        de.json()["subscription_id"],
    )
    bill(resources, day)

    [exclusive] = invoice_rows(api, ca.json()["subscription_id"])
    assert (exclusive["subtotal"], exclusive["tax"], exclusive["total"]) == (2900, 210, 3110)
    assert exclusive["inclusive"] is False and exclusive["paid"] == 3110
    [inclusive] = invoice_rows(api, de.json()["subscription_id"])
    # 14.50 net of the discount, 19 % of it inside: 14.50 * 19 / 119 = 2.3151… → 2.32.
    assert (inclusive["subtotal"], inclusive["discount"], inclusive["tax"]) == (2900, 1450, 232)
    assert inclusive["total"] == 1450 and inclusive["inclusive"] is True

    shown = httpx.get(f"{api.url}/v1/invoices/{inclusive['id']}", headers=partner).json()
    assert [(line["kind"], line["amount"], line["tax_amount"]) for line in shown["lines"]] == [
        ("subscription", 2900, 464),
        ("discount", -1450, -232),
    ]
    assert shown["tax_inclusive"] is True

    page = httpx.get(f"{api.url}/v1/invoices/{inclusive['id']}.html", headers=partner)
    assert page.status_code == 200
    for text in (
        "Discount: Test coupon",
        "-14.50 USD",
        "Tax (included in the prices)",
        "2.32 USD",
        "4.64 USD",
    ):
        assert text in page.text, text
    from tests.integration.test_invoice_documents import pdf_text

    document = httpx.get(f"{api.url}/v1/invoices/{exclusive['id']}.pdf", headers=partner)
    assert document.status_code == 200
    drawn = pdf_text(document.content)
    for text in ("2.10 USD", "31.10 USD", "Tax"):
        assert text.encode() in drawn, text


def test_a_customer_address_is_kept_and_validated(api: Api, partner: dict[str, str]) -> None:
    body = {
        "email": f"{uuid.uuid4().hex[:10]}@example.com",
        "name": "Ada",
        "address": {"country": "FR"},
    }
    made = httpx.post(f"{api.url}/v1/customers", json=body, headers=partner)
    assert made.status_code == 201, made.text
    assert made.json()["address"] == {"country": "FR", "region": None}
    moved = httpx.patch(
        f"{api.url}/v1/customers/{made.json()['id']}",
        json={"address": {"country": "US", "region": "NY"}},
        headers=partner,
    )
    assert moved.status_code == 200 and moved.json()["address"]["region"] == "NY"
    bad = httpx.post(
        f"{api.url}/v1/customers", json={**body, "address": {"country": "france"}}, headers=partner
    )
    assert bad.status_code == 422


# -- the CLI ---------------------------------------------------------------------------------


def test_the_cli_creates_lists_and_archives_a_tenants_coupons(
    api: Api, cli_env: dict[str, str], partner: dict[str, str], tenant: str
) -> None:
    from tests.integration.test_admin import paywall

    code = f"CLI{uuid.uuid4().hex[:6]}"
    made = paywall(
        cli_env, "coupons", "create", code, "--tenant", tenant, "--percent-off", "15",
        "--duration", "repeating", "--periods", "3", "--max-redemptions", "10", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    [coupon_made] = json.loads(made.stdout)
    assert (coupon_made["percent_off"], coupon_made["duration_periods"]) == (15.0, 3)
    # The partner sees it through the API: the same coupon, its tenant's.
    shown = httpx.get(f"{api.url}/v1/coupons/{coupon_made['id']}", headers=partner)
    assert shown.status_code == 200 and shown.json()["code"] == code

    listed = paywall(cli_env, "coupons", "list", "--tenant", tenant, "--json")
    assert code in [c["code"] for c in json.loads(listed.stdout)]
    dup = paywall(cli_env, "coupons", "create", code, "--tenant", tenant, "--percent-off", "5")
    assert dup.returncode != 0 and "exists" in dup.stderr and "Traceback" not in dup.stderr
    bad = paywall(cli_env, "coupons", "create", "X1", "--tenant", tenant, "--duration", "once")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr

    archived = paywall(cli_env, "coupons", "archive", coupon_made["id"])
    assert archived.returncode == 0, archived.stderr
    assert (
        httpx.get(f"{api.url}/v1/coupons/{coupon_made['id']}", headers=partner).json()["redeemable"]
        is False
    )


def test_an_upgrade_proration_is_taxed_and_percent_discounted(
    api: Api, issue_token: Callable[..., str]
) -> None:
    from tests.integration.test_invoices import upgrade

    own = f"tenant-{uuid.uuid4().hex[:8]}"  # a tenant of its own: its rate is the only one
    auth = {"Authorization": f"Bearer {issue_token(PARTNER, own)}"}
    rate = {"country": "GB", "percentage": 20, "inclusive": False, "display_name": "VAT"}
    assert post(api, "/v1/tax-rates", auth, rate).status_code == 201
    tenth = coupon(api, auth, percent_off=10, duration="forever")
    reg = signup(api, auth, plan_id="basic-monthly", address={"country": "GB"},
                 coupon=tenth["code"])  # fmt: skip
    assert reg.status_code == 201, reg.text
    assert charged(api, reg.json()["customer_id"]) == [972]  # 9.00 - 0.90 + 20 %

    changed = upgrade(api, auth, reg.json()["subscription_id"], "pro-monthly", str(uuid.uuid4()))
    assert changed.status_code == 200, changed.text
    invoice_id = changed.json()["proration"]["invoice_id"]
    invoice = httpx.get(f"{api.url}/v1/invoices/{invoice_id}", headers=auth).json()
    net = invoice["subtotal"] - invoice["discount"]
    assert invoice["subtotal"] > 0
    assert invoice["discount"] == (invoice["subtotal"] * 1000 * 2 + 10000) // 20000
    assert invoice["tax"] == (net * 2000 * 2 + 10000) // 20000
    assert invoice["total"] == net + invoice["tax"] == invoice["amount_paid"]
    assert [line["kind"] for line in invoice["lines"]] == [
        "proration_credit",
        "proration_charge",
        "discount",
    ]
    assert sum(line["tax_amount"] for line in invoice["lines"]) == invoice["tax"]
    assert charged(api, reg.json()["customer_id"])[-1] == invoice["total"]
