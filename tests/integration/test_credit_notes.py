"""Credit notes on the real stack: refunded once however often asked, never more than the
invoice brought in, kept as customer credit that the next invoices consume (never below
zero), and a prorated cancellation's refund of the unused time, once.

Each subscription is signed up through the API (a real card at the Stripe stand-in); its
period's invoice is written as the billing run writes one, then paid through the billing
service (a real PaymentIntent). Refunds are counted in the payment service and at
localstripe.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import psycopg
import pytest

from paywall import clients, pricing
from tests.conftest import Api
from tests.integration.test_billing import at, bill, move_period_end, resources
from tests.integration.test_signup import register, signup_body

pytestmark = pytest.mark.integration

PARTNER = (
    "registrations:write customers:read subscriptions:read subscriptions:write "
    "payments:read payments:write invoices:read invoices:write"
)
PROBLEMS = "https://paywall.dev/problems"
__all__ = ["resources"]  # the billing run's resources, a fixture of test_billing


@pytest.fixture(scope="module")
def partner(issue_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(PARTNER, f'tenant-{uuid.uuid4().hex[:8]}')}"}


@pytest.fixture(scope="module")
def operator(issue_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token('operations internal invoices:read')}"}


def sql(api: Api, query: str, *params: Any) -> list[tuple[Any, ...]]:
    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def signup(api: Api, auth: dict[str, str]) -> dict[str, Any]:
    token = auth["Authorization"].removeprefix("Bearer ")
    resp = register(api, token, signup_body(api, plan_id="basic-monthly"), str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def period_invoice(api: Api, sub_id: str, amount: int, *, offset_days: int = 0) -> str:
    """An open invoice of the subscription with one line, as the billing run writes it:
    for its current period (offset 0), or a later one."""
    invoice_id = str(uuid.uuid4())
    sql(
        api,
        "INSERT INTO billing.invoices (id, subscription_id, customer_id, tenant_id, plan_id, "
        "kind, amount, subtotal, total, amount_due, currency, period_start, period_end, "
        "billing_date, status, finalized_at) SELECT %s, id, customer_id::text, tenant_id, "
        "plan_id, 'renewal', %s, %s, %s, %s, 'usd', "
        "current_period_start + make_interval(days => %s), "
        "current_period_end + make_interval(days => %s), current_date, 'open', now() "
        "FROM subscription.subscriptions WHERE id = %s",
        invoice_id,
        *([amount] * 4),
        offset_days,
        offset_days,
        sub_id,
    )
    sql(
        api,
        "INSERT INTO billing.invoice_lines (id, invoice_id, position, kind, description, "
        "plan_id, amount, period_start, period_end) SELECT gen_random_uuid(), id, 1, "
        "'subscription', 'basic-monthly', plan_id, total, period_start, period_end "
        "FROM billing.invoices WHERE id = %s",
        invoice_id,
    )
    return invoice_id


def pay(api: Api, operator: dict[str, str], invoice_id: str) -> dict[str, Any]:
    resp = httpx.post(
        f"{api.url}/v1/invoices/{invoice_id}/pay",
        headers={**operator, "Idempotency-Key": str(uuid.uuid4())},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "paid", resp.text
    return dict(resp.json())


def paid_invoice(api: Api, partner: dict[str, str], operator: dict[str, str]) -> dict[str, Any]:
    """The invoice of a new subscription's current period, paid (900): its signup's
    first-period invoice, paid by the signup's charge."""
    reg = signup(api, partner)
    [(invoice_id,)] = sql(
        api,
        "SELECT id FROM billing.invoices WHERE subscription_id = %s AND kind = 'first_period'",
        reg["subscription_id"],
    )
    resp = httpx.get(f"{api.url}/v1/invoices/{invoice_id}", headers=operator)
    assert resp.status_code == 200, resp.text
    invoice: dict[str, Any] = resp.json()
    assert (invoice["status"], invoice["total"]) == ("paid", 900), invoice
    return invoice


def credit(
    url: str, auth: dict[str, str], invoice_id: str, key: str, **body: Any
) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/invoices/{invoice_id}/credit_notes",
        json=body,
        headers={**auth, "Idempotency-Key": key},
        timeout=120,
    )


def refunds_of(api: Api, invoice_id: str) -> list[tuple[str, int]]:
    """The payment service's refunds of the invoice's payment: (status, amount)."""
    return [
        (str(s), int(a))
        for s, a in sql(
            api,
            "SELECT r.status, r.amount FROM payment.refunds r JOIN billing.invoices i "
            "ON r.payment_id::text = i.payment_id WHERE i.id = %s ORDER BY r.created_at",
            invoice_id,
        )
    ]


def stripe_refunds(api: Api, invoice_id: str) -> int:
    [(intent,)] = sql(
        api,
        "SELECT p.stripe_payment_intent_id FROM payment.payments p JOIN billing.invoices i "
        "ON p.id::text = i.payment_id WHERE i.id = %s",
        invoice_id,
    )
    found = clients.stripe_client(api.settings).v1.refunds.list(
        params={"payment_intent": intent, "limit": 100}
    )
    return sum(1 for _ in found.auto_paging_iter())


def problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["type"] == f"{PROBLEMS}/{slug}", body
    return body


def test_a_credit_note_refunds_once_however_often_it_is_asked(
    api: Api, partner: dict[str, str], operator: dict[str, str]
) -> None:
    invoice = paid_invoice(api, partner, operator)
    key = str(uuid.uuid4())
    first = credit(api.url, partner, invoice["id"], key, amount=300, reason="duplicate")
    assert first.status_code == 201, first.text
    note = first.json()
    assert (note["status"], note["amount"], note["settlement"]) == ("issued", 300, "refund")
    assert note["refund_id"] and note["currency"] == "usd"

    again = credit(api.url, partner, invoice["id"], key, amount=300, reason="duplicate")
    assert again.status_code == 201 and again.json()["id"] == note["id"]
    assert again.headers["idempotent-replayed"] == "true"
    problem(credit(api.url, partner, invoice["id"], key, amount=200), 422, "idempotency-key-reused")

    assert refunds_of(api, invoice["id"]) == [("succeeded", 300)]
    assert stripe_refunds(api, invoice["id"]) == 1
    got = httpx.get(f"{api.url}/v1/credit_notes/{note['id']}", headers=partner)
    assert got.status_code == 200 and got.json() == note
    listed = httpx.get(
        f"{api.url}/v1/credit_notes", params={"invoice_id": invoice["id"]}, headers=partner
    )
    assert [n["id"] for n in listed.json()["data"]] == [note["id"]]


def test_a_note_beyond_what_the_invoice_brought_in_is_refused_and_changes_nothing(
    api: Api, partner: dict[str, str], operator: dict[str, str]
) -> None:
    invoice = paid_invoice(api, partner, operator)
    first = credit(api.url, partner, invoice["id"], str(uuid.uuid4()), amount=400)
    assert first.status_code == 201, first.text

    over = credit(api.url, partner, invoice["id"], str(uuid.uuid4()), amount=501)
    assert problem(over, 422, "credit-exceeds-invoice")["creditable"] == 500
    [line] = invoice["lines"]
    by_line = credit(
        api.url,
        partner,
        invoice["id"],
        str(uuid.uuid4()),
        lines=[{"invoice_line_id": line["id"], "amount": 600}],
    )
    assert problem(by_line, 422, "credit-exceeds-invoice")["creditable"] == 500
    assert refunds_of(api, invoice["id"]) == [("succeeded", 400)]

    rest = credit(api.url, partner, invoice["id"], str(uuid.uuid4()), reason="order_change")
    assert rest.status_code == 201 and rest.json()["amount"] == 500, rest.text
    nothing = credit(api.url, partner, invoice["id"], str(uuid.uuid4()), amount=1)
    assert problem(nothing, 422, "credit-exceeds-invoice")["creditable"] == 0
    assert refunds_of(api, invoice["id"]) == [("succeeded", 400), ("succeeded", 500)]
    assert stripe_refunds(api, invoice["id"]) == 2
    # Cursor pages, newest first, filtered by customer.
    query = {"customer_id": invoice["customer_id"], "limit": 1}
    first_page = httpx.get(f"{api.url}/v1/credit_notes", params=query, headers=partner).json()
    assert [n["id"] for n in first_page["data"]] == [rest.json()["id"]]
    query["cursor"] = first_page["next_cursor"]
    second_page = httpx.get(f"{api.url}/v1/credit_notes", params=query, headers=partner).json()
    assert [n["id"] for n in second_page["data"]] == [first.json()["id"]]
    assert second_page["next_cursor"] is None

    reg = signup(api, partner)
    unpaid = period_invoice(api, reg["subscription_id"], 900, offset_days=31)
    problem(credit(api.url, partner, unpaid, str(uuid.uuid4()), amount=100), 409, "invoice-state")
    [(notes,)] = sql(api, "SELECT count(*) FROM billing.credit_notes WHERE invoice_id = %s", unpaid)
    assert notes == 0


def test_customer_credit_is_consumed_by_the_next_invoices_and_never_below_zero(
    api: Api, partner: dict[str, str], operator: dict[str, str]
) -> None:
    invoice = paid_invoice(api, partner, operator)
    customer, sub = invoice["customer_id"], invoice["subscription_id"]
    [line] = invoice["lines"]
    kept = credit(
        api.url,
        partner,
        invoice["id"],
        str(uuid.uuid4()),
        lines=[{"invoice_line_id": line["id"], "amount": 500}],
        settlement="customer_balance",
        reason="product_unsatisfactory",
        memo="Outage on the 3rd",
    )
    assert kept.status_code == 201, kept.text
    assert kept.json()["lines"][0]["invoice_line_id"] == line["id"]
    assert refunds_of(api, invoice["id"]) == []
    balance = httpx.get(f"{api.url}/v1/customers/{customer}/balance", headers=partner)
    assert balance.json()["balances"] == {"usd": 500}

    # Smaller than the credit: nothing charged, nothing below zero, the rest kept.
    small = pay(api, operator, period_invoice(api, sub, 300, offset_days=31))
    assert (small["credit_applied"], small["amount_due"], small["amount_paid"]) == (300, 0, 0)
    assert small["payment_id"] is None
    balance = httpx.get(f"{api.url}/v1/customers/{customer}/balance", headers=partner)
    assert balance.json()["balances"] == {"usd": 200}

    # Larger: the rest of the credit, and the difference charged to the card.
    large = pay(api, operator, period_invoice(api, sub, 900, offset_days=62))
    assert (large["credit_applied"], large["amount_paid"], large["total"]) == (200, 700, 900)
    [(charged,)] = sql(
        api, "SELECT amount FROM payment.payments WHERE id::text = %s", large["payment_id"]
    )
    assert charged == 700
    page = httpx.get(f"{api.url}/v1/invoices/{large['id']}.html", headers=partner)
    assert "Customer credit applied" in page.text and "-2.00 USD" in page.text
    document = httpx.get(f"{api.url}/v1/invoices/{large['id']}.pdf", headers=partner)
    assert document.status_code == 200 and document.content.startswith(b"%PDF")
    balance = httpx.get(f"{api.url}/v1/customers/{customer}/balance", headers=partner)
    assert balance.json()["balances"] == {"usd": 0}


def test_cancel_with_prorate_refunds_the_unused_time_once(
    api: Api, partner: dict[str, str], operator: dict[str, str], issue_token: Callable[..., str]
) -> None:
    invoice = paid_invoice(api, partner, operator)
    sub_id = invoice["subscription_id"]
    canceled = httpx.post(
        f"{api.url}/v1/subscriptions/{sub_id}/cancel",
        json={"at_period_end": False, "prorate": True},
        headers=partner,
        timeout=120,
    )
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    [(note_id, amount, origin, status)] = sql(
        api,
        "SELECT id::text, amount, origin, status FROM billing.credit_notes WHERE invoice_id = %s",
        invoice["id"],
    )
    start = datetime.fromisoformat(invoice["period_start"])
    end = datetime.fromisoformat(invoice["period_end"])
    at = datetime.fromisoformat(canceled.json()["canceled_at"])
    assert (origin, status) == ("cancellation", "issued")
    assert amount == pricing.prorate(900, 0, start, end, at).credit
    assert refunds_of(api, invoice["id"]) == [("succeeded", amount)]

    # Asked again (the subscription service's retry, a moment later): the same note.
    internal = {"Authorization": f"Bearer {issue_token('invoices:write internal')}"}
    later = httpx.post(
        f"{api.url}/v1/cancellation_credits",
        json={
            "subscription_id": sub_id,
            "period_start": invoice["period_start"],
            "period_end": invoice["period_end"],
            "at": invoice["period_start"],
        },
        headers=internal,
        timeout=120,
    )
    assert later.status_code == 201 and later.json()["id"] == note_id, later.text
    again = httpx.post(
        f"{api.url}/v1/subscriptions/{sub_id}/cancel",
        json={"at_period_end": False, "prorate": True},
        headers=partner,
    )
    assert again.status_code == 409, again.text
    assert refunds_of(api, invoice["id"]) == [("succeeded", amount)]
    assert stripe_refunds(api, invoice["id"]) == 1


def test_prorate_at_the_period_end_refunds_nothing(
    api: Api, partner: dict[str, str], operator: dict[str, str]
) -> None:
    invoice = paid_invoice(api, partner, operator)
    resp = httpx.post(
        f"{api.url}/v1/subscriptions/{invoice['subscription_id']}/cancel",
        json={"at_period_end": True, "prorate": True},
        headers=partner,
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["cancel_at_period_end"]) == ("active", True)
    [(notes,)] = sql(
        api, "SELECT count(*) FROM billing.credit_notes WHERE invoice_id = %s", invoice["id"]
    )
    assert notes == 0 and refunds_of(api, invoice["id"]) == []


def test_the_billing_run_charges_a_renewal_less_the_customers_credit_once(
    api: Api, partner: dict[str, str], operator: dict[str, str], resources: dict[str, Any]
) -> None:
    invoice = paid_invoice(api, partner, operator)
    sub_id, customer = invoice["subscription_id"], invoice["customer_id"]
    key = str(uuid.uuid4())
    kept = credit(api.url, partner, invoice["id"], key, amount=500, settlement="customer_balance")
    assert kept.status_code == 201, kept.text
    day = date(2026, 8, 23)  # a billing day of this test's own
    move_period_end(api, sub_id, at(day))

    for _ in range(2):  # the same day again changes nothing
        bill(resources, day)
    [(renewal_id, status, total, applied, paid, payment_id)] = sql(
        api,
        "SELECT id::text, status, total, credit_applied, amount_paid, payment_id "
        "FROM billing.invoices WHERE subscription_id = %s AND period_start = %s",
        sub_id,
        at(day),
    )
    assert (status, total, applied, paid) == ("paid", 900, 500, 400)
    [(charged,)] = sql(api, "SELECT amount FROM payment.payments WHERE id::text = %s", payment_id)
    assert charged == 400
    balance = httpx.get(f"{api.url}/v1/customers/{customer}/balance", headers=partner)
    assert balance.json()["balances"] == {"usd": 0}
    [(consumed,)] = sql(
        api, "SELECT count(*) FROM billing.customer_balance WHERE invoice_id = %s", renewal_id
    )
    assert consumed == 1


def test_a_refunded_cancellation_whose_cancel_was_lost_is_canceled_by_the_sweep(
    api: Api, partner: dict[str, str], operator: dict[str, str], issue_token: Callable[..., str]
) -> None:
    """Billing refunded the unused time, then the subscription service's commit was lost
    (a crash): the subscription is still active. The recovery sweep cancels it, once."""
    invoice = paid_invoice(api, partner, operator)
    sub_id = invoice["subscription_id"]
    internal = {"Authorization": f"Bearer {issue_token('invoices:write internal')}"}
    refunded = httpx.post(
        f"{api.url}/v1/cancellation_credits",
        json={
            "subscription_id": sub_id,
            "period_start": invoice["period_start"],
            "period_end": invoice["period_end"],
            "at": datetime.now(UTC).isoformat(),
        },
        headers=internal,
        timeout=120,
    )
    assert refunded.status_code == 201, refunded.text
    [(status,)] = sql(api, "SELECT status FROM subscription.subscriptions WHERE id = %s", sub_id)
    assert status == "active"

    for _ in range(2):  # a second sweep finds nothing left to do for it
        swept = httpx.post(
            f"{api.url}/v1/operations/invoice-recovery",
            params={"older_than_seconds": 0},
            headers={"Authorization": f"Bearer {issue_token('operations internal')}"},
            timeout=120,
        )
        assert swept.status_code == 200, swept.text
    [(status,)] = sql(api, "SELECT status FROM subscription.subscriptions WHERE id = %s", sub_id)
    assert status == "canceled"
    [(pending,)] = sql(
        api, "SELECT pending_action FROM billing.credit_notes WHERE id = %s", refunded.json()["id"]
    )
    assert pending is None
    assert refunds_of(api, invoice["id"]) == [("succeeded", refunded.json()["amount"])]
