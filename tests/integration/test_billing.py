"""Billing runs, dunning, audit archives and notification batches, materialized in process
against the real local stack: Postgres, the services over HTTP, localstripe, moto, the sink.

Subscriptions are made through the signup API, then moved in time by the test (their
period end set to a past day), because daily partitions end with the last complete day;
the run's "today" is the partition, so the outcome is the same as on that day.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from dagster import AssetSelection, materialize
from dateutil.relativedelta import relativedelta

from assets.audit_archive import archive
from assets.audit_archive.assets import audit_archive, audit_archive_verified
from assets.billing.assets import billing_run
from assets.billing.charges import idempotency_key
from assets.notifications.assets import notification_batch
from paywall import clients
from paywall.db import engine
from paywall.service_client import SERVICE_SCOPES
from pipelines.resources import build_resources
from streaming import contracts
from streaming.consumers.audit import CHAIN_LOCK, chain_hash
from streaming.consumers.notification import Notifier
from streaming.consumers.runner import Delivery
from streaming.notifications.senders import Senders
from streaming.topics import EVENT_TOPICS
from tests.conftest import Api, register_client
from tests.integration.test_signup import (
    DECLINED_ON_CHARGE,
    GOOD_CARD,
    card,
    register,
    signup_body,
)

pytestmark = pytest.mark.integration


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def resources(api: Api, issue_token: Callable[..., str]) -> dict[str, Any]:
    """The code location's resources, with billing's own OAuth client (client credentials)."""
    from pydantic import SecretStr

    client_id, secret = register_client(
        api.settings, " ".join(SERVICE_SCOPES["billing"]), prefix="svc-billing"
    )
    settings = api.settings.model_copy(
        update={
            "billing_client_id": client_id,
            "billing_client_secret": SecretStr(secret),
            "billing_payment_concurrency": 4,
            "ops_alert_email": "ops-test@paywall.dev",
        }
    )
    return build_resources(settings)


@pytest.fixture(scope="module")
def token(issue_token: Callable[..., str]) -> str:
    return issue_token(
        "registrations:write customers:read subscriptions:read subscriptions:write",
        f"tenant-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture(scope="module")
def internal_token(issue_token: Callable[..., str]) -> str:
    return issue_token(
        "payments:write payments:read subscriptions:read subscriptions:write internal"
    )


def sql(api: Api, query: str, *params: Any) -> list[tuple[Any, ...]]:
    assert api.settings.database_url
    with psycopg.connect(api.settings.database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def signup(api: Api, token: str, number: str = GOOD_CARD, **extra: Any) -> dict[str, Any]:
    resp = register(api, token, signup_body(api, number, **extra), str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def move_period_end(api: Api, sub_id: str, end: datetime) -> None:
    """Time travel for the test: the subscription's current period ends at `end`, and its
    signup's first-period invoice, when that is the current period's, travels with it."""
    for table, key in (("invoice_lines", "invoice_id"), ("invoices", "id")):
        sql(
            api,
            f"UPDATE billing.{table} SET period_start = %s, period_end = %s WHERE {key} IN "
            "(SELECT i.id FROM billing.invoices i JOIN subscription.subscriptions s "
            "ON s.id = i.subscription_id AND i.period_start = s.current_period_start "
            "WHERE s.id = %s AND i.kind = 'first_period')",
            end - relativedelta(months=1),
            end,
            sub_id,
        )
    sql(
        api,
        "UPDATE subscription.subscriptions SET current_period_end = %s, "
        "current_period_start = %s, trial_end = CASE WHEN status = 'trialing' THEN %s END "
        "WHERE id = %s",
        end,
        end - relativedelta(months=1),
        end,
        sub_id,
    )


def subscription(api: Api, sub_id: str) -> dict[str, Any]:
    row = sql(
        api,
        "SELECT status, plan_id, pending_plan_id, current_period_start, current_period_end, "
        "canceled_at FROM subscription.subscriptions WHERE id = %s",
        sub_id,
    )[0]
    keys = ("status", "plan_id", "pending_plan_id", "start", "end", "canceled_at")
    return dict(zip(keys, row, strict=True))


def invoices(api: Api, sub_id: str) -> list[dict[str, Any]]:
    rows = sql(
        api,
        "SELECT id, status, amount, plan_id, attempts, period_start, pending_action "
        # The billing run's: a signup's first-period invoice is the registration saga's.
        "FROM billing.invoices WHERE subscription_id = %s AND kind <> 'first_period' "
        "ORDER BY period_start",
        sub_id,
    )
    keys = ("id", "status", "amount", "plan_id", "attempts", "period_start", "pending_action")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def payments_for(api: Api, invoice_id: uuid.UUID) -> int:
    return int(
        sql(
            api,
            "SELECT count(*) FROM payment.payments WHERE metadata->>'invoice_id' = %s",
            str(invoice_id),
        )[0][0]
    )


def outbox(api: Api, sub_id: str) -> list[str]:
    rows = sql(
        api, "SELECT type FROM subscription.outbox WHERE aggregate_id = %s ORDER BY seq", sub_id
    )
    return [r[0] for r in rows]


def bill(resources: dict[str, Any], day: date) -> dict[str, Any]:
    result = materialize([billing_run], partition_key=day.isoformat(), resources=resources)
    assert result.success
    mat = result.asset_materializations_for_node("billing_run")[0]
    return {k: v.value for k, v in mat.metadata.items()}


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# -- the subscription service's internal endpoints for billing ----------------------------


def test_due_subscriptions_are_internal_and_paged(
    api: Api, token: str, internal_token: str
) -> None:
    day = date(2026, 7, 1)
    regs = [signup(api, token), signup(api, token)]
    for reg in regs:
        move_period_end(api, reg["subscription_id"], at(day, 5))
    auth = {"Authorization": f"Bearer {internal_token}"}
    seen, after, pages = [], None, 0
    while True:
        params = {"date": day.isoformat(), "limit": 1, **({"after": after} if after else {})}
        page = httpx.get(f"{api.url}/v1/due-subscriptions", params=params, headers=auth)
        assert page.status_code == 200, page.text
        pages += 1
        seen += [
            (d["subscription"]["id"], d["action"], d["plan"]["id"]) for d in page.json()["data"]
        ]
        after = page.json()["next_after"]
        if not after:
            break
    assert sorted(seen) == sorted((r["subscription_id"], "renew", "pro-monthly") for r in regs)
    assert pages == 3  # two full pages of one, then an empty one

    customer_token = {"Authorization": f"Bearer {token}"}
    refused = httpx.get(
        f"{api.url}/v1/due-subscriptions", params={"date": day.isoformat()}, headers=customer_token
    )
    assert refused.status_code == 403
    assert (
        httpx.get(
            f"{api.url}/v1/due-subscriptions", params={"date": "not-a-day"}, headers=auth
        ).status_code
        == 422
    )

    sub_id = regs[0]["subscription_id"]
    body = {
        "invoice_id": "inv-x",
        "payment_id": "pay-x",
        "plan_id": "pro-monthly",
        "period_start": at(day + timedelta(days=1), 5).isoformat(),
        "period_end": at(day + timedelta(days=31), 5).isoformat(),
    }
    wrong = httpx.post(f"{api.url}/v1/subscriptions/{sub_id}/renew", json=body, headers=auth)
    assert wrong.status_code == 409
    assert wrong.headers["content-type"].startswith("application/problem+json")
    backwards = {**body, "period_end": body["period_start"]}
    assert (
        httpx.post(
            f"{api.url}/v1/subscriptions/{sub_id}/renew", json=backwards, headers=auth
        ).status_code
        == 422
    )
    not_internal = httpx.post(
        f"{api.url}/v1/subscriptions/{sub_id}/renew", json=body, headers=customer_token
    )
    assert not_internal.status_code == 403
    assert subscription(api, sub_id)["end"] == at(day, 5)  # nothing changed
    assert "subscription.renewed" not in outbox(api, sub_id)


def test_renewals_in_a_batch_are_each_applied_once_as_their_own_calls_would_be(
    api: Api, token: str, internal_token: str
) -> None:
    day = date(2026, 7, 3)
    good, stale = signup(api, token), signup(api, token)
    for reg in (good, stale):
        move_period_end(api, reg["subscription_id"], at(day, 5))
    auth = {"Authorization": f"Bearer {internal_token}"}
    url = f"{api.url}/v1/subscription-renewals"

    def renewal(reg: dict[str, Any], start: datetime, action: str = "renew") -> dict[str, Any]:
        return {
            "subscription_id": reg["subscription_id"],
            "action": action,
            "invoice_id": f"inv-{reg['subscription_id']}",
            "payment_id": f"pay-{reg['subscription_id']}",
            "plan_id": "pro-monthly",
            "period_start": start.isoformat(),
            "period_end": (start + relativedelta(months=1)).isoformat(),
        }

    gone = {**renewal(good, at(day, 5)), "subscription_id": str(uuid.uuid4())}
    batch = {
        "renewals": [
            renewal(good, at(day, 5)),
            renewal(stale, at(day + timedelta(days=1), 5)),  # not where its period ends
            gone,
        ]
    }
    answered = httpx.post(url, json=batch, headers=auth)
    assert answered.status_code == 200, answered.text
    statuses = [(r["subscription_id"], r["status"]) for r in answered.json()["results"]]
    assert statuses == [
        (good["subscription_id"], 200),
        (stale["subscription_id"], 409),
        (gone["subscription_id"], 404),
    ]
    refused = answered.json()["results"][1]["problem"]
    assert refused["status"] == 409 and "cannot move" in refused["detail"]
    assert subscription(api, good["subscription_id"])["start"] == at(day, 5)
    assert subscription(api, stale["subscription_id"])["end"] == at(day, 5)  # untouched

    # The answer lost, the batch is sent again: nothing is renewed twice.
    again = httpx.post(url, json=batch, headers=auth)
    assert [r["status"] for r in again.json()["results"]] == [200, 409, 404]
    assert outbox(api, good["subscription_id"]).count("subscription.renewed") == 1
    assert "subscription.renewed" not in outbox(api, stale["subscription_id"])

    # Bad batches change nothing: a subscription twice, none, another caller than billing.
    twice = {"renewals": [renewal(stale, at(day, 5)), renewal(stale, at(day, 5), "reactivate")]}
    assert httpx.post(url, json=twice, headers=auth).status_code == 422
    assert httpx.post(url, json={"renewals": []}, headers=auth).status_code == 422
    partner = httpx.post(url, json=batch, headers={"Authorization": f"Bearer {token}"})
    assert partner.status_code == 403
    assert subscription(api, stale["subscription_id"])["end"] == at(day, 5)


# -- billing -------------------------------------------------------------------------------


def test_a_billing_day_run_twice_invoices_and_charges_once(
    api: Api, token: str, resources: dict[str, Any]
) -> None:
    day = date(2026, 5, 12)
    reg = signup(api, token)
    sub_id = reg["subscription_id"]
    move_period_end(api, sub_id, at(day))

    first = bill(resources, day)
    assert first["invoiced"] >= 1 and first["paid"] >= 1 and first["renewed"] >= 1
    [invoice] = invoices(api, sub_id)
    assert (invoice["status"], invoice["amount"], invoice["attempts"]) == ("paid", 2900, 1)
    assert invoice["pending_action"] is None
    sub = subscription(api, sub_id)
    assert sub["status"] == "active"
    assert sub["start"] == at(day)
    assert sub["end"] == at(day) + relativedelta(months=1)
    assert payments_for(api, invoice["id"]) == 1
    # The invoice as the billing service shows it: tenant, one line, totals, all paid.
    [(tenant_id, lines, total, paid, due)] = sql(
        api,
        "SELECT tenant_id, (SELECT array_agg(amount) FROM billing.invoice_lines "
        "WHERE invoice_id = i.id), total, amount_paid, amount_due FROM billing.invoices i "
        "WHERE id = %s",
        invoice["id"],
    )
    [(sub_tenant,)] = sql(
        api, "SELECT tenant_id FROM subscription.subscriptions WHERE id = %s", sub_id
    )
    assert sub_tenant and (tenant_id, lines, total, paid, due) == (
        sub_tenant,
        [2900],
        2900,
        2900,
        0,
    )
    # Its events, built set-based by the run, keep their contracts.
    events = sql(
        api,
        "SELECT payload FROM billing.outbox WHERE aggregate_id = %s ORDER BY seq",
        str(invoice["id"]),
    )
    for (envelope,) in events:
        contracts.validate(envelope)
    assert [e[0]["event_type"] for e in events] == [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
    ]

    # The same day again: nothing is due any more, nothing is charged or invoiced.
    again = bill(resources, day)
    assert (again["invoiced"], again["charged"], again["renewed"]) == (0, 0, 0)
    assert len(invoices(api, sub_id)) == 1
    assert payments_for(api, invoice["id"]) == 1

    # As if the first run had died after charging but before recording it: the re-run asks
    # the payment service again with the same Idempotency-Key and gets the first answer.
    sql(
        api,
        "UPDATE billing.invoices SET status = 'open', attempts = 0, payment_id = NULL "
        "WHERE id = %s",
        invoice["id"],
    )
    resumed = bill(resources, day)
    assert resumed["charged"] == 1 and resumed["paid"] == 1
    assert payments_for(api, invoice["id"]) == 1
    [again_invoice] = invoices(api, sub_id)
    assert again_invoice["status"] == "paid"
    # Stored in the billing client's namespace: "client:<id>|<key>".
    key = "%|" + idempotency_key(invoice["id"], 1)
    assert sql(api, "SELECT count(*) FROM payment.payments WHERE idempotency_key LIKE %s", key) == [
        (1,)
    ]
    # One renewal event, however many runs.
    assert outbox(api, sub_id).count("subscription.renewed") == 1

    # localstripe: the signup charge and one renewal, nothing more.
    stripe_customer = sql(
        api,
        "SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = %s",
        reg["customer_id"],
    )[0][0]
    intents = clients.stripe_client(api.settings).v1.payment_intents.list(params={"limit": 100})
    assert sum(1 for pi in intents.auto_paging_iter() if pi.customer == stripe_customer) == 2


def test_downgrade_takes_effect_and_cancel_at_period_end_cancels(
    api: Api, token: str, resources: dict[str, Any]
) -> None:
    day = date(2026, 5, 20)
    auth = {"Authorization": f"Bearer {token}"}
    down = signup(api, token)
    changed = httpx.post(
        f"{api.url}/v1/subscriptions/{down['subscription_id']}/change-plan",
        json={"plan_id": "basic-monthly"},
        headers=auth,
    )
    assert changed.status_code == 200 and changed.json()["effective"] == "period_end"
    leaving = signup(api, token)
    canceled = httpx.post(
        f"{api.url}/v1/subscriptions/{leaving['subscription_id']}/cancel",
        json={"at_period_end": True},
        headers=auth,
    )
    assert canceled.status_code == 200
    for reg in (down, leaving):
        move_period_end(api, reg["subscription_id"], at(day, 7))

    counts = bill(resources, day)
    assert counts["canceled"] == 1

    [invoice] = invoices(api, down["subscription_id"])
    assert (invoice["plan_id"], invoice["amount"], invoice["status"]) == (
        "basic-monthly",
        900,
        "paid",
    )
    sub = subscription(api, down["subscription_id"])
    assert (sub["status"], sub["plan_id"], sub["pending_plan_id"]) == (
        "active",
        "basic-monthly",
        None,
    )

    assert invoices(api, leaving["subscription_id"]) == []
    gone = subscription(api, leaving["subscription_id"])
    assert gone["status"] == "canceled" and gone["canceled_at"] == at(day, 7)
    assert outbox(api, leaving["subscription_id"])[-1] == "subscription.canceled"


def dunning_row(api: Api, invoice_id: uuid.UUID) -> tuple[Any, ...]:
    return sql(
        api,
        "SELECT failures, next_attempt_on, status FROM billing.dunning WHERE invoice_id = %s",
        invoice_id,
    )[0]


def test_a_failing_card_walks_dunning_day_by_day_to_canceled(
    api: Api, token: str, resources: dict[str, Any]
) -> None:
    start = date(2026, 6, 3)
    reg = signup(api, token, DECLINED_ON_CHARGE, trial=True)
    sub_id = reg["subscription_id"]
    assert subscription(api, sub_id)["status"] == "trialing"
    move_period_end(api, sub_id, at(start, 8))

    expected = {  # day offset → (failures, next retry offset, dunning status, subscription)
        0: (1, 1, "retrying", "past_due"),
        1: (2, 3, "retrying", "past_due"),
        2: (2, 3, "retrying", "past_due"),
        3: (3, 7, "retrying", "past_due"),
        4: (3, 7, "retrying", "past_due"),
        5: (3, 7, "retrying", "past_due"),
        6: (3, 7, "retrying", "past_due"),
        7: (4, None, "exhausted", "canceled"),
    }
    for offset, (failures, retry, status, sub_status) in expected.items():
        bill(resources, start + timedelta(days=offset))
        [invoice] = invoices(api, sub_id)
        next_on = start + timedelta(days=retry) if retry is not None else None
        assert dunning_row(api, invoice["id"]) == (failures, next_on, status), offset
        assert subscription(api, sub_id)["status"] == sub_status, offset
        assert payments_for(api, invoice["id"]) == failures

    [invoice] = invoices(api, sub_id)
    assert invoice["status"] == "uncollectible" and invoice["attempts"] == 4
    assert subscription(api, sub_id)["canceled_at"] == at(start + timedelta(days=7), 0)
    # Re-running the last day charges nothing more.
    bill(resources, start + timedelta(days=7))
    assert payments_for(api, invoice["id"]) == 4
    events = outbox(api, sub_id)
    assert events.count("subscription.past_due") == 1
    assert events.count("subscription.canceled") == 1


def past_due_trial(api: Api, token: str, resources: dict[str, Any], day: date) -> dict[str, Any]:
    """A trial whose card declines at its conversion, billed on `day`: past due, in dunning."""
    reg = signup(api, token, DECLINED_ON_CHARGE, trial=True)
    move_period_end(api, reg["subscription_id"], at(day, 8))
    bill(resources, day)
    assert subscription(api, reg["subscription_id"])["status"] == "past_due"
    return reg


def test_paid_during_dunning_reactivates(
    api: Api, token: str, internal_token: str, resources: dict[str, Any]
) -> None:
    start = date(2026, 6, 20)
    reg = past_due_trial(api, token, resources, start)
    sub_id = reg["subscription_id"]

    # The customer fixes the card; the day-1 retry collects.
    fixed = httpx.post(
        f"{api.url}/v1/accounts/{reg['customer_id']}/payment-methods",
        json={"payment_method_id": card(api, GOOD_CARD)},
        headers={"Authorization": f"Bearer {internal_token}"},
    )
    assert fixed.status_code == 200, fixed.text
    counts = bill(resources, start + timedelta(days=1))
    assert counts["recovered"] >= 1
    [invoice] = invoices(api, sub_id)
    assert invoice["status"] == "paid" and invoice["attempts"] == 2
    assert dunning_row(api, invoice["id"])[2] == "recovered"
    sub = subscription(api, sub_id)
    assert sub["status"] == "active" and sub["start"] == at(start, 8)
    assert "subscription.reactivated" in outbox(api, sub_id)


def test_voided_during_dunning_forgives_the_period_and_reactivates(
    api: Api, token: str, issue_token: Callable[..., str], resources: dict[str, Any]
) -> None:
    start = date(2025, 9, 8)
    reg = past_due_trial(api, token, resources, start)
    sub_id = reg["subscription_id"]
    [invoice] = invoices(api, sub_id)

    operator = {"Authorization": f"Bearer {issue_token('operations internal')}"}
    voided = httpx.post(
        f"{api.url}/v1/invoices/{invoice['id']}/void",
        headers={**operator, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["amount_due"]) == ("void", 0)
    assert dunning_row(api, invoice["id"]) == (1, None, "abandoned")

    # The next run charges nothing more and gives the subscription the forgiven period.
    bill(resources, start + timedelta(days=1))
    assert payments_for(api, invoice["id"]) == 1
    sub = subscription(api, sub_id)
    assert sub["status"] == "active" and sub["start"] == at(start, 8)
    assert outbox(api, sub_id).count("subscription.reactivated") == 1
    bill(resources, start + timedelta(days=1))  # a rerun moves nothing twice
    assert outbox(api, sub_id).count("subscription.reactivated") == 1


# -- audit archive ---------------------------------------------------------------------------


def append_audit(api: Api, recorded_at: datetime, n: int) -> list[int]:
    """What the audit consumer does, with the append time set (days must be complete)."""
    seqs = []
    with engine(api.settings).begin() as conn:
        from sqlalchemy import bindparam, text
        from sqlalchemy.dialects.postgresql import JSONB

        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK})
        for i in range(n):
            last = conn.execute(
                text("SELECT seq, hash FROM audit.log ORDER BY seq DESC LIMIT 1")
            ).first()
            prev = last.hash if last else "0" * 64
            seq = (last.seq + 1) if last else 1
            env = {
                "event_id": str(uuid.uuid4()),
                "event_type": "customer.updated",
                "schema_version": 1,
                "occurred_at": recorded_at.isoformat(),
                "producer": "customer-service",
                "key": str(uuid.uuid4()),
                "data": {"customer_id": str(uuid.uuid4()), "name": f"Ada {i}"},
            }
            conn.execute(
                text(
                    "INSERT INTO audit.log (seq, event_id, event_type, occurred_at, recorded_at, "
                    'topic, partition, "offset", envelope, prev_hash, hash) VALUES (:seq, :e, '
                    ":t, :o, :r, 'customer', 0, :seq, :env, :prev, :hash)"
                ).bindparams(bindparam("env", type_=JSONB)),
                {
                    "seq": seq,
                    "e": env["event_id"],
                    "t": env["event_type"],
                    "o": recorded_at,
                    "r": recorded_at + timedelta(seconds=i),
                    "env": env,
                    "prev": prev,
                    "hash": chain_hash(prev, env),
                },
            )
            seqs.append(seq)
    return seqs


def check_passed(resources: dict[str, Any], day: date) -> tuple[bool, str]:
    result = materialize(
        [audit_archive, audit_archive_verified],
        resources=resources,
        selection=AssetSelection.checks(audit_archive_verified),
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation.passed, str(evaluation.metadata["problems"].value)


def test_audit_archive_is_verified_and_a_tampered_object_fails(
    api: Api, resources: dict[str, Any]
) -> None:
    day = date(2026, 4, 2)
    seqs = append_audit(api, at(day, 12), 5)
    result = materialize(
        [audit_archive, audit_archive_verified], partition_key=day.isoformat(), resources=resources
    )
    assert result.success
    meta = result.asset_materializations_for_node("audit_archive")[0].metadata
    assert meta["rows"].value == 5
    assert (meta["first_seq"].value, meta["last_seq"].value) == (seqs[0], seqs[-1])
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed

    lake = resources["lake"]
    manifest = json.loads(
        lake.client.get_object(Bucket=lake.bucket, Key=archive.manifest_key(day))["Body"].read()
    )
    data = lake.client.get_object(Bucket=lake.bucket, Key=archive.object_key(day))["Body"].read()
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"]
    # Archiving the day again writes the same bytes.
    again = archive.build(engine(api.settings), day)[0]
    assert again == data

    # Tampered: one event's data changed; the checksum no longer matches.
    lines = gzip.decompress(data).splitlines()
    record = json.loads(lines[2])
    record["envelope"]["data"]["name"] = "Mallory"
    lines[2] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    tampered = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    lake.client.put_object(Bucket=lake.bucket, Key=archive.object_key(day), Body=tampered)
    passed, problems = check_passed(resources, day)
    assert not passed and "SHA-256" in problems

    # Tampered with a matching manifest: the chain gives it away.
    forged = {**manifest, "sha256": hashlib.sha256(tampered).hexdigest(), "bytes": len(tampered)}
    lake.client.put_object(
        Bucket=lake.bucket, Key=archive.manifest_key(day), Body=json.dumps(forged).encode()
    )
    passed, problems = check_passed(resources, day)
    assert not passed and "hash does not match" in problems and "SHA-256" not in problems

    # Archived again from the database, it verifies.
    materialize([audit_archive], partition_key=day.isoformat(), resources=resources)
    assert check_passed(resources, day)[0]


# -- notification batches ------------------------------------------------------------------


def remember(api: Api, customer_id: str, email: str, phone: str, sms_opt_in: bool = True) -> None:
    """The notification service's own projection, as its consumer would have filled it."""
    sql(
        api,
        "INSERT INTO notification.recipients (customer_id, email, phone, name, sms_opt_in) "
        "VALUES (%s, %s, %s, 'Ada', %s) ON CONFLICT (customer_id) DO UPDATE SET "
        "email = excluded.email, phone = excluded.phone, sms_opt_in = excluded.sms_opt_in",
        customer_id,
        email,
        phone,
        sms_opt_in,
    )


def sink(api: Api, to: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{api.settings.sendgrid_api_host}/_sink/messages", params={"to": to})
    resp.raise_for_status()
    return list(resp.json())


@pytest.fixture
def phone() -> Iterator[str]:
    yield f"+1555{uuid.uuid4().int % 10**7:07d}"


def test_notification_batch_rerun_sends_nothing_new(
    api: Api, token: str, resources: dict[str, Any], phone: str
) -> None:
    day = date(2026, 8, 10)
    # A trial ending in three days, and a card that fails on the billing day.
    trial = signup(api, token, trial=True)
    move_period_end(api, trial["subscription_id"], at(day + timedelta(days=3), 9))
    trial_email = f"trial-{uuid.uuid4().hex[:8]}@example.com"
    remember(api, trial["customer_id"], trial_email, phone)
    failing = signup(api, token, DECLINED_ON_CHARGE, trial=True)
    move_period_end(api, failing["subscription_id"], at(day, 9))
    failing_email = f"dunning-{uuid.uuid4().hex[:8]}@example.com"
    remember(api, failing["customer_id"], failing_email, f"+1666{uuid.uuid4().int % 10**7:07d}")
    bill(resources, day)

    def run() -> dict[str, Any]:
        result = materialize(
            [notification_batch], partition_key=day.isoformat(), resources=resources
        )
        assert result.success
        mat = result.asset_materializations_for_node("notification_batch")[0]
        return {k: v.value for k, v in mat.metadata.items()}

    first = run()
    assert first["emails_sent"] >= 2 and first["sms_sent"] >= 1
    assert first["email_api_calls"] == 1  # every email of the day in one SendGrid call
    [reminder] = sink(api, trial_email)
    assert reminder["subject"].startswith("Your Paywall trial ends on 2026-08-13")
    assert len(sink(api, phone)) == 1
    [notice] = sink(api, failing_email)
    assert notice["subject"] == "Your Paywall payment did not go through"

    second = run()
    assert (second["claimed"], second["emails_sent"], second["sms_sent"]) == (0, 0, 0)
    assert len(sink(api, trial_email)) == 1
    assert len(sink(api, phone)) == 1
    assert len(sink(api, failing_email)) == 1


def test_a_failed_charge_is_notified_once_whichever_path_is_first(
    api: Api, token: str, resources: dict[str, Any]
) -> None:
    """The payment service's payment.failed event (the consumer's path) and the day's dunning
    notice (the batch's) are one notice in the one ledger: the first path to it sends it."""
    day = date(2026, 8, 20)
    customers = {}
    for first in ("consumer", "batch"):
        reg = signup(api, token, DECLINED_ON_CHARGE, trial=True)
        move_period_end(api, reg["subscription_id"], at(day, 9))
        email = f"{first}-first-{uuid.uuid4().hex[:8]}@example.com"
        remember(api, reg["customer_id"], email, f"+1777{uuid.uuid4().int % 10**7:07d}")
        customers[first] = (reg["customer_id"], email)
    assert bill(resources, day)["failed"] >= 2
    notify = Notifier(engine(api.settings), Senders(api.settings))

    def deliver_payment_failed(customer_id: str) -> None:
        [(envelope,)] = sql(
            api,
            "SELECT payload FROM payment.outbox WHERE type = 'payment.failed' "
            "AND payload->'data'->>'customer_id' = %s",
            customer_id,
        )
        notify(Delivery(envelope, EVENT_TOPICS["payment"].name, 0, 0))

    deliver_payment_failed(customers["consumer"][0])
    batch = materialize([notification_batch], partition_key=day.isoformat(), resources=resources)
    assert batch.success
    deliver_payment_failed(customers["batch"][0])
    deliver_payment_failed(customers["consumer"][0])  # a redelivery changes nothing either

    [by_consumer] = sink(api, customers["consumer"][1])
    assert "was declined" in by_consumer["text"]  # the consumer's payment_failed template
    [by_batch] = sink(api, customers["batch"][1])
    assert "We will try again on 2026-08-21" in by_batch["text"]  # the batch's dunning one
    for sent in (by_consumer, by_batch):  # each offers its way to a new card
        assert f"{api.url}/portal/link?t=" in sent["text"]
    for customer_id, _ in customers.values():
        assert sql(
            api,
            "SELECT template, status FROM notification.sends WHERE customer_id = %s",
            customer_id,
        ) in ([("payment_failed", "sent")], [("dunning", "sent")])
