"""`POST /v1/payment-batches`: each charge made as its own `POST /v1/payments` would make it.

Over the real payment service, PostgreSQL and the Stripe stand-in, with billing's own OAuth
client (an internal caller): per-charge answers (made, declined, no such customer), a
batch asked again answers from what was stored without a second PaymentIntent, a key is
one payment whether asked alone or in a batch, and a refused batch changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.integration.test_billing import (  # noqa: F401  (fixtures)
    DECLINED_ON_CHARGE,
    resources,
    signup,
    sql,
    token,
)
from tests.integration.test_billing_rate_limits import stripe_intents, stripe_limits  # noqa: F401
from transactional.payment.models import MAX_BATCH_PAYMENTS

pytestmark = pytest.mark.integration


def charge(customer_id: str, key: str, amount: int = 1500) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "amount": amount,
        "currency": "usd",
        "description": "batch test",
        "metadata": {"test": "batch"},
        "idempotency_key": key,
    }


def stripe_customer(api: Api, customer_id: str) -> str:
    [(found,)] = sql(
        api, "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s", customer_id
    )
    return str(found)


def stored(api: Api, key: str) -> list[tuple[Any, ...]]:
    return sql(
        api,
        "SELECT status, response_status FROM payment.payments WHERE idempotency_key LIKE %s",
        "%|" + key,
    )


def test_each_charge_is_answered_as_its_own_call_and_a_repeat_charges_nothing(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
) -> None:
    good, declined = signup(api, token), signup(api, token, DECLINED_ON_CHARGE, trial=True)
    keys = [f"batch-test:{uuid.uuid4()}" for _ in range(3)]
    nobody = str(uuid.uuid4())
    batch = {
        "payments": [
            charge(good["customer_id"], keys[0]),
            charge(nobody, keys[1]),
            charge(declined["customer_id"], keys[2]),
        ]
    }
    payments = resources["services"].payment

    status, first = payments.call("POST", "/v1/payment-batches", json=batch)
    assert status == 200, first
    made, absent, refused = first["results"]
    assert [r["idempotency_key"] for r in first["results"]] == keys
    assert (made["status"], made["body"]["status"], made["body"]["amount"]) == (
        201,
        "succeeded",
        1500,
    )
    assert absent["status"] == 404 and absent["body"]["instance"] == "/v1/payments"
    assert refused["status"] == 402 and refused["body"]["decline_code"]
    assert stored(api, keys[0]) == [("succeeded", 201)]
    assert stored(api, keys[1]) == []  # nothing stored for a customer that does not exist
    assert stored(api, keys[2]) == [("failed", 402)]
    before = {
        c: len(stripe_intents(api, stripe_customer(api, c)))
        for c in (good["customer_id"], declined["customer_id"])
    }

    # The whole batch again (its answer lost, say): the same answers, no new PaymentIntent.
    status, again = payments.call("POST", "/v1/payment-batches", json=batch)
    assert status == 200
    assert [(r["status"], r["body"].get("id")) for r in again["results"]] == [
        (r["status"], r["body"].get("id")) for r in first["results"]
    ]
    # One key is one payment, asked alone or in a batch.
    alone = payments.call(
        "POST",
        "/v1/payments",
        json={k: v for k, v in batch["payments"][0].items() if k != "idempotency_key"},
        idempotency_key=keys[0],
    )
    assert alone == (201, made["body"])
    after = {c: len(stripe_intents(api, stripe_customer(api, c))) for c in before}
    assert after == before


def test_a_busy_processor_leaves_the_rest_of_the_batch_untried(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    stripe_limits: Callable[..., dict[str, Any]],  # noqa: F811
) -> None:
    regs = [signup(api, token) for _ in range(3)]
    keys = [f"batch-busy:{uuid.uuid4()}" for _ in regs]
    batch = {"payments": [charge(r["customer_id"], k) for r, k in zip(regs, keys, strict=True)]}
    stripe_limits(method="POST", path="/v1/payment_intents", next=1000)

    status, body = resources["services"].payment.call(
        "POST", "/v1/payment-batches", json=batch, attempts=1
    )
    assert status == 200, body
    results = body["results"]
    assert [r["status"] for r in results] == [503, 503, 503]
    assert all(r["retry_after"] is not None for r in results)
    assert "not tried" in results[1]["body"]["detail"]
    assert stored(api, keys[0]) == [("pending", None)]  # asked, neither charged nor declined
    assert stored(api, keys[1]) == stored(api, keys[2]) == []  # never asked
    answered = stripe_limits()["answered"]["/v1/payment_intents"]

    stripe_limits(next=0)
    status, body = resources["services"].payment.call("POST", "/v1/payment-batches", json=batch)
    assert [r["status"] for r in body["results"]] == [201, 201, 201]
    assert stripe_limits()["answered"]["/v1/payment_intents"] == answered  # only 429s counted
    for reg in regs:
        # The signup's first charge and this one.
        assert len(stripe_intents(api, stripe_customer(api, reg["customer_id"]))) == 2


@pytest.mark.parametrize(
    ("payments", "why"),
    [
        (lambda c, k: [charge(c, k), charge(c, k)], "once in a batch"),
        (lambda c, k: [charge(c, f"{k}:{i}") for i in range(MAX_BATCH_PAYMENTS + 1)], "at most"),
        (lambda c, k: [], "at least 1"),
        (lambda c, k: [{**charge(c, k), "amount": -5}], "greater than"),
        (lambda c, k: [{k2: v for k2, v in charge(c, k).items() if k2 != "idempotency_key"}], ""),
    ],
    ids=["repeated-key", "too-many", "empty", "negative-amount", "no-key"],
)
def test_a_bad_batch_is_refused_whole_and_changes_nothing(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    payments: Callable[[str, str], list[dict[str, Any]]],
    why: str,
) -> None:
    reg = signup(api, token)
    key = f"batch-bad:{uuid.uuid4()}"
    status, problem = resources["services"].payment.call(
        "POST", "/v1/payment-batches", json={"payments": payments(reg["customer_id"], key)}
    )
    assert status == 422, problem
    assert why in str(problem)
    assert sql(
        api, "SELECT count(*) FROM payment.payments WHERE idempotency_key LIKE %s", f"%|{key}%"
    ) == [(0,)]


def test_batches_are_for_internal_callers_only(
    api: Api,
    issue_token: Callable[..., str],
    token: str,  # noqa: F811
) -> None:
    reg = signup(api, token)
    [(tenant,)] = sql(
        api, "SELECT tenant_id FROM customer.customers WHERE id = %s", reg["customer_id"]
    )
    partner = issue_token("payments:write payments:read", tenant)
    key = f"batch-partner:{uuid.uuid4()}"
    resp = httpx.post(
        f"{api.url}/v1/payment-batches",
        json={"payments": [charge(reg["customer_id"], key)]},
        headers={"Authorization": f"Bearer {partner}"},
    )
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert stored(api, key) == []
