"""Erasure interrupted: Stripe deletes the customer but its answers are lost (the fault
proxy drops them), so the erasure consumer's step fails after auth's step committed. The
redelivered event finishes the rest: the delete is asked again, Stripe's 404 says it is
done, and a third run changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import stripe
from sqlalchemy import text

from paywall.clients import stripe_client
from paywall.db import engine
from paywall.settings import Settings
from streaming.consumers.runner import Retryable
from tests.conftest import Api
from tests.faults.proxy import FaultProxy
from tests.integration.test_signup import GOOD_CARD, register, signup_body
from transactional import erasure
from transactional.payment.stripe_gateway import Gateway

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(settings: Settings) -> Iterator[FaultProxy]:
    assert settings.stripe_api_base
    with FaultProxy(settings.stripe_api_base) as running:
        yield running


def state(settings: Settings, customer_id: str) -> tuple[list[str], object, list[str]]:
    with engine(settings).connect() as conn:
        users = conn.execute(
            text("SELECT email FROM auth.users WHERE customer_id = :c"), {"c": customer_id}
        ).scalars()
        account = conn.execute(
            text("SELECT erased_at FROM payment.accounts WHERE customer_id = :c"),
            {"c": customer_id},
        ).scalar_one()
        signups = conn.execute(
            text(
                "SELECT email FROM registration.registrations WHERE customer_id = CAST(:c AS uuid)"
            ),
            {"c": customer_id},
        ).scalars()
        return list(users), account, list(signups)


def test_an_erasure_cut_short_by_lost_stripe_answers_finishes_on_redelivery(
    api: Api, issue_token: Callable[..., str], proxy: FaultProxy
) -> None:
    settings = api.settings
    token = issue_token("registrations:write customers:write", f"tenant-{uuid.uuid4().hex[:6]}")
    body = signup_body(api, GOOD_CARD)
    resp = register(api, token, body, str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    customer_id = resp.json()["customer_id"]
    erased = httpx.post(
        f"{api.url}/v1/customers/{customer_id}/erase",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert erased.status_code == 200, erased.text
    with engine(settings).connect() as conn:
        stripe_id = conn.execute(
            text("SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = :c"),
            {"c": customer_id},
        ).scalar_one()

    lost = proxy.rule("DELETE", "/v1/customers/", drop=1000)
    through_proxy = settings.model_copy(update={"stripe_api_base": proxy.url})
    cut_short = erasure.Eraser(engine(settings), Gateway(stripe_client(through_proxy)))
    with pytest.raises(Retryable):
        cut_short.erase(customer_id)
    assert lost.matched >= 1 and proxy.dropped >= 1
    users, account_erased, signups = state(settings, customer_id)
    assert users and all(e.startswith("erased+") for e in users)  # auth's step committed
    assert account_erased is None  # payment's did not: we cannot know Stripe deleted it
    assert signups == [body["email"]]  # registration's step: not reached yet

    proxy.rules.clear()
    asked_again = proxy.rule("DELETE", "/v1/customers/")
    redelivered = erasure.Eraser(engine(settings), Gateway(stripe_client(through_proxy)))
    redelivered.erase(customer_id)  # the delete again: Stripe's 404 means done
    users, account_erased, signups = state(settings, customer_id)
    assert account_erased is not None
    assert signups and all(e.startswith("erased+") for e in signups)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client(settings).v1.customers.retrieve(stripe_id)

    assert asked_again.matched >= 1
    proxy.rules.clear()
    not_asked = proxy.rule("DELETE", "/v1/customers/")
    redelivered.erase(customer_id)  # once more: nothing left to do, Stripe not asked
    assert not_asked.matched == 0
    assert state(settings, customer_id)[1] == account_erased
