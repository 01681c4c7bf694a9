"""A billing run's charge batch is made, and its answer lost on the way back.

The run's payment-service calls go through a fault proxy that drops the answers to
`POST /v1/payment-batches` after the real service has charged every card in the batch.
The run sends the batch again with the same keys (the answer said nothing, so each charge
is asked again), and the payment service answers each from what it stored: one
PaymentIntent per invoice at the stand-in, every invoice paid once. When every answer of
the run is lost, the run cannot know: its invoices stay open with their attempts pending
(nothing is declined, no dunning) and the next run finds each charge made.

And mid-deploy, a payment service older than batches (404 to the batch) is an error for
each charge, never a decline: the invoices stay open, out of dunning, and the next run
charges each once.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from assets.billing import paced_payments
from assets.billing.assets import billing
from assets.shared.resources import Services
from tests.conftest import Api
from tests.faults.proxy import FaultProxy
from tests.integration.test_billing import (  # noqa: F401 (fixtures)
    invoices,
    resources,
    sql,
    token,
)
from tests.integration.test_billing_rate_limits import stripe_intents
from tests.integration.test_billing_shards import billed_once, due_on

pytestmark = pytest.mark.integration


def through(api_proxy: FaultProxy, resources: dict[str, Any]) -> Services:  # noqa: F811
    """The code location's services, the payment service behind the proxy, and one thread:
    the day's charges go in one batch."""
    settings = resources["services"].settings.model_copy(
        update={"payment_service_url": api_proxy.url, "billing_payment_concurrency": 1}
    )
    return Services(settings)


def intents_per_invoice(api: Api, subs: list[str]) -> list[int]:
    """PaymentIntents at the stand-in for each subscription's customer, less the signup's."""
    counts = []
    for sub in subs:
        [(stripe_customer,)] = sql(
            api,
            "SELECT a.stripe_customer_id FROM payment.accounts a JOIN subscription.subscriptions "
            "s ON s.customer_id::text = a.customer_id WHERE s.id = %s",
            sub,
        )
        counts.append(len(stripe_intents(api, stripe_customer)) - 1)
    return counts


def left_open(api: Api, subs: list[str]) -> None:
    """Each invoice open, its one attempt still pending (asked, no outcome), no dunning."""
    for sub in subs:
        [invoice] = invoices(api, sub)
        assert invoice["status"] == "open", invoice
        assert sql(
            api, "SELECT status FROM billing.attempts WHERE invoice_id = %s", invoice["id"]
        ) == [("pending",)]
    assert sql(
        api,
        "SELECT count(*) FROM billing.dunning d JOIN billing.invoices i ON i.id = d.invoice_id "
        "WHERE i.subscription_id::text = ANY(%s)",
        subs,
    ) == [(0,)]


def test_a_lost_batch_answer_is_asked_again_and_charges_each_invoice_once(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    api_proxy: FaultProxy,
) -> None:
    day = date(2019, 4, 2)
    subs = due_on(api, token, day, 3)
    lost = api_proxy.rule("POST", paced_payments.BATCHES, drop=1)

    run = billing(resources["database"], through(api_proxy, resources)).run(day)
    assert lost.matched == 2 and api_proxy.dropped == 1  # the batch, then its resend
    assert (run.errors, run.paid, run.charged) == (0, 3, 3), run.problems
    billed_once(api, subs, day)
    assert intents_per_invoice(api, subs) == [1, 1, 1]


def test_every_answer_lost_leaves_the_charges_pending_for_the_next_run(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    api_proxy: FaultProxy,
) -> None:
    day = date(2019, 5, 7)
    subs = due_on(api, token, day, 3)
    lost = api_proxy.rule("POST", paced_payments.BATCHES, drop=1000)

    run = billing(resources["database"], through(api_proxy, resources))
    # Two sends and no rest: what is asserted is which charges are made, not when.
    run.charges.payments.backoff = paced_payments.Backoff(attempts=2, rest_seconds=0)
    first = run.run(day)
    assert lost.matched == 2  # the batch and its one resend, both charged behind the proxy
    assert (first.paid, first.failed, first.errors) == (0, 0, 3), first.problems
    left_open(api, subs)
    assert intents_per_invoice(api, subs) == [1, 1, 1]  # made, though billing cannot know

    lost.drop = 0
    again = billing(resources["database"], through(api_proxy, resources)).run(day)
    assert (again.errors, again.paid) == (0, 3), again.problems
    billed_once(api, subs, day)
    assert intents_per_invoice(api, subs) == [1, 1, 1]


def test_a_payment_service_without_batches_declines_nothing(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day = date(2019, 6, 11)
    subs = due_on(api, token, day, 2)
    monkeypatch.setattr(paced_payments, "BATCHES", "/v1/payment-batches-not-yet-deployed")
    first = billing(resources["database"], resources["services"]).run(day)
    assert (first.paid, first.failed, first.errors) == (0, 0, 2), first.problems
    left_open(api, subs)
    assert intents_per_invoice(api, subs) == [0, 0]

    monkeypatch.undo()
    again = billing(resources["database"], resources["services"]).run(day)
    assert (again.errors, again.paid) == (0, 2), again.problems
    billed_once(api, subs, day)
    assert intents_per_invoice(api, subs) == [1, 1]
