"""Catalog administration on the real stack: a tenant's plans, price versions, migrations,
archiving, tenant isolation, and the `paywall plans` CLI.

Renewals are billed by the Dagster billing run materialized in process, on days of this
file's own (test_billing.py's time travel: a period end moved to a past day).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from paywall.settings import Settings
from streaming import contracts
from tests.conftest import REPO, Api
from tests.integration.test_admin import paywall
from tests.integration.test_billing import at, bill, invoices, move_period_end, resources, sql
from tests.integration.test_readme import _raw_block
from tests.integration.test_signup import register, signup_body

pytestmark = pytest.mark.integration
__all__ = ["resources"]  # the billing run's resources, a fixture of test_billing.py

PARTNER = (
    "registrations:write customers:read customers:write subscriptions:read "
    "subscriptions:write payments:read plans:write"
)
INTERNAL = "subscriptions:read subscriptions:write internal"
PROBLEMS = "https://paywall.dev/problems"
GOLD = {"name": "Gold", "amount": 4900, "currency": "usd", "interval": "month"}


def _tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tenant_a() -> str:
    return _tenant()


@pytest.fixture(scope="module")
def partner_a(issue_token: Callable[..., str], tenant_a: str) -> dict[str, str]:
    return auth(issue_token(PARTNER, tenant_a))


@pytest.fixture(scope="module")
def partner_b(issue_token: Callable[..., str]) -> dict[str, str]:
    return auth(issue_token(PARTNER, _tenant()))


@pytest.fixture(scope="module")
def internal(issue_token: Callable[..., str]) -> dict[str, str]:
    return auth(issue_token(INTERNAL))


def post(
    api: Api, path: str, headers: dict[str, str], body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    keyed = {**headers, "Idempotency-Key": key or str(uuid.uuid4())}
    return httpx.post(f"{api.url}{path}", json=body, headers=keyed, timeout=60)


def make_plan(api: Api, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    made = post(api, "/v1/plans", headers, {**GOLD, **fields})
    assert made.status_code == 201, made.text
    return dict(made.json())


def signup(api: Api, headers: dict[str, str], plan_id: str, **extra: Any) -> httpx.Response:
    token = headers["Authorization"].removeprefix("Bearer ")
    return register(api, token, signup_body(api, plan_id=plan_id, **extra), str(uuid.uuid4()))


def subscribed(api: Api, headers: dict[str, str], plan_id: str) -> dict[str, Any]:
    answer = signup(api, headers, plan_id)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def listed(api: Api, headers: dict[str, str] | None = None) -> set[str]:
    ids: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{api.url}/v1/plans", params=params, headers=headers or {})
        assert page.status_code == 200, page.text
        ids |= {p["id"] for p in page.json()["data"]}
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids


def due_amount(api: Api, internal: dict[str, str], sub_id: str, day: date) -> tuple[str, int]:
    """(plan id, amount) the billing run would bill `sub_id`'s next period on `day`."""
    page = httpx.get(
        f"{api.url}/v1/due-subscriptions",
        params={"date": day.isoformat(), "limit": 1000},
        headers=internal,
    )
    assert page.status_code == 200, page.text
    (item,) = [d for d in page.json()["data"] if d["subscription"]["id"] == sub_id]
    return item["plan"]["id"], item["plan"]["amount"]


def plan_events(api: Api, plan_id: str) -> list[dict[str, Any]]:
    """The catalog's events of a plan, in order, each checked against its contract."""
    rows = sql(
        api,
        "SELECT payload FROM subscription.outbox WHERE aggregate_type = 'plan' "
        "AND aggregate_id = %s ORDER BY seq",
        plan_id,
    )
    for (payload,) in rows:
        contracts.validate(payload)
    return [payload for (payload,) in rows]


def first_charge(api: Api, customer_id: str) -> int:
    [(amount,)] = sql(
        api, "SELECT amount FROM payment.payments WHERE customer_id = %s", customer_id
    )
    return int(amount)


def test_a_new_price_leaves_subscribers_on_theirs_until_migrated(
    api: Api,
    partner_a: dict[str, str],
    internal: dict[str, str],
    resources: dict[str, Any],
) -> None:
    key = str(uuid.uuid4())
    created = post(api, "/v1/plans", partner_a, GOLD, key)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert created.headers["Location"] == f"/v1/plans/{plan['id']}"
    assert plan["id"].startswith("plan_") and plan["tenant_id"]
    assert (plan["amount"], plan["price_version"], plan["archived_at"]) == (4900, 1, None)
    replayed = post(api, "/v1/plans", partner_a, GOLD, key)
    assert replayed.json() == plan and replayed.headers["Idempotent-Replayed"] == "true"
    assert post(api, "/v1/plans", partner_a, {**GOLD, "amount": 1}, key).status_code == 422
    # The tenant's token lists its plan with the platform's; no token, the platform's only.
    assert {plan["id"], "basic-monthly"} <= listed(api, partner_a)
    assert plan["id"] not in listed(api) and "basic-monthly" in listed(api)

    early = subscribed(api, partner_a, plan["id"])
    assert first_charge(api, early["customer_id"]) == 4900

    priced = post(api, f"/v1/plans/{plan['id']}/prices", partner_a, {"amount": 5900})
    assert priced.status_code == 201, priced.text
    assert (priced.json()["amount"], priced.json()["price_version"]) == (5900, 2)
    shown = httpx.get(f"{api.url}/v1/plans/{plan['id']}", headers=partner_a).json()
    assert (shown["amount"], shown["price_version"]) == (5900, 2)
    events = plan_events(api, plan["id"])
    assert [(e["event_type"], e["data"]["amount"]) for e in events] == [
        ("plan.created", 4900),
        ("plan.price_added", 5900),
    ]
    late = subscribed(api, partner_a, plan["id"])
    assert first_charge(api, late["customer_id"]) == 5900

    # Renewal: the early subscriber is billed the price it was sold at.
    first_day, second_day = date(2025, 4, 17), date(2025, 5, 17)
    move_period_end(api, early["subscription_id"], at(first_day))
    assert due_amount(api, internal, early["subscription_id"], first_day) == (plan["id"], 4900)
    bill(resources, first_day)
    [renewal] = invoices(api, early["subscription_id"])
    assert (renewal["status"], renewal["amount"]) == ("paid", 4900)

    migrated = post(api, f"/v1/plans/{plan['id']}/migrate", partner_a, {})
    assert migrated.status_code == 200, migrated.text
    # The late subscriber is on version 2 already: only the early one moves.
    assert migrated.json()["subscriptions"] == 1
    assert migrated.json()["plan"]["price_version"] == 2
    [(version, moving)] = sql(
        api,
        "SELECT price_version, next_price_version FROM subscription.subscriptions WHERE id = %s",
        early["subscription_id"],
    )
    assert (version, moving) == (1, 2), "the paid period keeps its price"
    [(event,)] = sql(
        api,
        "SELECT payload FROM subscription.outbox WHERE aggregate_id = %s "
        "AND type = 'subscription.price_migrated'",
        early["subscription_id"],
    )
    contracts.validate(event)
    assert {k: event["data"][k] for k in ("migrated_plan_id", "next_price_version")} == {
        "migrated_plan_id": plan["id"],
        "next_price_version": 2,
    }
    assert (event["data"]["next_amount"], "amount" in event["data"]) == (5900, False)
    move_period_end(api, early["subscription_id"], at(second_day))
    assert due_amount(api, internal, early["subscription_id"], second_day) == (plan["id"], 5900)
    bill(resources, second_day)
    assert [i["amount"] for i in invoices(api, early["subscription_id"])] == [4900, 5900]
    assert sql(
        api,
        "SELECT price_version, next_price_version FROM subscription.subscriptions WHERE id = %s",
        early["subscription_id"],
    ) == [(2, None)]


def test_bad_catalog_input_is_422_and_changes_nothing(
    api: Api, partner_a: dict[str, str], tenant_a: str
) -> None:
    def count() -> int:
        return int(sql(api, "SELECT count(*) FROM subscription.plans")[0][0])

    before = count()
    for bad in (
        {**GOLD, "amount": -1},
        {**GOLD, "amount": "100"},
        {**GOLD, "amount": 10.0},
        {**GOLD, "currency": "USD"},
        {**GOLD, "interval": "week"},
        {**GOLD, "name": " "},
        {**GOLD, "surprise": 1},
        {k: v for k, v in GOLD.items() if k != "amount"},
    ):
        refused = post(api, "/v1/plans", partner_a, bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    unkeyed = httpx.post(f"{api.url}/v1/plans", json=GOLD, headers=partner_a)
    assert unkeyed.status_code == 400
    assert unkeyed.json()["type"] == f"{PROBLEMS}/idempotency-key-required"
    plan = make_plan(api, partner_a)
    before += 1
    for bad_price in ({"amount": -5}, {"amount": True}, {}):
        refused = post(api, f"/v1/plans/{plan['id']}/prices", partner_a, bad_price)
        assert refused.status_code == 422, bad_price
    bad_sub = post(api, f"/v1/plans/{plan['id']}/migrate", partner_a, {"subscription_id": "x"})
    assert bad_sub.status_code == 422
    assert count() == before
    assert sql(
        api, "SELECT count(*) FROM subscription.plan_prices WHERE plan_id = %s", plan["id"]
    ) == [(1,)]


def test_another_tenants_plan_is_absent_to_see_sell_or_change(
    api: Api,
    partner_a: dict[str, str],
    partner_b: dict[str, str],
    tenant_a: str,
    issue_token: Callable[..., str],
) -> None:
    plan = make_plan(api, partner_a, name="A only")
    path = f"/v1/plans/{plan['id']}"
    assert plan["id"] not in listed(api, partner_b)
    absent = httpx.get(f"{api.url}{path}", headers=partner_b)
    assert absent.status_code == 404 and absent.json()["type"] == f"{PROBLEMS}/not-found"
    assert httpx.get(f"{api.url}{path}").status_code == 404  # no token: the platform's only
    for action, body in (("archive", {}), ("prices", {"amount": 1}), ("migrate", {})):
        refused = post(api, f"{path}/{action}", partner_b, body)
        assert refused.status_code == 404, (action, refused.text)
    # B cannot sell it: signing up on it, or subscribing B's customer to it.
    refused = signup(api, partner_b, plan["id"])
    assert refused.status_code == 422 and refused.json()["type"] == f"{PROBLEMS}/unknown-plan"
    customer = httpx.post(
        f"{api.url}/v1/customers",
        json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "B's"},
        headers=partner_b,
    ).json()
    direct = httpx.post(
        f"{api.url}/v1/subscriptions",
        json={"customer_id": customer["id"], "plan_id": plan["id"]},
        headers=partner_b,
    )
    assert direct.status_code == 422 and direct.json()["type"] == f"{PROBLEMS}/unknown-plan"
    # B cannot make plans in A's name, nor change the platform's plans.
    named = post(api, "/v1/plans", partner_b, {**GOLD, "tenant_id": tenant_a})
    assert named.status_code == 403 and named.json()["type"] == f"{PROBLEMS}/forbidden-tenant"
    peek = httpx.get(f"{api.url}/v1/plans", params={"tenant_id": tenant_a}, headers=partner_b)
    assert peek.status_code == 403
    platform = post(api, "/v1/plans/basic-monthly/prices", partner_a, {"amount": 1})
    assert platform.status_code == 404
    # Nothing of A's plan changed.
    again = httpx.get(f"{api.url}{path}", headers=partner_a).json()
    assert again == plan
    # Without plans:write a tenant's client may not change its catalog at all.
    reader = auth(issue_token("subscriptions:read", tenant_a))
    scoped = post(api, f"{path}/archive", reader, {})
    assert scoped.status_code == 403 and scoped.json()["type"] == f"{PROBLEMS}/insufficient-scope"


def test_an_operator_makes_plans_for_a_tenant_or_the_platform(
    api: Api, partner_a: dict[str, str], tenant_a: str, issue_token: Callable[..., str]
) -> None:
    admin = auth(issue_token("admin"))
    theirs = make_plan(api, admin, tenant_id=tenant_a, name="Made for A")
    assert theirs["tenant_id"] == tenant_a and theirs["id"] in listed(api, partner_a)
    seen = httpx.get(f"{api.url}/v1/plans", params={"tenant_id": tenant_a}, headers=admin)
    assert theirs["id"] in {p["id"] for p in seen.json()["data"]}
    shared = make_plan(api, admin, name="Everyone's", amount=1)
    assert shared["tenant_id"] is None and shared["id"] in listed(api)
    archived = post(api, f"/v1/plans/{shared['id']}/archive", admin, {})
    assert archived.status_code == 200 and archived.json()["archived_at"]


def test_an_archived_plan_is_not_sold_and_its_subscribers_renew(
    api: Api, partner_a: dict[str, str], internal: dict[str, str]
) -> None:
    plan = make_plan(api, partner_a, name="Legacy", amount=3900)
    sub = subscribed(api, partner_a, plan["id"])
    key = str(uuid.uuid4())
    archived = post(api, f"/v1/plans/{plan['id']}/archive", partner_a, {}, key)
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived_at"] is not None
    replay = post(api, f"/v1/plans/{plan['id']}/archive", partner_a, {}, key)
    assert replay.json() == archived.json() and replay.headers["Idempotent-Replayed"] == "true"
    again = post(api, f"/v1/plans/{plan['id']}/archive", partner_a, {})  # another key
    assert again.json() == archived.json()
    assert [e["event_type"] for e in plan_events(api, plan["id"])] == [
        "plan.created",
        "plan.archived",
    ]

    assert plan["id"] not in listed(api, partner_a)
    assert httpx.get(f"{api.url}/v1/plans/{plan['id']}", headers=partner_a).status_code == 404
    # What its subscribers pay is still shown to them (a portal's plan and next invoice).
    paid = httpx.get(f"{api.url}/v1/plans/{plan['id']}?price_version=1", headers=partner_a)
    assert paid.status_code == 200 and paid.json()["amount"] == 3900
    assert paid.json()["archived_at"] is not None
    refused = signup(api, partner_a, plan["id"])
    assert refused.status_code == 422 and refused.json()["type"] == f"{PROBLEMS}/unknown-plan"
    # Its subscriber renews on it, at its price.
    day = date(2025, 6, 11)
    move_period_end(api, sub["subscription_id"], at(day))
    assert due_amount(api, internal, sub["subscription_id"], day) == (plan["id"], 3900)
    # A price for the archived plan reaches its subscribers only when they are migrated.
    post(api, f"/v1/plans/{plan['id']}/prices", partner_a, {"amount": 4400})
    assert due_amount(api, internal, sub["subscription_id"], day) == (plan["id"], 3900)
    one = post(
        api,
        f"/v1/plans/{plan['id']}/migrate",
        partner_a,
        {"subscription_id": sub["subscription_id"]},
    )
    assert one.status_code == 200 and one.json()["subscriptions"] == 1
    assert due_amount(api, internal, sub["subscription_id"], day) == (plan["id"], 4400)
    other = post(
        api,
        "/v1/plans/basic-monthly/migrate",
        internal,
        {"subscription_id": sub["subscription_id"]},
    )
    assert other.status_code == 404, "not a subscriber of that plan"


def test_the_plans_cli_creates_prices_migrates_and_archives(
    api: Api, cli_env: dict[str, str]
) -> None:
    tenant = _tenant()
    made = paywall(
        cli_env,
        "plans",
        "create",
        "--tenant",
        tenant,
        "--name",
        "CLI Gold",
        "--amount",
        "4900",
        "--currency",
        "usd",
        "--interval",
        "month",
        "--json",
    )
    assert made.returncode == 0, made.stderr
    [plan] = json.loads(made.stdout)
    assert (plan["tenant_id"], plan["amount"], plan["price_version"]) == (tenant, 4900, 1)

    priced = paywall(cli_env, "plans", "price", plan["id"], "--amount", "5900", "--json")
    assert priced.returncode == 0, priced.stderr
    assert json.loads(priced.stdout)[0]["price_version"] == 2
    migrated = paywall(cli_env, "plans", "migrate", plan["id"])
    assert migrated.returncode == 0 and "0 subscription(s)" in migrated.stdout
    listed_ = paywall(cli_env, "plans", "list", "--tenant", tenant, "--json")
    ids = {p["id"]: p for p in json.loads(listed_.stdout)}
    assert ids[plan["id"]]["amount"] == 5900 and "basic-monthly" in ids

    archived = paywall(cli_env, "plans", "archive", plan["id"])
    assert archived.returncode == 0 and "archived" in archived.stdout
    on_sale = json.loads(paywall(cli_env, "plans", "list", "--tenant", tenant, "--json").stdout)
    assert plan["id"] not in {p["id"] for p in on_sale}
    every = paywall(cli_env, "plans", "list", "--tenant", tenant, "--archived", "--json")
    assert plan["id"] in {p["id"] for p in json.loads(every.stdout)}

    for args in (
        ("plans", "price", "plan_nope", "--amount", "100"),
        ("plans", "price", plan["id"], "--amount", "-1"),
        ("plans", "archive", "plan_nope"),
        (
            "plans",
            "create",
            "--name",
            "X",
            "--amount",
            "1",
            "--currency",
            "US",
            "--interval",
            "month",
        ),
    ):
        refused: subprocess.CompletedProcess[str] = paywall(cli_env, *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr, args


def test_the_readme_plans_block_runs_word_for_word(cli_env: dict[str, str]) -> None:
    script = _raw_block("paywall plans create")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "move to price version 2" in done.stdout and "archived" in done.stdout


def test_the_catalog_migration_pins_existing_subscriptions_and_reverts(
    scratch_database: Settings,
) -> None:
    """0027 on a database with a subscription: every plan gets version 1 at its amount and
    the subscription is pinned to it; downgrading removes it all, and it applies again."""
    import psycopg
    from alembic import command

    from paywall import db

    url = scratch_database.database_url
    assert url
    db.upgrade(scratch_database, "0013_subscription_keys")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO subscription.subscriptions (id, customer_id, plan_id, status, "
            "current_period_start, current_period_end) VALUES (gen_random_uuid(), "
            "gen_random_uuid(), 'pro-monthly', 'active', now(), now() + interval '1 month')"
        )
    db.upgrade(scratch_database, "0027_plan_catalog")
    with psycopg.connect(url) as conn:
        prices = conn.execute(
            "SELECT p.id, v.version, v.amount = p.amount, p.tenant_id, p.price_version "
            "FROM subscription.plans p JOIN subscription.plan_prices v ON v.plan_id = p.id "
            "ORDER BY p.id"
        ).fetchall()
        pinned = conn.execute(
            "SELECT plan_id, price_version, next_price_version FROM subscription.subscriptions"
        ).fetchall()
    assert [(p[0], p[1:]) for p in prices] == [
        (plan, (1, True, None, 1))
        for plan in ("basic-monthly", "pro-monthly", "pro-yearly", "team-monthly")
    ]
    assert pinned == [("pro-monthly", 1, None)]

    command.downgrade(db.alembic_config(scratch_database), "0013_subscription_keys")
    with psycopg.connect(url) as conn:
        left = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'subscription' AND (table_name IN ('plan_prices', "
            "'catalog_requests') OR column_name IN ('price_version', 'archived_at') "
            "OR (table_name, column_name) = ('plans', 'tenant_id'))"
        ).fetchall()
    assert left == []
    db.upgrade(scratch_database, "heads")
