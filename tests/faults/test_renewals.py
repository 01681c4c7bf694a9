"""A billing run's renewal batch is applied, and its answer lost on the way back.

The run's subscription-service calls go through a fault proxy that drops the answers to
`POST /v1/subscription-renewals` after the real service has applied them: every attempt
of the service client's (it resends a request whose answer was lost). The run cannot
know: its invoices keep their pending renewal, and it reports the errors. The next run
sends the batch again, which the service finds already applied: every subscription is
renewed once (one renewal event each), every invoice settled, and nothing charged twice.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from assets.billing import actions
from assets.billing.actions import RENEWAL_BATCH
from assets.billing.assets import billing
from assets.shared.resources import Services
from tests.conftest import Api
from tests.faults.proxy import FaultProxy
from tests.integration.test_billing import (  # noqa: F401 (fixtures)
    invoices,
    outbox,
    resources,
    sql,
    token,
)
from tests.integration.test_billing_shards import billed_once, due_on

pytestmark = pytest.mark.integration

DAY = date(2025, 7, 16)


def test_a_lost_renewal_batch_answer_is_sent_again_and_renews_once(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    api_proxy: FaultProxy,
) -> None:
    subs = due_on(api, token, DAY, 3)
    assert len(subs) <= RENEWAL_BATCH  # one batch
    settings = resources["services"].settings.model_copy(
        update={"subscription_service_url": api_proxy.url}
    )
    lost = api_proxy.rule("POST", "/v1/subscription-renewals", drop=3)

    first = billing(resources["database"], Services(settings)).run(DAY)
    assert lost.matched == 3 and api_proxy.dropped == 3  # the first send and both resends
    assert (first.paid, first.renewed) == (3, 0)
    assert first.errors == 3, first.problems  # none is known applied
    # Applied behind the lost answer, and still owed as far as billing knows.
    for sub in subs:
        assert outbox(api, sub).count("subscription.renewed") == 1
        [invoice] = invoices(api, sub)
        assert invoice["pending_action"] == "renew"

    again = billing(resources["database"], Services(settings)).run(DAY)
    assert (again.errors, again.renewed, again.charged) == (0, 3, 0), again.problems
    billed_once(api, subs, DAY)
    for sub in subs:
        assert outbox(api, sub).count("subscription.renewed") == 1
    paid = sql(
        api,
        "SELECT count(*) FROM payment.payments WHERE metadata->>'subscription_id' = ANY(%s)",
        subs,
    )[0][0]
    assert paid == 2 * len(subs)  # each signup's first charge and one renewal


def test_a_subscription_service_without_batches_gets_one_call_each(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mid-deploy, the billing run may meet a subscription service older than batches: its
    404 sends the run back to one call per renewal, and nothing is left owed."""
    day = date(2025, 7, 17)
    subs = due_on(api, token, day, 2)
    monkeypatch.setattr(actions, "RENEWALS", "/v1/subscription-renewals-not-yet-deployed")
    run = billing(resources["database"], resources["services"]).run(day)
    assert (run.errors, run.renewed) == (0, 2), run.problems
    billed_once(api, subs, day)
