"""A billing day split into shards (paywall/shards.py), on the real local stack: shards run
at once and each bills only its own subscriptions, the day's close finds them done, the
locks keep a shard and the whole day apart, overlapping shards still bill each
subscription once (the database's keys), and Dagster's schedule, sensor and partitions
drive it.

Each test bills a day of its own, which no other test bills.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from dagster import (
    DagsterInstance,
    MultiPartitionKey,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from assets.billing.assets import SHARDS, billing, billing_run, billing_shard, shard_keys
from assets.billing.outcomes import Counts
from assets.billing.sensors import billing_day_sensor
from paywall.settings import Settings
from paywall.shards import Shard
from pipelines.definitions import build_defs
from tests.conftest import Api
from tests.integration.test_billing import (  # noqa: F401 (fixtures)
    at,
    invoices,
    move_period_end,
    payments_for,
    resources,
    signup,
    sql,
    subscription,
    token,
)

pytestmark = pytest.mark.integration


def due_on(api: Api, token: str, day: date, n: int) -> list[str]:  # noqa: F811
    """`n` new subscriptions whose period ends on `day`."""
    subs = [signup(api, token)["subscription_id"] for _ in range(n)]
    for sub in subs:
        move_period_end(api, sub, at(day))
    return subs


def billed_once(api: Api, subs: list[str], day: date) -> None:
    """Each subscription: one invoice for the period starting on `day`, paid by one
    payment, and the subscription renewed into it."""
    for sub in subs:
        [invoice] = invoices(api, sub)
        assert invoice["status"] == "paid", (sub, invoice)
        assert invoice["period_start"] == at(day)
        assert invoice["pending_action"] is None
        assert payments_for(api, invoice["id"]) == 1
        assert subscription(api, sub)["start"] == at(day)


def in_shards(subs: list[str], count: int) -> dict[int, set[str]]:
    return {i: {s for s in subs if Shard(i, count).holds(s)} for i in range(count)}


def test_python_and_sql_put_a_subscription_in_the_same_shard(api: Api) -> None:
    # Seeded, so the evenness bound is checked on the same ids every run: with 200 fresh
    # random ids a shard of 7 fell below half its share about once in a hundred runs.
    draw = random.Random(7)
    ids = [str(uuid.UUID(int=draw.getrandbits(128), version=4)) for _ in range(2000)]
    for count in (1, 2, 4, 7):
        by_sql = sql(
            api,
            "SELECT id::text, (('x' || right(id::text, 8))::bit(32)::bigint %% %s)::int "
            "FROM unnest(%s::uuid[]) AS id",
            count,
            ids,
        )
        assert {i: Shard(shard, count).holds(i) for i, shard in by_sql} == dict.fromkeys(ids, True)
        # Every id in exactly one shard, and the shards near even.
        sizes = [len(s) for s in in_shards(ids, count).values()]
        assert sum(sizes) == len(ids)
        assert min(sizes) >= len(ids) / count / 2
    with pytest.raises(ValueError, match=r"shard 4 is not one of 0\.\.3"):
        Shard(4, 4)


def test_shards_run_at_once_each_billing_its_own_and_the_close_finds_them_done(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
    internal_token: str,
) -> None:
    day = date(2025, 7, 8)
    subs = due_on(api, token, day, 12)
    expected = in_shards(subs, SHARDS)

    # The due list, shard by shard, is the shard's subscriptions, and they add up.
    def due(shard: int) -> httpx.Response:
        return httpx.get(
            f"{api.url}/v1/due-subscriptions",
            params={"date": day.isoformat(), "shard": shard, "shards": SHARDS},
            headers={"Authorization": f"Bearer {internal_token}"},
        )

    for i, mine in expected.items():
        resp = due(i)
        assert resp.status_code == 200, resp.text
        assert {d["subscription"]["id"] for d in resp.json()["data"]} == mine
    bad = due(SHARDS)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"

    database, services = resources["database"], resources["services"]

    def one(shard: Shard) -> Counts:
        return billing(database, services).run(day, shard)

    with ThreadPoolExecutor(SHARDS) as pool:
        counts = list(pool.map(one, Shard.all_of(SHARDS)))
    assert [c.invoiced for c in counts] == [len(expected[i]) for i in range(SHARDS)]
    assert [c.errors for c in counts] == [0] * SHARDS
    billed_once(api, subs, day)

    # The day's close bills the whole day again: everything is done, the renewed
    # subscriptions are no longer due.
    close = billing(database, services).run(day)
    assert (close.due, close.invoiced, close.charged, close.errors) == (0, 0, 0, 0)
    billed_once(api, subs, day)


def test_a_shard_refuses_to_run_beside_itself_or_the_whole_day(
    resources: dict[str, Any],  # noqa: F811
) -> None:
    day = date(2025, 7, 9)
    run = billing(resources["database"], resources["services"])
    with run.exclusive(day, Shard(0, 4)):
        with pytest.raises(RuntimeError, match=r"shard 0/4\) cannot start"):
            run.run(day, Shard(0, 4))
        with pytest.raises(RuntimeError, match=r"shard all\) cannot start"):
            run.run(day)
        assert run.run(day, Shard(1, 4)).errors == 0  # another shard runs beside it
    with (
        run.exclusive(day, Shard()),
        pytest.raises(RuntimeError, match=r"shard 2/4\) cannot start"),
    ):
        run.run(day, Shard(2, 4))
    assert run.run(day).errors == 0  # every lock was let go


def test_overlapping_shards_at_once_still_bill_each_subscription_once(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
) -> None:
    """BILLING_SHARDS changed during a day: shard 0 of 2 and shard 0 of 4 hold some of the
    same subscriptions and take different locks. The invoice's unique key and each attempt's
    Idempotency-Key still make one invoice and one charge each."""
    day = date(2025, 7, 10)
    subs = due_on(api, token, day, 8)
    database, services = resources["database"], resources["services"]
    shards = [Shard(0, 2), Shard(0, 4)]
    with ThreadPoolExecutor(len(shards)) as pool:
        counts = list(pool.map(lambda s: billing(database, services).run(day, s), shards))
    assert all(c.errors == 0 for c in counts)
    overlap = in_shards(subs, 4)[0]
    assert sum(c.invoiced for c in counts) == len(in_shards(subs, 2)[0])
    billed_once(api, [s for s in subs if s in overlap or Shard(0, 2).holds(s)], day)
    close = billing(database, services).run(day)  # the rest of the day: shard 1 of 2
    assert close.invoiced == len(in_shards(subs, 2)[1])
    billed_once(api, subs, day)


def test_dagster_bills_a_day_shard_by_shard_then_the_sensor_closes_it(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
) -> None:
    day = date(2025, 7, 11)
    subs = due_on(api, token, day, 6)
    instance = DagsterInstance.ephemeral()
    keys = shard_keys(day.isoformat())
    assert len(keys) == SHARDS
    for key in keys:
        # The sensor waits for the last shard.
        result = build_sensor_context(instance=instance)
        assert isinstance(billing_day_sensor(result), SkipReason)
        done = materialize(
            [billing_shard], partition_key=key, resources=resources, instance=instance
        )
        assert done.success
        [mat] = done.asset_materializations_for_node("billing_shard")
        assert mat.metadata["shard"].value == f"{key.keys_by_dimension['shard']}/{SHARDS}"
    billed_once(api, subs, day)

    requests = billing_day_sensor(build_sensor_context(instance=instance)).run_requests
    assert [(r.partition_key, r.run_key) for r in requests] == [
        (day.isoformat(), f"close:{day.isoformat()}")
    ]
    closed = materialize(
        [billing_run], partition_key=day.isoformat(), resources=resources, instance=instance
    )
    assert closed.success
    [mat] = closed.asset_materializations_for_node("billing_run")
    assert (mat.metadata["due"].value, mat.metadata["invoiced"].value) == (0, 0)
    assert isinstance(billing_day_sensor(build_sensor_context(instance=instance)), SkipReason)


def test_the_schedule_launches_every_shard_of_the_day_just_ended() -> None:
    defs = build_defs(Settings())  # type: ignore[call-arg]
    [schedule] = [
        s for s in defs.get_repository_def().schedule_defs if s.job_name == "billing_shards_job"
    ]
    when = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=when)
        requests = schedule.evaluate_tick(context).run_requests or []
    assert sorted(str(r.partition_key) for r in requests) == sorted(
        str(MultiPartitionKey({"day": "2026-11-19", "shard": str(i)})) for i in range(SHARDS)
    )


@pytest.fixture(scope="module")
def internal_token(issue_token: Callable[..., str]) -> str:
    return issue_token("subscriptions:read internal")
