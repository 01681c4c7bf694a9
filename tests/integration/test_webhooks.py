"""Outbound webhooks end to end on the real stack, to real receiving HTTP servers.

Signups and subscription changes → outbox → relay → Kafka → the webhook consumer →
deliveries → the delivery worker → a loopback receiver that fails (500s, a request held
past the timeout) and then recovers. Every event reaches its tenant's endpoint at least
once, in order per subscription, signed so that `standardwebhooks` verifies it; a replay
sends again; an endpoint that always fails is disabled and its tenant emailed; tenant A's
endpoint never hears of tenant B. The retry schedule is shrunk by its scale setting.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from standardwebhooks import Webhook

from paywall.db import engine
from paywall.settings import Settings
from streaming import relay
from streaming.admin import sync_topics
from streaming.consumers.webhooks import Fanout
from streaming.webhooks import worker
from tests.conftest import Api
from tests.consuming import consume_until_idle, group_from_now
from tests.integration.test_event_bus import sent_to
from tests.integration.test_signup import GOOD_CARD, register, signup_body
from tests.integration.webhook_receiver import Receiver, receiver

pytestmark = pytest.mark.integration

SCOPES = (
    "registrations:write customers:read customers:write subscriptions:read "
    "subscriptions:write webhooks:read webhooks:write events:read"
)
SETTLE_AT_MOST_SECONDS = 90.0


def fast(settings: Settings, **overrides: Any) -> Settings:
    """The worker's settings: a 3-day schedule in seconds, a short POST timeout."""
    knobs = {"webhook_schedule_scale": 0.0001, "webhook_timeout_seconds": 0.5, **overrides}
    return settings.model_copy(update=knobs)


@pytest.fixture(scope="module")
def topics(api: Api) -> None:
    sync_topics(api.settings)


@pytest.fixture
def tenant(issue_token: Callable[..., str]) -> Callable[[], tuple[str, dict[str, str]]]:
    def make() -> tuple[str, dict[str, str]]:
        name = f"wh-{uuid.uuid4().hex[:8]}"
        return name, {"Authorization": f"Bearer {issue_token(SCOPES, name)}"}

    return make


def endpoint(api: Api, auth: dict[str, str], url: str, **extra: Any) -> dict[str, Any]:
    made = httpx.post(
        f"{api.url}/v1/webhook-endpoints",
        json={"url": url, **extra},
        headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    assert body["secret"].startswith("whsec_")
    return body


def signup(api: Api, auth: dict[str, str]) -> dict[str, Any]:
    token = auth["Authorization"].removeprefix("Bearer ")
    resp = register(api, token, signup_body(api, GOOD_CARD), str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def publish_and_fan_out(api: Api, settings: Settings, group: str) -> None:
    db = engine(api.settings)
    relay.drain(db, relay.make_producer(api.settings))
    consume_until_idle(api.settings, "webhooks", Fanout(db, settings.webhook_schedule_scale), group)


def pending(api: Api, endpoint_id: str) -> int:
    with engine(api.settings).connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM webhooks.deliveries d JOIN webhooks.endpoints e "
                    "ON e.id = d.endpoint_id WHERE d.endpoint_id = :e AND d.status = 'pending' "
                    "AND e.disabled_at IS NULL"
                ),
                {"e": endpoint_id},
            ).scalar_one()
        )


def deliver_until(api: Api, settings: Settings, done: Callable[[], bool]) -> None:
    """Run the worker until `done()`; bounded, so a worker that never settles fails."""
    deadline = time.monotonic() + SETTLE_AT_MOST_SECONDS
    db = engine(api.settings)
    with worker.make_client(settings) as client:
        while not done():
            assert time.monotonic() < deadline, "deliveries did not settle"
            if worker.drain(db, settings, client) == 0:
                time.sleep(0.05)  # the next retry is due in a few ms: poll again


def tenant_events(api: Api, tenant_id: str) -> list[dict[str, Any]]:
    with engine(api.settings).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_id::text AS id, type, occurred_at, envelope->'data' AS data "
                "FROM webhooks.events WHERE tenant_id = :t ORDER BY occurred_at"
            ),
            {"t": tenant_id},
        ).mappings()
        return [dict(r) for r in rows]


def metric(outcome: str) -> float:
    return REGISTRY.get_sample_value("paywall_webhook_deliveries_total", {"outcome": outcome}) or 0


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    # A 500, a request held past the timeout, a 503: then it recovers.
    with receiver(script=[500, "timeout", 503]) as r:
        yield r


@pytest.fixture
def steady() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def test_every_event_arrives_signed_in_order_and_only_to_its_tenant(
    api: Api,
    topics: None,
    tenant: Callable[[], tuple[str, dict[str, str]]],
    flaky: Receiver,
    steady: Receiver,
) -> None:
    settings = fast(api.settings)
    a, auth_a = tenant()
    b, auth_b = tenant()
    hook_a = endpoint(api, auth_a, flaky.url, contact_email="ops@a.example.com")
    hook_b = endpoint(api, auth_b, steady.url)
    before = {o: metric(o) for o in ("delivered", "failed")}
    group, again = (group_from_now(api.settings, "webhooks") for _ in range(2))

    made = signup(api, auth_a)
    sub = made["subscription_id"]
    for step, body in (("pause", None), ("resume", None), ("cancel", {"at_period_end": False})):
        moved = httpx.post(f"{api.url}/v1/subscriptions/{sub}/{step}", json=body, headers=auth_a)
        assert moved.status_code == 200, moved.text
    signup(api, auth_b)
    publish_and_fan_out(api, settings, group)

    def settled() -> bool:
        # Nothing pending, and every event recorded for a tenant reached its receiver (an
        # event fanned out late, such as a payment waiting for its customer's tenant, is
        # waited for rather than missed).
        if pending(api, hook_a["id"]) or pending(api, hook_b["id"]):
            return False
        return {e["id"] for e in tenant_events(api, a)} <= set(flaky.delivered_ids()) and {
            e["id"] for e in tenant_events(api, b)
        } <= set(steady.delivered_ids())

    deliver_until(api, settings, settled)

    events_a, events_b = tenant_events(api, a), tenant_events(api, b)
    ids_a, ids_b = {e["id"] for e in events_a}, {e["id"] for e in events_b}
    kinds = {e["type"] for e in events_a}
    assert {"customer.created", "payment.succeeded", "subscription.canceled"} <= kinds
    assert "payment.account_created" not in kinds  # plumbing, not the partner's business
    # At least once, every one; and never the other tenant's.
    assert set(flaky.delivered_ids()) == ids_a
    assert set(steady.delivered_ids()) == ids_b
    assert not ids_a & {r.headers["webhook-id"] for r in steady.got}
    assert not ids_b & {r.headers["webhook-id"] for r in flaky.got}
    # In order per subscription, though the first tries failed and were retried.
    of_sub = [e["id"] for e in events_a if e["data"].get("subscription_id") == sub]
    assert len(of_sub) >= 4
    first_seen = list(dict.fromkeys(i for i in flaky.delivered_ids() if i in of_sub))
    assert first_seen == of_sub
    # Signed per Standard Webhooks: the receiver's library verifies every request.
    for got in flaky.got:
        payload = Webhook(hook_a["secret"]).verify(got.body, got.headers)
        assert payload["id"] == got.headers["webhook-id"]
        assert payload["type"] in kinds

    # The delivery log: each attempt, its status or error, never the secret.
    log = httpx.get(
        f"{api.url}/v1/webhook-endpoints/{hook_a['id']}/attempts?limit=100", headers=auth_a
    )
    assert log.status_code == 200, log.text
    attempts = log.json()["data"]
    codes = [row["status_code"] for row in attempts]
    assert 500 in codes and 503 in codes and 204 in codes
    assert any(row["status_code"] is None and "Timeout" in row["error"] for row in attempts)
    assert "whsec_" not in log.text
    assert metric("delivered") - before["delivered"] >= len(ids_a | ids_b)
    assert metric("failed") - before["failed"] >= 3

    # Polling: the same events, the tenant's only, filtered by type.
    polled = httpx.get(f"{api.url}/v1/events", params={"limit": 100}, headers=auth_a).json()
    assert {e["id"] for e in polled["data"]} == ids_a
    only_subs = httpx.get(
        f"{api.url}/v1/events", params={"type": "subscription.*"}, headers=auth_a
    ).json()["data"]
    assert [e["id"] for e in only_subs] and all(
        e["type"].startswith("subscription.") for e in only_subs
    )
    theirs = httpx.get(f"{api.url}/v1/events", params={"limit": 100}, headers=auth_b).json()
    assert not ids_a & {e["id"] for e in theirs["data"]}

    # A redelivery of every event (a new consumer group) makes no second delivery.
    with engine(api.settings).connect() as conn:
        count = "SELECT count(*) FROM webhooks.deliveries WHERE endpoint_id = :e"
        made_before = conn.execute(text(count), {"e": hook_a["id"]}).scalar_one()
    publish_and_fan_out(api, settings, again)
    with engine(api.settings).connect() as conn:
        assert conn.execute(text(count), {"e": hook_a["id"]}).scalar_one() == made_before

    # Replay: one event, then a time range, delivered again.
    first = of_sub[0]
    one = httpx.post(
        f"{api.url}/v1/webhook-endpoints/{hook_a['id']}/replay",
        json={"event_id": first},
        headers=auth_a,
    )
    assert (one.status_code, one.json()) == (202, {"deliveries": 1}), one.text
    ranged = httpx.post(
        f"{api.url}/v1/webhook-endpoints/{hook_a['id']}/replay",
        json={"since": events_a[0]["occurred_at"].isoformat()},
        headers=auth_a,
    )
    assert ranged.json() == {"deliveries": len(ids_a)}, ranged.text
    deliver_until(api, settings, lambda: pending(api, hook_a["id"]) == 0)
    assert flaky.delivered_ids().count(first) == 3
    assert {i for i in flaky.delivered_ids() if flaky.delivered_ids().count(i) >= 2} == ids_a
    # B cannot replay A's event to its own endpoint: not its event.
    stolen = httpx.post(
        f"{api.url}/v1/webhook-endpoints/{hook_b['id']}/replay",
        json={"event_id": first},
        headers=auth_b,
    )
    assert stolen.status_code == 404, stolen.text


def test_an_endpoint_that_always_fails_is_disabled_and_its_tenant_emailed(
    api: Api, topics: None, tenant: Callable[[], tuple[str, dict[str, str]]]
) -> None:
    settings = fast(api.settings, webhook_disable_after_failures=3, webhook_disable_after_hours=0)
    _, auth = tenant()
    contact = f"ops-{uuid.uuid4().hex[:6]}@partner.example.com"
    group = group_from_now(api.settings, "webhooks")
    with receiver(always=500) as down:
        hook = endpoint(api, auth, down.url, contact_email=contact, event_types=["customer.*"])
        customer = httpx.post(
            f"{api.url}/v1/customers",
            json={"email": f"{uuid.uuid4().hex[:10]}@example.com", "name": "Ada"},
            headers=auth,
        )
        assert customer.status_code == 201, customer.text
        publish_and_fan_out(api, settings, group)
        assert pending(api, hook["id"]) == 1
        deliver_until(api, settings, lambda: pending(api, hook["id"]) == 0)
        tries = len(down.got)

    shown = httpx.get(f"{api.url}/v1/webhook-endpoints/{hook['id']}", headers=auth).json()
    assert shown["enabled"] is False
    assert "3 failed attempts in a row" in shown["disabled_reason"]
    assert tries == 3  # disabled: no further attempts
    mails = sent_to(api, contact)
    assert [m["subject"] for m in mails] == [
        "[paywall] Webhook endpoint disabled after repeated failures"
    ]
    # Enabled again, its waiting delivery is due once more.
    enabled = httpx.post(f"{api.url}/v1/webhook-endpoints/{hook['id']}/enable", headers=auth)
    assert enabled.json()["enabled"] is True
    assert pending(api, hook["id"]) == 1


def stored_secret(api: Api, endpoint_id: str) -> str:
    """The endpoint's secret as the database holds it: sealed, opening only for its own
    endpoint, and to the secret the partner was shown."""
    from paywall.errors import ConfigError
    from paywall.secret_box import PREFIX, SecretBox

    with engine(api.settings).connect() as conn:
        stored = conn.execute(
            text("SELECT secret FROM webhooks.endpoints WHERE id = :e"), {"e": endpoint_id}
        ).scalar_one()
    assert stored.startswith(PREFIX) and "whsec_" not in stored
    box = SecretBox.from_settings(api.settings)
    with pytest.raises(ConfigError, match="does not open"):
        box.open(stored, str(uuid.uuid4()))
    return box.open(stored, endpoint_id)


def test_endpoints_are_managed_per_tenant_with_secrets_shown_once(
    api: Api, tenant: Callable[[], tuple[str, dict[str, str]]]
) -> None:
    _, auth = tenant()
    _, other = tenant()
    key = str(uuid.uuid4())
    body = {"url": "https://partner.example.com/hooks", "event_types": ["invoice.*"]}
    first = httpx.post(
        f"{api.url}/v1/webhook-endpoints", json=body, headers={**auth, "Idempotency-Key": key}
    )
    again = httpx.post(
        f"{api.url}/v1/webhook-endpoints", json=body, headers={**auth, "Idempotency-Key": key}
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["secret"] is None
    other_body = httpx.post(
        f"{api.url}/v1/webhook-endpoints",
        json={**body, "url": "https://elsewhere.example.com"},
        headers={**auth, "Idempotency-Key": key},
    )
    assert other_body.status_code == 422
    hook = first.json()
    listed = httpx.get(f"{api.url}/v1/webhook-endpoints", headers=auth).json()
    assert [h["id"] for h in listed["data"]] == [hook["id"]]
    assert "secret" not in listed["data"][0]
    assert httpx.get(f"{api.url}/v1/webhook-endpoints", headers=other).json()["data"] == []
    hidden = httpx.get(f"{api.url}/v1/webhook-endpoints/{hook['id']}", headers=other)
    assert hidden.status_code == 404
    assert stored_secret(api, hook["id"]) == hook["secret"]
    rotated = httpx.post(f"{api.url}/v1/webhook-endpoints/{hook['id']}/rotate-secret", headers=auth)
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != hook["secret"]
    assert stored_secret(api, hook["id"]) == rotated.json()["secret"]
    off = httpx.post(f"{api.url}/v1/webhook-endpoints/{hook['id']}/disable", headers=auth)
    assert off.json()["enabled"] is False
    refused = httpx.post(
        f"{api.url}/v1/webhook-endpoints/{hook['id']}/replay",
        json={"since": "2026-01-01T00:00:00Z"},
        headers=auth,
    )
    assert refused.status_code == 409
    for bad in (
        {"url": "ftp://partner.example.com"},
        {"url": "https://x.example.com", "event_types": ["user.created"]},
        {"url": "https://x.example.com", "secret": "mine"},
    ):
        answer = httpx.post(f"{api.url}/v1/webhook-endpoints", json=bad, headers=auth)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_the_cli_creates_lists_rotates_replays_and_disables(
    api: Api,
    cli_env: dict[str, str],
    topics: None,
    steady: Receiver,
    issue_token: Callable[..., str],
) -> None:
    from tests.integration.test_cli import run

    tenant_id = f"wh-cli-{uuid.uuid4().hex[:6]}"
    made = run(
        [
            "webhooks",
            "create",
            "--tenant",
            tenant_id,
            "--url",
            steady.url,
            "--json",
            "--event-type",
            "customer.*",
        ],
        cli_env,
    )
    assert made.returncode == 0, made.stderr
    hook = json.loads(made.stdout)
    assert hook["secret"].startswith("whsec_") and hook["tenant_id"] == tenant_id
    listed = run(["webhooks", "list", "--tenant", tenant_id, "--json"], cli_env)
    assert [e["id"] for e in json.loads(listed.stdout)] == [hook["id"]]
    assert "whsec_" not in listed.stdout
    rotated = run(["webhooks", "rotate-secret", hook["id"], "--json"], cli_env)
    secret = json.loads(rotated.stdout)["secret"]
    assert secret.startswith("whsec_") and secret != hook["secret"]

    # An event of the tenant, delivered by the worker command, signed with the new secret.
    group = group_from_now(api.settings, "webhooks")
    internal = {"Authorization": f"Bearer {issue_token('customers:write', tenant_id)}"}
    customer = httpx.post(
        f"{api.url}/v1/customers",
        json={"email": f"{uuid.uuid4().hex[:10]}@example.com", "name": "Ada"},
        headers=internal,
    )
    assert customer.status_code == 201, customer.text
    publish_and_fan_out(api, fast(api.settings), group)
    sent = run(["webhooks", "deliver", "--once"], cli_env)
    assert sent.returncode == 0, sent.stderr
    [got] = steady.got
    Webhook(secret).verify(got.body, got.headers)

    replayed = run(
        ["webhooks", "replay", hook["id"], "--event", got.headers["webhook-id"]], cli_env
    )
    assert "1 deliveries queued" in replayed.stdout, replayed.stdout + replayed.stderr
    assert run(["webhooks", "deliver", "--once"], cli_env).returncode == 0
    assert steady.delivered_ids() == [got.headers["webhook-id"]] * 2

    off = run(["webhooks", "disable", hook["id"]], cli_env)
    assert off.returncode == 0 and "disabled" in off.stdout
    refused = run(["webhooks", "replay", hook["id"], "--since", "2026-01-01"], cli_env)
    assert refused.returncode == 2 and "disabled" in refused.stderr
    bad = run(["webhooks", "create", "--tenant", tenant_id, "--url", "not a url"], cli_env)
    assert bad.returncode == 2 and "url" in bad.stderr
