"""Business metrics, each read where Prometheus reads it after the action that moves it:
signups and payments on the API's /metrics, the billing run's on a real Pushgateway
(Debian's prometheus-pushgateway, which ./dev installs) that the run pushes to."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from dagster import materialize
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from assets.billing.assets import billing_run
from assets.billing.metrics import pushed
from assets.billing.run import WHOLE_DAY
from paywall.service_client import SERVICE_SCOPES
from pipelines.resources import build_resources
from tests.conftest import Api, register_client
from tests.integration.test_billing import move_period_end, signup
from tests.integration.test_signup import DECLINED_ON_CHARGE, GOOD_CARD, register, signup_body

pytestmark = pytest.mark.integration

# Before every other test's billing day: no dunning retry of theirs is due by then.
BILLING_DAY = date(2025, 3, 14)


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page by (name, labels)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum of `name`'s samples that carry `labels` (0 when there is none yet)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in page.items() if n == name and wanted <= ls)


@pytest.fixture(scope="module")
def token(issue_token: Callable[..., str]) -> str:
    return issue_token(
        "registrations:write customers:read subscriptions:read subscriptions:write",
        f"tenant-{uuid.uuid4().hex[:8]}",
    )


def test_signups_and_payments_are_counted_by_outcome(api: Api, token: str) -> None:
    before = samples(api.url)
    completed = register(api, token, signup_body(api, GOOD_CARD), str(uuid.uuid4()))
    assert completed.status_code == 201, completed.text
    body, key = signup_body(api, DECLINED_ON_CHARGE), str(uuid.uuid4())
    declined = register(api, token, body, key)
    assert declined.status_code == 402, declined.text
    assert register(api, token, body, key).status_code == 402  # a replay counts nothing
    after = samples(api.url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("paywall_signups_total", outcome="completed") == 1
    assert delta("paywall_signups_total", outcome="declined") == 1
    assert delta("paywall_signups_total") == 2
    assert delta("paywall_payments_total", outcome="succeeded") == 1
    assert delta("paywall_payments_total", outcome="failed") == 1


@pytest.fixture(scope="module")
def resources(api: Api, pushgateway: str) -> dict[str, Any]:
    """The code location's resources with billing's own client, pushing to the gateway."""
    client_id, secret = register_client(
        api.settings, " ".join(SERVICE_SCOPES["billing"]), prefix="svc-billing"
    )
    settings = api.settings.model_copy(
        update={
            "billing_client_id": client_id,
            "billing_client_secret": SecretStr(secret),
            "pushgateway_url": pushgateway,
        }
    )
    return build_resources(settings)


def test_a_billing_run_pushes_invoices_charges_and_duration(
    api: Api, token: str, resources: dict[str, Any], pushgateway: str
) -> None:
    due = datetime(BILLING_DAY.year, BILLING_DAY.month, BILLING_DAY.day, 8, tzinfo=UTC)
    for number in (GOOD_CARD, DECLINED_ON_CHARGE):  # trials: the card is first charged now
        move_period_end(api, signup(api, token, number, trial=True)["subscription_id"], due)
    started = datetime.now(UTC).timestamp()

    result = materialize([billing_run], partition_key=BILLING_DAY.isoformat(), resources=resources)
    assert result.success
    page = samples(pushgateway)
    job = {"job": "paywall_billing"}
    assert value(page, "paywall_billing_run_invoices", **job) == 2
    assert value(page, "paywall_billing_run_charges", outcome="paid", **job) == 1
    assert value(page, "paywall_billing_run_charges", outcome="failed", **job) == 1
    assert value(page, "paywall_billing_run_charges", outcome="error", **job) == 0
    assert value(page, "paywall_billing_run_duration_seconds", **job) > 0
    day_start = datetime(BILLING_DAY.year, BILLING_DAY.month, BILLING_DAY.day, tzinfo=UTC)
    assert value(page, "paywall_billing_run_billing_day_timestamp_seconds") == day_start.timestamp()
    succeeded = value(page, "paywall_billing_run_last_success_timestamp_seconds", **job)
    assert succeeded >= started
    assert value(page, "paywall_billing_run_last_failure_timestamp_seconds") == 0  # none yet

    # A run that fails pushes the time of its failure and keeps that of the last success,
    # which is what the PaywallBillingRunFailed alert compares.
    # In a pod, the run's namespace (the downward API's POD_NAMESPACE) labels what it pushes.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("POD_NAMESPACE", "paywall-test")
        with pytest.raises(RuntimeError), pushed(pushgateway, BILLING_DAY, WHOLE_DAY):
            raise RuntimeError("the subscription service is down")
    page = samples(pushgateway)
    failure = "paywall_billing_run_last_failure_timestamp_seconds"
    failed = value(page, failure, namespace="paywall-test", **job)
    assert failed >= succeeded
    assert value(page, "paywall_billing_run_last_success_timestamp_seconds", **job) == succeeded
