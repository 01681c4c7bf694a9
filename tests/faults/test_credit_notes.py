"""A credit note's refund under faults: the payment service's answers to billing are lost.

The API under test runs as its own process whose billing reaches the payment service
through the fault proxy (as in test_upgrades.py). The refund really happens; its answer
never comes back; the client is told 503 and the note stays `pending`. Then whoever comes
next finishes it under the note's one refund key (`credit_note:<id>`): the client's retry
with its own Idempotency-Key, or, when nobody retries, the recovery sweep. One refund in
the payment service and one at the Stripe stand-in, whatever happened.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Api
from tests.faults.conftest import ServedApi
from tests.faults.proxy import FaultProxy
from tests.faults.test_upgrades import token
from tests.integration.test_credit_notes import (
    PARTNER,
    credit,
    paid_invoice,
    refunds_of,
    sql,
    stripe_refunds,
)

pytestmark = pytest.mark.integration

# Billing's call to the payment service tries 3 times: every answer of one request lost.
LOST_FOR_ONE_REQUEST = 3
REFUNDS = "/v1/payments/"  # POST /v1/payments/{id}/refunds (charges are POST /v1/payments)


@pytest.fixture
def served(served_api: Callable[..., ServedApi], api_proxy: FaultProxy, api: Api) -> ServedApi:
    return served_api(
        PAYMENT_SERVICE_URL=api_proxy.url, AUTH_ISSUER=api.url, AUTH_SERVICE_URL=api.url
    )


def refunded_but_unanswered(
    api: Api, served: ServedApi, api_proxy: FaultProxy, auth: dict[str, str], key: str
) -> str:
    """A paid invoice, then a credit note whose refund happens while its answers are lost."""
    operator = token(api, api.settings, "operations internal invoices:read")
    invoice = paid_invoice(api, auth, operator)
    lost = api_proxy.rule("POST", REFUNDS, drop=LOST_FOR_ONE_REQUEST)
    answer = credit(served.url, auth, invoice["id"], key, amount=250, reason="duplicate")
    assert lost.forwarded.is_set() and api_proxy.dropped == LOST_FOR_ONE_REQUEST
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["retry-after"]
    # Money moved, once (the payment service deduped billing's own retries by key) ...
    assert refunds_of(api, invoice["id"]) == [("succeeded", 250)]
    # ... and the note waits, its amount held against the invoice.
    [(status,)] = sql(
        api, "SELECT status FROM billing.credit_notes WHERE invoice_id = %s", invoice["id"]
    )
    assert status == "pending"
    return str(invoice["id"])


def test_a_lost_refund_answer_is_finished_by_the_clients_retry_with_one_refund(
    api: Api, served: ServedApi, api_proxy: FaultProxy
) -> None:
    auth = token(api, api.settings, PARTNER, f"t-{uuid.uuid4().hex[:8]}")
    key = str(uuid.uuid4())
    invoice_id = refunded_but_unanswered(api, served, api_proxy, auth, key)

    retried = credit(served.url, auth, invoice_id, key, amount=250, reason="duplicate")
    assert retried.status_code == 201, retried.text
    assert retried.json()["status"] == "issued" and retried.json()["refund_id"]
    again = credit(served.url, auth, invoice_id, key, amount=250, reason="duplicate")
    assert again.status_code == 201 and again.json()["id"] == retried.json()["id"]
    assert refunds_of(api, invoice_id) == [("succeeded", 250)]
    assert stripe_refunds(api, invoice_id) == 1
    [(events,)] = sql(
        api,
        "SELECT count(*) FROM billing.outbox WHERE type = 'credit_note.created' "
        "AND aggregate_id = %s",
        retried.json()["id"],
    )
    assert events == 1


def test_a_lost_refund_answer_nobody_retries_is_finished_by_the_recovery_sweep(
    api: Api, served: ServedApi, api_proxy: FaultProxy
) -> None:
    auth = token(api, api.settings, PARTNER, f"t-{uuid.uuid4().hex[:8]}")
    invoice_id = refunded_but_unanswered(api, served, api_proxy, auth, str(uuid.uuid4()))

    operator = token(api, api.settings, "operations internal")
    for _ in range(2):  # a second sweep finds it finished and does nothing more
        swept = httpx.post(
            f"{served.url}/v1/operations/invoice-recovery",
            params={"older_than_seconds": 0},
            headers=operator,
            timeout=120,
        )
        assert swept.status_code == 200, swept.text
    [(status, refund_id)] = sql(
        api,
        "SELECT status, refund_id FROM billing.credit_notes WHERE invoice_id = %s",
        invoice_id,
    )
    assert status == "issued" and refund_id
    assert refunds_of(api, invoice_id) == [("succeeded", 250)]
    assert stripe_refunds(api, invoice_id) == 1
