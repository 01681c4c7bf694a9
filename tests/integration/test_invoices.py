"""The billing service on the real stack: an upgrade's proration invoice charged once
(retried, raced), a declined upgrade leaving the plan, invoice reads with filters, pages and
tenancy, and the operators' void and pay-now.

Subscriptions are made through the signup API (a real card at the Stripe stand-in); every
charge is a PaymentIntent at localstripe, counted there and in the payment service.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from paywall import clients
from tests.conftest import Api
from tests.integration.test_signup import DECLINED_ON_CHARGE, card, register, signup_body

pytestmark = pytest.mark.integration

PARTNER = (
    "registrations:write customers:read subscriptions:read subscriptions:write "
    "payments:read payments:write invoices:read"
)
PROBLEMS = "https://paywall.dev/problems"


@pytest.fixture(scope="module")
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def partner(issue_token: Callable[..., str], tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(PARTNER, tenant)}"}


@pytest.fixture(scope="module")
def operator(issue_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token('operations internal invoices:read')}"}


def sql(api: Api, query: str, *params: Any) -> list[tuple[Any, ...]]:
    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def signup(api: Api, auth: dict[str, str], plan_id: str = "basic-monthly") -> dict[str, Any]:
    token = auth["Authorization"].removeprefix("Bearer ")
    resp = register(api, token, signup_body(api, plan_id=plan_id), str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def upgrade(
    api: Api, auth: dict[str, str], sub_id: str, plan_id: str, key: str | None
) -> httpx.Response:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    return httpx.post(
        f"{api.url}/v1/subscriptions/{sub_id}/change-plan",
        json={"plan_id": plan_id},
        headers=headers,
        timeout=60,
    )


def plan_of(api: Api, sub_id: str) -> str:
    return str(
        sql(api, "SELECT plan_id FROM subscription.subscriptions WHERE id = %s", sub_id)[0][0]
    )


def prorations(api: Api, sub_id: str) -> list[tuple[Any, ...]]:
    return sql(
        api,
        "SELECT id, status, total FROM billing.invoices WHERE subscription_id = %s "
        "AND kind = 'proration' ORDER BY created_at",
        sub_id,
    )


def payments_for(api: Api, invoice_id: Any) -> list[tuple[Any, ...]]:
    """The payment service's payments for an invoice (its attempts' keys name it)."""
    return sql(
        api,
        "SELECT status, amount FROM payment.payments WHERE idempotency_key LIKE %s",
        f"%|invoice:{invoice_id}:%",
    )


def intents_of(api: Api, customer_id: str) -> int:
    stripe_customer = sql(
        api, "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s", customer_id
    )[0][0]
    intents = clients.stripe_client(api.settings).v1.payment_intents.list(params={"limit": 100})
    return sum(1 for pi in intents.auto_paging_iter() if pi.customer == stripe_customer)


def open_invoice(api: Api, reg: dict[str, Any], tenant: str, amount: int = 900) -> str:
    """A renewal invoice as the billing run writes it (open, one line), not yet charged."""
    invoice_id = uuid.uuid4()
    start = datetime.now(UTC) + timedelta(days=40)
    sql(
        api,
        "INSERT INTO billing.invoices (id, subscription_id, customer_id, tenant_id, plan_id, "
        "kind, amount, subtotal, total, amount_due, currency, period_start, period_end, "
        "billing_date, status, finalized_at) VALUES (%s, %s, %s, %s, 'basic-monthly', "
        "'renewal', %s, %s, %s, %s, 'usd', %s, %s, current_date, 'open', now())",
        invoice_id,
        reg["subscription_id"],
        reg["customer_id"],
        tenant,
        amount,
        amount,
        amount,
        amount,
        start,
        start + timedelta(days=30),
    )
    sql(
        api,
        "INSERT INTO billing.invoice_lines (id, invoice_id, position, kind, description, "
        "plan_id, amount, period_start, period_end) SELECT gen_random_uuid(), id, 1, "
        "'subscription', plan_id, plan_id, amount, period_start, period_end "
        "FROM billing.invoices WHERE id = %s",
        invoice_id,
    )
    return str(invoice_id)


# -- proration, charged ----------------------------------------------------------------------


def test_an_upgrade_is_charged_once_and_its_invoice_shows_the_proration(
    api: Api, partner: dict[str, str], tenant: str
) -> None:
    reg = signup(api, partner)
    sub_id, key = reg["subscription_id"], str(uuid.uuid4())

    first = upgrade(api, partner, sub_id, "pro-monthly", key)
    assert first.status_code == 200, first.text
    proration = first.json()["proration"]
    assert plan_of(api, sub_id) == "pro-monthly"
    # Almost a whole month left: about the difference of the two plans, 2900 - 900.
    assert 1990 <= proration["amount_due"] <= 2000
    assert proration["charge"] - proration["credit"] == proration["amount_due"]

    again = upgrade(api, partner, sub_id, "pro-monthly", key)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["proration"] == proration

    [(invoice_id, status, total)] = prorations(api, sub_id)
    assert (str(invoice_id), status, total) == (
        proration["invoice_id"],
        "paid",
        proration["amount_due"],
    )
    assert payments_for(api, invoice_id) == [("succeeded", total)]
    assert intents_of(api, reg["customer_id"]) == 2  # the signup's, the upgrade's

    invoice = httpx.get(f"{api.url}/v1/invoices/{invoice_id}", headers=partner).json()
    assert (invoice["kind"], invoice["status"], invoice["tenant_id"]) == (
        "proration",
        "paid",
        tenant,
    )
    assert [(line["kind"], line["amount"]) for line in invoice["lines"]] == [
        ("proration_credit", -proration["credit"]),
        ("proration_charge", proration["charge"]),
    ]
    assert (
        invoice["subtotal"],
        invoice["total"],
        invoice["amount_paid"],
        invoice["amount_due"],
    ) == (
        total,
        total,
        total,
        0,
    )
    [attempt] = invoice["payment_attempts"]
    assert attempt["status"] == "succeeded" and attempt["payment_id"] == invoice["payment_id"]


def test_upgrades_after_the_periods_renewal_are_each_charged(
    api: Api, partner: dict[str, str], tenant: str
) -> None:
    """The period's own invoice (here the signup's first period, paid) and its prorations
    live side by side: the unique key is one invoice per period, prorations apart."""
    reg = signup(api, partner)
    sub_id = reg["subscription_id"]
    [(kind, status)] = sql(
        api,
        "SELECT i.kind, i.status FROM billing.invoices i JOIN subscription.subscriptions s "
        "ON s.id = i.subscription_id AND s.current_period_start = i.period_start "
        "WHERE s.id = %s",
        sub_id,
    )
    assert (kind, status) == ("first_period", "paid")

    first = upgrade(api, partner, sub_id, "pro-monthly", str(uuid.uuid4()))
    assert first.status_code == 200, first.text
    second = upgrade(api, partner, sub_id, "team-monthly", str(uuid.uuid4()))
    assert second.status_code == 200, second.text

    assert plan_of(api, sub_id) == "team-monthly"
    made = prorations(api, sub_id)
    assert [status for _, status, _ in made] == ["paid", "paid"]
    for invoice_id, _, total in made:
        assert payments_for(api, invoice_id) == [("succeeded", total)]
    assert intents_of(api, reg["customer_id"]) == 3  # the signup's and the two upgrades'


def test_two_racing_upgrades_charge_once(api: Api, partner: dict[str, str]) -> None:
    reg = signup(api, partner)
    sub_id = reg["subscription_id"]
    answers: list[httpx.Response] = []
    start = threading.Barrier(2)

    def race() -> None:
        start.wait()
        answers.append(upgrade(api, partner, sub_id, "team-monthly", str(uuid.uuid4())))

    threads = [threading.Thread(target=race) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409)
    assert loser.json()["type"] in (f"{PROBLEMS}/same-plan", f"{PROBLEMS}/proration-in-progress")
    [(invoice_id, status, total)] = prorations(api, sub_id)
    assert status == "paid" and payments_for(api, invoice_id) == [("succeeded", total)]
    assert plan_of(api, sub_id) == "team-monthly"
    assert intents_of(api, reg["customer_id"]) == 2


def test_a_declined_upgrade_keeps_the_plan_and_voids_its_invoice(
    api: Api, partner: dict[str, str]
) -> None:
    reg = signup(api, partner)
    sub_id, key = reg["subscription_id"], str(uuid.uuid4())
    swapped = httpx.post(
        f"{api.url}/v1/accounts/{reg['customer_id']}/payment-methods",
        json={"payment_method_id": card(api, DECLINED_ON_CHARGE)},
        headers=partner,
    )
    assert swapped.status_code == 200, swapped.text

    declined = upgrade(api, partner, sub_id, "pro-monthly", key)
    assert declined.status_code == 402, declined.text
    assert declined.headers["content-type"].startswith("application/problem+json")
    assert declined.json()["type"] == f"{PROBLEMS}/payment-declined"
    assert plan_of(api, sub_id) == "basic-monthly"
    [(invoice_id, status, _)] = prorations(api, sub_id)
    assert status == "void"

    again = upgrade(api, partner, sub_id, "pro-monthly", key)
    assert again.status_code == 402, again.text
    assert plan_of(api, sub_id) == "basic-monthly"
    assert [p[0] for p in payments_for(api, invoice_id)] == ["failed"]  # not asked twice
    events = sql(
        api,
        "SELECT type FROM billing.outbox WHERE aggregate_id = %s ORDER BY seq",
        str(invoice_id),
    )
    assert [e[0] for e in events] == [
        "invoice.created",
        "invoice.finalized",
        "invoice.payment_failed",
        "invoice.voided",
    ]


def test_a_downgrade_waits_for_the_period_end_and_charges_nothing(
    api: Api, partner: dict[str, str]
) -> None:
    reg = signup(api, partner, "pro-monthly")
    down = upgrade(api, partner, reg["subscription_id"], "basic-monthly", None)
    assert down.status_code == 200 and down.json()["effective"] == "period_end"
    assert prorations(api, reg["subscription_id"]) == []


# -- reads: filters, pages, tenancy ------------------------------------------------------------


def test_invoices_are_listed_by_filter_and_page_and_only_to_their_tenant(
    api: Api, partner: dict[str, str], tenant: str, issue_token: Callable[..., str]
) -> None:
    regs = [signup(api, partner) for _ in range(2)]
    # Each signup's first-period invoice, then a later renewal of each.
    firsts = [
        str(
            sql(
                api,
                "SELECT id FROM billing.invoices WHERE subscription_id = %s "
                "AND kind = 'first_period'",
                r["subscription_id"],
            )[0][0]
        )
        for r in regs
    ]
    made = [open_invoice(api, regs[0], tenant), open_invoice(api, regs[1], tenant)]
    ok = upgrade(api, partner, regs[1]["subscription_id"], "pro-monthly", None)
    assert ok.status_code == 200, ok.text
    made.append(ok.json()["proration"]["invoice_id"])

    def listed(auth: dict[str, str], **query: Any) -> list[str]:
        found, cursor = [], None
        while True:
            page = httpx.get(
                f"{api.url}/v1/invoices",
                params={**query, "limit": 1, **({"cursor": cursor} if cursor else {})},
                headers=auth,
            )
            assert page.status_code == 200, page.text
            found += [i["id"] for i in page.json()["data"]]
            cursor = page.json()["next_cursor"]
            if not cursor:
                return found

    everything = listed(partner)
    assert set(made) <= set(everything) and len(everything) == len(set(everything))
    assert listed(partner, customer_id=regs[0]["customer_id"]) == [made[0], firsts[0]]
    assert listed(partner, subscription_id=regs[1]["subscription_id"]) == [
        made[2],
        made[1],
        firsts[1],
    ]
    assert made[2] in listed(partner, status="paid") and made[0] not in listed(
        partner, status="paid"
    )
    # The upgrade's invoice covers the rest of this month; the renewals start in 40 days.
    next_month = (datetime.now(UTC) + timedelta(days=32)).isoformat()
    assert made[2] not in listed(partner, period_from=next_month)
    assert set(made[:2]) <= set(listed(partner, period_from=next_month))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert made[2] in listed(partner, period_to=tomorrow)
    assert not set(made[:2]) & set(listed(partner, period_to=tomorrow))

    other = {"Authorization": f"Bearer {issue_token(PARTNER, f'tenant-{uuid.uuid4().hex[:8]}')}"}
    assert listed(other, customer_id=regs[0]["customer_id"]) == []
    assert not set(made) & set(listed(other))
    for invoice_id in made:
        theirs = httpx.get(f"{api.url}/v1/invoices/{invoice_id}", headers=other)
        absent = httpx.get(f"{api.url}/v1/invoices/{uuid.uuid4()}", headers=other)
        assert theirs.status_code == absent.status_code == 404
        assert theirs.json()["type"] == absent.json()["type"] == f"{PROBLEMS}/not-found"
    bad = httpx.get(f"{api.url}/v1/invoices", params={"cursor": "nope"}, headers=partner)
    assert bad.status_code == 400 and bad.json()["type"] == f"{PROBLEMS}/bad-cursor"


# -- operators: void and pay now -----------------------------------------------------------------


def test_operators_pay_an_open_invoice_once_and_cannot_void_a_paid_one(
    api: Api, partner: dict[str, str], operator: dict[str, str], tenant: str
) -> None:
    reg = signup(api, partner)
    invoice_id = open_invoice(api, reg, tenant)
    pay = f"{api.url}/v1/invoices/{invoice_id}/pay"
    void = f"{api.url}/v1/invoices/{invoice_id}/void"

    refused = httpx.post(pay, headers={**partner, "Idempotency-Key": "k"})
    assert refused.status_code == 403
    no_key = httpx.post(pay, headers=operator)
    assert no_key.status_code == 400

    key = str(uuid.uuid4())
    paid = httpx.post(pay, headers={**operator, "Idempotency-Key": key}, timeout=60)
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["amount_paid"], paid.json()["amount_due"]) == (
        "paid",
        900,
        0,
    )
    again = httpx.post(pay, headers={**operator, "Idempotency-Key": key}, timeout=60)
    assert again.json()["status"] == "paid"
    other_key = httpx.post(pay, headers={**operator, "Idempotency-Key": str(uuid.uuid4())})
    assert other_key.json()["status"] == "paid"
    assert payments_for(api, invoice_id) == [("succeeded", 900)]
    assert len(again.json()["payment_attempts"]) == 1

    voided = httpx.post(void, headers={**operator, "Idempotency-Key": str(uuid.uuid4())})
    assert voided.status_code == 409, voided.text
    assert voided.json()["type"] == f"{PROBLEMS}/invoice-state"
    assert voided.json()["status_now"] == "paid"
    assert sql(api, "SELECT status FROM billing.invoices WHERE id = %s", invoice_id) == [("paid",)]


def test_operators_void_an_open_invoice_and_it_cannot_be_paid_after(
    api: Api, partner: dict[str, str], operator: dict[str, str], tenant: str
) -> None:
    reg = signup(api, partner)
    invoice_id = open_invoice(api, reg, tenant)
    void = f"{api.url}/v1/invoices/{invoice_id}/void"
    voided = httpx.post(void, headers={**operator, "Idempotency-Key": str(uuid.uuid4())})
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["amount_due"]) == ("void", 0)
    pay = httpx.post(
        f"{api.url}/v1/invoices/{invoice_id}/pay",
        headers={**operator, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert pay.status_code == 409 and pay.json()["status_now"] == "void"
    assert payments_for(api, invoice_id) == []
    events = sql(api, "SELECT type FROM billing.outbox WHERE aggregate_id = %s", invoice_id)
    assert [e[0] for e in events] == ["invoice.voided"]
