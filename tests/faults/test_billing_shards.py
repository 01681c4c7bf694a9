"""A billing shard's run pod dies mid-charge: the charge went through, nobody recorded it.

The shard runs as Dagster runs it in a pod, `dagster asset materialize` of one
`billing_shard` partition in its own process group, its payment-service calls through a
fault proxy that holds the answers. Once a charge has happened behind the proxy, the
whole process group is SIGKILLed. The day's close (`billing_run`, the whole day) then
bills the shard again beside the shards that never ran: each invoice is charged once
(the attempt's Idempotency-Key, recorded before the call, finds the first charge), and
every subscription is renewed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from dagster import MultiPartitionKey

from assets.billing.assets import SHARDS, billing
from paywall.shards import Shard
from paywall.stack.process import wait_until
from tests.conftest import REPO, Api
from tests.faults.proxy import FaultProxy
from tests.faults.test_upgrades import stripe_intents
from tests.integration.test_billing import (  # noqa: F401 (fixtures)
    resources,
    sql,
    token,
)
from tests.integration.test_billing_shards import billed_once, due_on, in_shards

pytestmark = pytest.mark.integration

DAY = date(2025, 7, 14)


@pytest.fixture
def shard_pod(
    api: Api,
    api_proxy: FaultProxy,
    resources: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> Iterator[Callable[[MultiPartitionKey], subprocess.Popen[bytes]]]:
    """Start one `billing_shard` partition as its own process group, as a run pod would
    run it, calling the payment service through the proxy; killed at the end if alive.
    It is billing's OAuth client, as every billing pod is: a charge's Idempotency-Key
    belongs to the client that sent it."""
    started: list[subprocess.Popen[bytes]] = []
    settings = resources["database"].settings

    def start(key: MultiPartitionKey) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "BILLING_CLIENT_ID": settings.billing_client_id,
            "BILLING_CLIENT_SECRET": settings.billing_client_secret.get_secret_value(),
            "PAYMENT_SERVICE_URL": api_proxy.url,
            "DAGSTER_HOME": str(tmp_path),
            "LOG_LEVEL": "WARNING",
        }
        argv = [
            str(REPO / ".venv" / "bin" / "dagster"),
            "asset",
            "materialize",
            "-m",
            "pipelines.definitions",
            "-a",
            "defs",
            "--select",
            "billing_shard",
            "--partition",
            str(key),
        ]
        with (tmp_path / "shard.log").open("ab") as log:
            pod = subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        started.append(pod)
        return pod

    try:
        yield start
    finally:
        for pod in started:
            if pod.poll() is None:
                os.killpg(pod.pid, signal.SIGKILL)
                pod.wait(timeout=10)


def test_a_shard_killed_after_its_charge_is_finished_by_the_close_with_one_charge(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    api_proxy: FaultProxy,
    shard_pod: Callable[[MultiPartitionKey], subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    subs = due_on(api, token, DAY, 2 * SHARDS)
    # The fullest shard: at least two of the subscriptions (pigeonhole).
    victim, mine = max(in_shards(subs, SHARDS).items(), key=lambda kv: len(kv[1]))
    assert len(mine) >= 2
    held = api_proxy.rule("POST", "/v1/payment-batches", delay=600)

    pod = shard_pod(MultiPartitionKey({"day": DAY.isoformat(), "shard": str(victim)}))
    # A charge has reached the payment service and been made; its answer is held.
    wait_until(
        lambda: held.forwarded.is_set(),
        "the shard's first charge made behind the proxy",
        timeout=120,
        alive=lambda: pod.poll() is None,
        log=tmp_path / "shard.log",
    )
    charged = sql(
        api,
        "SELECT count(*) FROM payment.payments WHERE metadata->>'subscription_id' = ANY(%s)",
        list(mine),
    )[0][0]
    assert charged >= 1
    os.killpg(pod.pid, signal.SIGKILL)  # the pod dies: no outcome recorded, no unlock
    pod.wait(timeout=10)
    unrecorded = sql(
        api,
        "SELECT count(*) FROM billing.attempts a JOIN billing.invoices i ON i.id = a.invoice_id "
        "WHERE i.subscription_id::text = ANY(%s) AND a.finished_at IS NULL",
        list(mine),
    )[0][0]
    assert unrecorded >= 1

    # The day's close: the killed shard's locks went with its connection.
    close = billing(resources["database"], resources["services"]).run(DAY)
    assert close.errors == 0, close.problems
    assert close.invoiced == len(subs) - len(mine)  # the shards that never ran
    billed_once(api, subs, DAY)
    for sub in subs:
        customer = sql(
            api, "SELECT customer_id::text FROM subscription.subscriptions WHERE id = %s", sub
        )[0][0]
        assert stripe_intents(api, customer) == 2  # the signup's first charge, the renewal
    assert Shard(victim, SHARDS).holds(next(iter(mine)))
