"""Billing runs against a Stripe that rate limits: each invoice charged once, none declined.

The Stripe stand-in answers 429 on demand (paywall/stack/stripe_rate_limit.py), as Stripe
does past an account's limit: with `Stripe-Should-Retry: true`, which stripe-python in the
payment service retries itself a couple of times, and without it, which it does not. The
billing run is the Dagster asset over the real services, localstripe and Redis.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from dagster import DagsterEventType, materialize

from assets.billing.assets import billing_run
from assets.billing.paced_payments import Answered, Backoff, Charge, PacedPayments
from assets.billing.pacing import Pace, Unpaced
from paywall import clients
from paywall.settings import Settings
from paywall.stack.process import free_port
from tests.conftest import Api
from tests.integration.test_billing import (  # noqa: F401  (fixtures)
    at,
    invoices,
    move_period_end,
    resources,
    signup,
    sql,
    token,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def stripe_limits(api: Api) -> Iterator[Callable[..., dict[str, Any]]]:
    """Configure the stand-in's 429s; cleared after the test."""
    url = f"{api.settings.stripe_api_base}/_config/rate_limit"

    def configure(**asked: Any) -> dict[str, Any]:
        resp = httpx.post(url, json=asked) if asked else httpx.get(url)
        resp.raise_for_status()
        return dict(resp.json())

    yield configure
    configure(per_second=None, next=0)


def bill_in_one_go(given: dict[str, Any], day: date) -> dict[str, Any]:
    """The day's run, which must not fail and be retried whole by Dagster's retry policy
    (30 s later, three times at most): a busy Stripe is waited out within the run."""
    result = materialize(
        [billing_run], partition_key=day.isoformat(), resources=given, raise_on_error=False
    )
    retried = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert result.success and not retried, [e.message for e in retried]
    mat = result.asset_materializations_for_node("billing_run")[0]
    return {k: v.value for k, v in mat.metadata.items()}


def stripe_intents(api: Api, stripe_customer: str) -> list[dict[str, Any]]:
    """Every PaymentIntent the stand-in holds for one Stripe customer."""
    page = clients.stripe_client(api.settings).v1.payment_intents.list(params={"limit": 100})
    return [pi.to_dict() for pi in page.auto_paging_iter() if pi.customer == stripe_customer]


# Three invoices charged at once. How many 429s: more than the three charges can meet
# without billing's backoff (each is then three calls to the payment service, and each of
# those one Stripe request, or three with stripe-python's own retries), so that a run
# without it cannot pass; and fewer than one charge can meet with it (10 calls) once each
# of the three has met its first, whichever charge the rest fall on.
@pytest.mark.parametrize(
    ("day", "busy"),
    [
        # Marked retryable: stripe-python retries each twice itself, and then the payment
        # service answers 503 and billing must come back for it.
        (date(2026, 10, 5), {"next": 28, "should_retry": True, "retry_after": 1}),
        # A bare 429: stripe-python gives up at once; only billing's backoff retries it.
        (date(2026, 10, 6), {"next": 10}),
        # Not a 429 but marked retryable (a lock timeout): not a refusal, nor a decline.
        (date(2026, 10, 7), {"next": 28, "status": 400, "should_retry": True}),
    ],
    ids=["stripe-should-retry", "bare-429", "should-retry-400"],
)
def test_a_billing_run_hitting_429s_charges_each_invoice_once(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    stripe_limits: Callable[..., dict[str, Any]],
    day: date,
    busy: dict[str, Any],
) -> None:
    regs = [signup(api, token) for _ in range(3)]
    for reg in regs:
        move_period_end(api, reg["subscription_id"], at(day))
    before = stripe_limits()["answered"].get("/v1/payment_intents", 0)
    stripe_limits(method="POST", path="/v1/payment_intents", **busy)

    counts = bill_in_one_go(resources, day)

    report = stripe_limits()
    # Stripe really was busy: every 429 asked for was answered to a charge.
    assert report["queued"] == 0
    assert report["answered"]["/v1/payment_intents"] - before == busy["next"]
    # (The day may also retry other tests' declined cards: only ours are checked below.)
    assert counts["errors"] == 0
    for reg in regs:
        [invoice] = invoices(api, reg["subscription_id"])
        # Paid on its first attempt: a 429 is neither a decline nor an attempt of its own.
        assert (invoice["status"], invoice["attempts"]) == ("paid", 1)
        assert sql(
            api, "SELECT status FROM billing.attempts WHERE invoice_id = %s", invoice["id"]
        ) == [("succeeded",)]
        assert sql(
            api, "SELECT count(*) FROM billing.dunning WHERE invoice_id = %s", invoice["id"]
        ) == [(0,)]
        payments = sql(
            api,
            "SELECT id::text, status, stripe_payment_intent_id FROM payment.payments "
            "WHERE metadata->>'invoice_id' = %s",
            str(invoice["id"]),
        )
        assert [(p[1]) for p in payments] == ["succeeded"]
        [(payment_id, _, intent_id)] = payments
        # At Stripe: the signup's charge and this one, nothing more.
        [(stripe_customer,)] = sql(
            api,
            "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s",
            reg["customer_id"],
        )
        intents = stripe_intents(api, stripe_customer)
        assert len(intents) == 2
        [renewal] = [pi for pi in intents if pi["metadata"].get("payment_id") == payment_id]
        assert (renewal["id"], renewal["status"], renewal["amount"]) == (
            intent_id,
            "succeeded",
            invoice["amount"],
        )


def test_a_processor_busy_to_the_last_attempt_leaves_the_charge_for_the_next_run(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    stripe_limits: Callable[..., dict[str, Any]],
) -> None:
    regs = [signup(api, token) for _ in range(2)]
    services = resources["services"]
    pace = Pace.of(services.settings)
    keys = [f"test-busy:{uuid.uuid4()}" for _ in regs]

    def body(reg: dict[str, Any]) -> dict[str, Any]:
        return {"customer_id": reg["customer_id"], "amount": 2900, "currency": "usd"}

    def stored(key: str) -> list[tuple[Any, ...]]:
        return sql(
            api,
            "SELECT status, stripe_payment_intent_id FROM payment.payments "
            "WHERE idempotency_key LIKE %s",
            "%|" + key,
        )

    stripe_limits(method="POST", path="/v1/payment_intents", next=1000)
    # A short backoff, and a rest longer than the test: what is asserted is which calls
    # reach Stripe, not when.
    run = PacedPayments(
        services.payment,
        pace,
        Backoff(attempts=2, base_seconds=0.05, max_seconds=0.1, rest_seconds=3600),
    )
    [busy] = run.create([Charge(body(regs[0]), keys[0])])
    assert isinstance(busy, Answered) and busy.status == 503  # busy to its last attempt
    met = stripe_limits()["answered"]["/v1/payment_intents"]
    [rested] = run.create([Charge(body(regs[1]), keys[1])])
    assert isinstance(rested, Answered) and rested.status == 503  # the next charge rests...
    assert stripe_limits()["answered"]["/v1/payment_intents"] == met  # ...without asking
    assert stored(keys[0]) == [("pending", None)]  # neither charged nor declined
    assert stored(keys[1]) == []

    stripe_limits(next=0)
    # The next run asks again with the same keys, and each is charged once.
    for reg, key in zip(regs, keys, strict=True):
        [answer] = PacedPayments(services.payment, pace).create([Charge(body(reg), key)])
        assert isinstance(answer, Answered)
        assert (answer.status, answer.body["status"]) == (201, "succeeded")
        [(state, intent_id)] = stored(key)
        assert state == "succeeded"
        [(stripe_customer,)] = sql(
            api,
            "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s",
            reg["customer_id"],
        )
        intents = stripe_intents(api, stripe_customer)
        assert len(intents) == 2  # the signup's charge and this one
        assert intent_id in {pi["id"] for pi in intents}


# -- the budget is one for every thread and process ------------------------------------------


TAKE_IN_ANOTHER_PROCESS = """
import sys
from assets.billing.pacing import Pace
pace = Pace(sys.argv[1], 5, window_seconds=3600, budget=sys.argv[2])
print(sum(pace.take() for _ in range(int(sys.argv[3]))))
"""


def take_elsewhere(settings: Settings, budget: str, tries: int) -> int:
    assert settings.redis_url
    done = subprocess.run(
        [sys.executable, "-c", TAKE_IN_ANOTHER_PROCESS, settings.redis_url, budget, str(tries)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout.strip())


def test_billing_processes_and_threads_share_one_stripe_budget(settings: Settings) -> None:
    # An hour's window holds the budget still, so nothing here depends on timing.
    budget = f"test-{uuid.uuid4().hex[:8]}"
    assert settings.redis_url
    pace = Pace(settings.redis_url, 5, window_seconds=3600, budget=budget)

    # Eight threads race for five places: five get one.
    taken: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        got = pace.take()
        with lock:
            taken.append(got)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == [False] * 3 + [True] * 5

    # Another process (another pod's billing run) finds the same budget spent...
    other = f"test-{uuid.uuid4().hex[:8]}"
    assert take_elsewhere(settings, budget, 3) == 0
    # ...and what it spends is gone for this one.
    assert take_elsewhere(settings, other, 4) == 4
    shared = Pace(settings.redis_url, 5, window_seconds=3600, budget=other)
    assert [shared.take(), shared.take()] == [True, False]


def test_without_redis_nothing_is_paced_so_nothing_is_charged() -> None:
    pace = Pace(f"redis://127.0.0.1:{free_port()}", 5)
    with pytest.raises(Unpaced):
        pace.take()
    with pytest.raises(Unpaced):
        pace.wait()
