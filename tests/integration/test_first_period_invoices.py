"""A signup's first charge is its first period's invoice: paid by that charge, with the
coupon's discount and the tax as lines, made once however often the saga asks, with its
invoice.* events; none for a trial; and a prorated cancellation in the first period refunds
the unused time as a credit note on it.

Signups go through the API (a real card at the Stripe stand-in); money is counted in the
payment service and at localstripe.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from paywall import clients, pricing
from streaming import contracts
from tests.conftest import Api
from tests.integration.test_billing import move_period_end
from tests.integration.test_signup import register, signup_body

pytestmark = pytest.mark.integration

PARTNER = (
    "registrations:write customers:read subscriptions:read subscriptions:write "
    "payments:read invoices:read invoices:write coupons:read coupons:write "
    "tax_rates:read tax_rates:write"
)
PROBLEMS = "https://paywall.dev/problems"


@pytest.fixture(scope="module")
def partner(issue_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(PARTNER, f'tenant-{uuid.uuid4().hex[:8]}')}"}


@pytest.fixture(scope="module")
def internal(issue_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token('invoices:write invoices:read internal')}"}


def sql(api: Api, query: str, *params: Any) -> list[tuple[Any, ...]]:
    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def signup(api: Api, auth: dict[str, str], **extra: Any) -> dict[str, Any]:
    token = auth["Authorization"].removeprefix("Bearer ")
    resp = register(api, token, signup_body(api, **extra), str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def first_period(api: Api, auth: dict[str, str], sub_id: str) -> list[dict[str, Any]]:
    """The subscription's first-period invoices, as the API shows them."""
    page = httpx.get(f"{api.url}/v1/invoices", params={"subscription_id": sub_id}, headers=auth)
    assert page.status_code == 200, page.text
    return [i for i in page.json()["data"] if i["kind"] == "first_period"]


def events(api: Api, invoice_id: str) -> list[dict[str, Any]]:
    return [
        row[0]
        for row in sql(
            api,
            "SELECT payload FROM billing.outbox WHERE aggregate_id = %s ORDER BY seq",
            invoice_id,
        )
    ]


def payments_of(api: Api, customer_id: str) -> list[tuple[str, int, int]]:
    """(status, amount, amount refunded) of the customer's payments."""
    return [
        (str(s), int(a), int(r))
        for s, a, r in sql(
            api,
            "SELECT status, amount, amount_refunded FROM payment.payments "
            "WHERE customer_id = %s ORDER BY created_at",
            customer_id,
        )
    ]


def stripe_intents(api: Api, customer_id: str) -> int:
    [(stripe_customer,)] = sql(
        api, "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s", customer_id
    )
    intents = clients.stripe_client(api.settings).v1.payment_intents.list(params={"limit": 100})
    return sum(1 for pi in intents.auto_paging_iter() if pi.customer == stripe_customer)


def ask_again(api: Api, auth: dict[str, str], invoice: dict[str, Any], **changes: Any) -> Any:
    """What the saga sends billing for the invoice's charge (a resumed saga's request)."""
    [(plan_amount,)] = sql(
        api,
        "SELECT amount FROM billing.invoice_lines WHERE invoice_id = %s AND kind = 'subscription'",
        invoice["id"],
    )
    body = {
        "subscription_id": invoice["subscription_id"],
        "customer_id": invoice["customer_id"],
        "tenant_id": invoice["tenant_id"],
        "plan_id": invoice["plan_id"],
        "amount": plan_amount,
        "currency": invoice["currency"],
        "period_start": invoice["period_start"],
        "period_end": invoice["period_end"],
        "payment_id": invoice["payment_id"],
        "charged": invoice["amount_paid"],
        **changes,
    }
    return httpx.post(f"{api.url}/v1/first_period_invoices", json=body, headers=auth, timeout=60)


def test_a_paid_signup_has_one_first_period_invoice_paid_by_its_charge(
    api: Api, partner: dict[str, str], internal: dict[str, str]
) -> None:
    reg = signup(api, partner, plan_id="basic-monthly")
    [invoice] = first_period(api, partner, reg["subscription_id"])
    payment = reg["payment"]
    assert (invoice["status"], invoice["currency"], invoice["plan_id"]) == (
        "paid",
        "usd",
        "basic-monthly",
    )
    assert invoice["payment_id"] == payment["id"] and payment["amount"] == 900
    assert (invoice["subtotal"], invoice["discount"], invoice["tax"], invoice["total"]) == (
        900,
        0,
        0,
        900,
    )
    assert (invoice["amount_paid"], invoice["amount_due"]) == (900, 0)
    assert [(line["kind"], line["amount"]) for line in invoice["lines"]] == [("subscription", 900)]
    [attempt] = invoice["payment_attempts"]
    assert (attempt["status"], attempt["payment_id"]) == ("succeeded", payment["id"])
    [(start, end)] = sql(
        api,
        "SELECT current_period_start, current_period_end FROM subscription.subscriptions "
        "WHERE id = %s",
        reg["subscription_id"],
    )
    assert datetime.fromisoformat(invoice["period_start"]) == start
    assert datetime.fromisoformat(invoice["period_end"]) == end

    # Its events, in order, each valid against its contract (version 3 knows the kind).
    made = events(api, invoice["id"])
    assert [e["event_type"] for e in made] == [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
    ]
    for envelope in made:
        contracts.validate(envelope)
        assert envelope["schema_version"] == 3 and envelope["data"]["kind"] == "first_period"
    assert made[0]["data"]["status"] == "open" and made[0]["data"]["amount_due"] == 900
    assert made[2]["data"]["status"] == "paid" and made[2]["data"]["payment_id"] == payment["id"]

    # Asked again for the same charge (a resumed saga): the same invoice, nothing more.
    again = ask_again(api, internal, invoice)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == invoice["id"]
    assert again.headers["idempotent-replayed"] == "true"
    # For another charge: refused, the first period has its invoice.
    other = ask_again(api, internal, invoice, payment_id=str(uuid.uuid4()))
    assert other.status_code == 409, other.text
    assert other.json()["type"] == f"{PROBLEMS}/already-exists"
    assert len(first_period(api, partner, reg["subscription_id"])) == 1
    assert len(events(api, invoice["id"])) == 3
    assert payments_of(api, reg["customer_id"]) == [("succeeded", 900, 0)]
    # Only billing's own callers may ask, and a bad body is refused with nothing made.
    assert ask_again(api, partner, invoice).status_code == 403
    for bad in ({"charged": -1}, {"currency": "XYZ"}, {"amount": 10**12}):
        assert ask_again(api, internal, invoice, **bad).status_code == 422, bad
    assert len(first_period(api, partner, reg["subscription_id"])) == 1


def test_the_coupon_and_tax_of_a_signup_are_lines_of_its_first_period_invoice(
    api: Api, partner: dict[str, str]
) -> None:
    headers = {**partner, "Idempotency-Key": str(uuid.uuid4())}
    rate = {
        "country": "US",
        "region": "CA",
        "percentage": 7.25,
        "inclusive": False,
        "display_name": "CA sales tax",
    }
    made = httpx.post(f"{api.url}/v1/tax-rates", json=rate, headers=headers)
    assert made.status_code == 201, made.text
    code = f"C{uuid.uuid4().hex[:10]}"
    coupon = {"code": code, "name": "Quarter off", "percent_off": 25, "duration": "once"}
    headers = {**partner, "Idempotency-Key": str(uuid.uuid4())}
    made = httpx.post(f"{api.url}/v1/coupons", json=coupon, headers=headers)
    assert made.status_code == 201, made.text

    reg = signup(api, partner, coupon=code, address={"country": "US", "region": "CA"})
    [invoice] = first_period(api, partner, reg["subscription_id"])
    # 29.00 less 25 % = 21.75, and 7.25 % of it added: 1.58 (half up); what was charged.
    assert (invoice["subtotal"], invoice["discount"], invoice["tax"]) == (2900, 725, 158)
    assert invoice["total"] == invoice["amount_paid"] == reg["payment"]["amount"] == 2333
    assert invoice["tax_inclusive"] is False
    assert [(line["kind"], line["amount"]) for line in invoice["lines"]] == [
        ("subscription", 2900),
        ("discount", -725),
    ]
    assert sum(line["tax_amount"] for line in invoice["lines"]) == 158
    # The coupon's one period is spent on this invoice.
    [(used_by,)] = sql(
        api,
        "SELECT u.invoice_id::text FROM billing.discount_uses u JOIN billing.discounts d "
        "ON d.id = u.discount_id WHERE d.subscription_id = %s",
        reg["subscription_id"],
    )
    assert used_by == invoice["id"]


def test_a_trial_signup_has_no_first_period_invoice(api: Api, partner: dict[str, str]) -> None:
    reg = signup(api, partner, trial=True)
    assert reg["subscription_status"] == "trialing" and reg["payment"] is None
    [(count,)] = sql(
        api,
        "SELECT count(*) FROM billing.invoices WHERE subscription_id = %s",
        reg["subscription_id"],
    )
    assert count == 0


def test_a_prorated_cancel_in_the_first_period_refunds_the_unused_time(
    api: Api, partner: dict[str, str]
) -> None:
    reg = signup(api, partner, plan_id="basic-monthly")
    sub_id = reg["subscription_id"]
    # Signed up a month before the period's end, 20 days from now: about 2/3 is unused.
    move_period_end(api, sub_id, datetime.now(UTC) + timedelta(days=20))
    [invoice] = first_period(api, partner, sub_id)
    canceled = httpx.post(
        f"{api.url}/v1/subscriptions/{sub_id}/cancel",
        json={"at_period_end": False, "prorate": True},
        headers=partner,
        timeout=120,
    )
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"

    [(note_id, amount, origin, status, settlement)] = sql(
        api,
        "SELECT id::text, amount, origin, status, settlement FROM billing.credit_notes "
        "WHERE invoice_id = %s",
        invoice["id"],
    )
    start = datetime.fromisoformat(invoice["period_start"])
    end = datetime.fromisoformat(invoice["period_end"])
    at = datetime.fromisoformat(canceled.json()["canceled_at"])
    assert (origin, status, settlement) == ("cancellation", "issued", "refund")
    assert amount == pricing.prorate(900, 0, start, end, at).credit and 550 < amount < 650
    # Refunded once, on the signup's charge: the invoice's money and the payment's agree.
    assert payments_of(api, reg["customer_id"]) == [("partially_refunded", 900, amount)]
    assert stripe_intents(api, reg["customer_id"]) == 1
    note = httpx.get(f"{api.url}/v1/credit_notes/{note_id}", headers=partner)
    assert note.status_code == 200 and note.json()["refund_id"], note.text
    # The second cancel is refused and refunds nothing more.
    again = httpx.post(
        f"{api.url}/v1/subscriptions/{sub_id}/cancel",
        json={"at_period_end": False, "prorate": True},
        headers=partner,
    )
    assert again.status_code == 409, again.text
    assert payments_of(api, reg["customer_id"]) == [("partially_refunded", 900, amount)]


def test_a_signup_a_coupon_leaves_nothing_to_charge_has_a_paid_zero_invoice(
    api: Api, partner: dict[str, str]
) -> None:
    code = f"C{uuid.uuid4().hex[:10]}"
    coupon = {"code": code, "name": "Free month", "percent_off": 100, "duration": "once"}
    headers = {**partner, "Idempotency-Key": str(uuid.uuid4())}
    made = httpx.post(f"{api.url}/v1/coupons", json=coupon, headers=headers)
    assert made.status_code == 201, made.text

    reg = signup(api, partner, coupon=code)
    assert reg["subscription_status"] == "active" and reg["payment"] is None
    [invoice] = first_period(api, partner, reg["subscription_id"])
    # The discount shown, nothing charged: no payment, no attempt, paid at zero.
    assert (invoice["status"], invoice["subtotal"], invoice["discount"], invoice["total"]) == (
        "paid",
        2900,
        2900,
        0,
    )
    assert invoice["payment_id"] == f"free:{reg['subscription_id']}"
    assert invoice["payment_attempts"] == []
    assert payments_of(api, reg["customer_id"]) == []
    paid = events(api, invoice["id"])[-1]
    contracts.validate(paid)
    assert paid["event_type"] == "invoice.paid" and paid["data"]["payment_id"] is None


def test_a_charge_the_terms_no_longer_price_is_invoiced_as_charged(
    api: Api, partner: dict[str, str], internal: dict[str, str]
) -> None:
    """The saga's charge is the fact: if the plan's terms price the period otherwise by the
    time billing records it (a rate or address changed since the quote), the invoice says
    what was charged, so billing's figures still equal the payment's."""
    reg = signup(api, partner, plan_id="basic-monthly")
    [invoice] = first_period(api, partner, reg["subscription_id"])
    sub_id, payment_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = {**invoice, "subscription_id": sub_id, "payment_id": payment_id, "amount_paid": 850}
    made = ask_again(api, internal, body)
    assert made.status_code == 201, made.text
    shown = made.json()
    assert (shown["subtotal"], shown["discount"], shown["tax"], shown["total"]) == (850, 0, 0, 850)
    assert (shown["amount_paid"], shown["payment_id"]) == (850, payment_id)
    assert [(line["kind"], line["amount"]) for line in shown["lines"]] == [("subscription", 850)]
