"""Billing reconciliation (the asset checks on `billing_run` and `notification_batch`) and
the billing partition's metadata, on the real local stack: each check passes on a normal
day and fails once the data is corrupted as a bug would corrupt it.

Each test bills its own day, which no other test bills (and no renewal of another test's
lands on), so a day's amounts are this test's.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from dagster import AssetSelection, materialize

from assets.billing.assets import billing_run
from assets.billing.checks import billing_invoiced_once, billing_paid_matches_charges
from assets.notifications.assets import notification_batch
from assets.notifications.checks import notification_batch_settled
from tests.conftest import Api
from tests.integration.test_billing import (  # noqa: F401 (fixtures)
    DECLINED_ON_CHARGE,
    at,
    internal_token,
    invoices,
    move_period_end,
    remember,
    resources,
    signup,
    sql,
    token,
)

pytestmark = pytest.mark.integration

CHECKS = (billing_invoiced_once, billing_paid_matches_charges)


def bill_and_check(
    given: dict[str, Any], day: date, *also: Any
) -> tuple[dict[str, Any] | None, dict[str, tuple[bool, dict[str, Any]]], Any]:
    """The day's billing run with its checks (as billing_job runs it): its metadata (None
    when it did not materialize), each check's (passed, metadata), and the result."""
    result = materialize(
        [billing_run, *CHECKS, *also],
        partition_key=day.isoformat(),
        resources=given,
        raise_on_error=False,
    )
    mats = result.asset_materializations_for_node("billing_run")
    meta = {k: v.value for k, v in mats[0].metadata.items()} if mats else None
    checks = {
        e.check_name: (e.passed, {k: v.value for k, v in e.metadata.items()})
        for e in result.get_asset_check_evaluations()
    }
    return meta, checks, result


def test_a_normal_day_reconciles_and_its_metadata_has_the_amounts(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
) -> None:
    day = date(2026, 11, 10)
    pro = signup(api, token)
    basic = signup(api, token, plan_id="basic-monthly")
    failing = signup(api, token, DECLINED_ON_CHARGE, trial=True)  # a trial conversion
    for reg in (pro, basic, failing):
        move_period_end(api, reg["subscription_id"], at(day))

    meta, checks, result = bill_and_check(resources, day)
    assert result.success and meta is not None
    assert checks["billing_invoiced_once"][0], checks["billing_invoiced_once"]
    assert checks["billing_invoiced_once"][1]["due_seen"] == 3
    assert checks["billing_paid_matches_charges"][0], checks["billing_paid_matches_charges"]
    paid = checks["billing_paid_matches_charges"][1]
    assert paid["paid_usd"] == paid["charged_less_refunds_usd"] >= 3800

    # Amounts per currency, in major units: 29 + 9 + 29 invoiced, 38 collected, 29 failed,
    # besides what dunning retries of other tests' invoices (due on or before the day)
    # collected or failed on it.
    mine = [pro["customer_id"], basic["customer_id"], failing["customer_id"]]
    [(others_paid, others_failed)] = sql(
        api,
        "SELECT (SELECT coalesce(sum(amount_paid), 0) FROM billing.invoices WHERE paid_on = %s "
        "AND customer_id <> ALL(%s)), (SELECT coalesce(sum(i.total), 0) FROM billing.attempts a "
        "JOIN billing.invoices i ON i.id = a.invoice_id WHERE a.attempted_on = %s "
        "AND a.status = 'failed' AND i.customer_id <> ALL(%s))",
        day,
        mine,
        day,
        mine,
    )
    assert meta["invoiced_usd"] == pytest.approx(67.00)
    assert meta["collected_usd"] == pytest.approx(38.00 + int(others_paid) / 100)
    assert meta["failed_usd"] == pytest.approx(29.00 + int(others_failed) / 100)
    assert meta["credited_usd"] == 0  # no credit note issued that day
    # Past due across every day up to this one, as of now (other tests' dunning too).
    [(owed,)] = sql(
        api,
        "SELECT sum(amount_due) FROM billing.invoices WHERE status = 'open' AND attempts > 0 "
        "AND billing_date <= %s",
        day,
    )
    assert owed >= 2900 and meta["outstanding_past_due_usd"] == pytest.approx(owed / 100)
    assert "| USD | 67.00 |" in meta["amounts"]
    # The failed invoice, its customer, amount, attempt and next retry.
    [inv] = invoices(api, failing["subscription_id"])
    [(code,)] = sql(api, "SELECT decline_code FROM billing.invoices WHERE id = %s", inv["id"])
    assert code
    row = (
        f"| {failing['customer_id']} | {inv['id']} | 29.00 USD | 1 | {code} "
        f"| {(day + timedelta(days=1)).isoformat()} |"
    )
    assert meta["failed_invoice_count"] >= 1
    assert row in meta["failed_invoices"], meta["failed_invoices"]


def test_invoiced_once_fails_on_a_duplicate_period_and_on_a_missing_invoice(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
) -> None:
    day = date(2026, 11, 12)
    reg = signup(api, token)
    move_period_end(api, reg["subscription_id"], at(day))
    _, checks, _ = bill_and_check(resources, day)
    assert checks["billing_invoiced_once"][0]
    [inv] = invoices(api, reg["subscription_id"])

    # A second invoice for the same period, its start a second off (what the unique key
    # cannot see). A draft, so the re-run does not charge it.
    sql(
        api,
        "INSERT INTO billing.invoices (id, subscription_id, customer_id, tenant_id, plan_id, "
        "kind, amount, subtotal, total, amount_due, currency, period_start, period_end, "
        "billing_date, status) SELECT gen_random_uuid(), subscription_id, customer_id, "
        "tenant_id, plan_id, kind, amount, subtotal, total, total, currency, "
        "period_start + interval '1 second', period_end, billing_date, 'draft' "
        "FROM billing.invoices WHERE id = %s",
        inv["id"],
    )
    meta, checks, result = bill_and_check(resources, day, notification_batch)
    passed, found = checks["billing_invoiced_once"]
    assert not passed and found["overlapping"] == 2
    assert f"invoice {inv['id']} overlaps" in found["problems"]
    # Blocking: what reads the day downstream does not run.
    assert meta is not None and not result.success
    assert not result.asset_materializations_for_node("notification_batch")

    # The duplicate gone, but the real invoice lost: what the run was given has none.
    sql(
        api,
        "DELETE FROM billing.invoices WHERE subscription_id = %s AND id <> %s "
        "AND kind <> 'first_period'",
        reg["subscription_id"],
        inv["id"],
    )
    _, checks, _ = bill_and_check(resources, day)
    assert checks["billing_invoiced_once"][0]
    for table in ("invoice_lines", "attempts"):
        sql(api, f"DELETE FROM billing.{table} WHERE invoice_id = %s", inv["id"])
    sql(api, "DELETE FROM billing.invoices WHERE id = %s", inv["id"])
    _, checks, _ = bill_and_check(resources, day)
    passed, found = checks["billing_invoiced_once"]
    assert not passed and found["missing"] == 1
    assert f"subscription {reg['subscription_id']}: due from" in found["problems"]


def test_paid_matches_charges_fails_on_a_paid_invoice_without_a_charge_and_on_a_refund(
    api: Api,
    token: str,  # noqa: F811
    internal_token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
) -> None:
    day = date(2026, 11, 17)
    reg = signup(api, token)
    move_period_end(api, reg["subscription_id"], at(day))
    _, checks, _ = bill_and_check(resources, day)
    assert checks["billing_paid_matches_charges"][0]

    # An invoice in another currency marked paid with no charge behind it.
    forged = uuid.uuid4()
    sql(
        api,
        "INSERT INTO billing.invoices (id, subscription_id, customer_id, plan_id, kind, "
        "amount, subtotal, total, amount_paid, currency, period_start, period_end, "
        "billing_date, status, paid_on, attempts) VALUES (%s, gen_random_uuid(), %s, "
        "'pro-monthly', 'renewal', 1500, 1500, 1500, 1500, 'eur', %s, %s, %s, 'paid', %s, 1)",
        forged,
        reg["customer_id"],
        at(day),
        at(day + timedelta(days=30)),
        day,
        day,
    )
    meta, checks, _ = bill_and_check(resources, day)
    passed, found = checks["billing_paid_matches_charges"]
    assert not passed
    assert (found["paid_eur"], found["charged_less_refunds_eur"]) == (1500, 0)
    assert found["paid_usd"] == found["charged_less_refunds_usd"] >= 2900
    assert "eur: invoices paid 1500, charged less refunds 0" in found["problems"]
    assert checks["billing_invoiced_once"][0]  # one problem, one check
    # The metadata shows each currency apart.
    assert meta is not None
    assert (meta["invoiced_eur"], meta["collected_eur"]) == (15.0, 15.0)
    assert meta["collected_usd"] >= 29.0
    sql(api, "DELETE FROM billing.invoices WHERE id = %s", forged)

    # Money given back without the invoice knowing (no credit note): a mismatch too.
    [inv] = invoices(api, reg["subscription_id"])
    [(payment_id,)] = sql(api, "SELECT payment_id FROM billing.invoices WHERE id = %s", inv["id"])
    refund = httpx.post(
        f"{api.url}/v1/payments/{payment_id}/refunds",
        json={"amount": 500},
        headers={"Authorization": f"Bearer {internal_token}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=30,
    )
    assert refund.status_code == 201, refund.text
    _, checks, _ = bill_and_check(resources, day)
    passed, found = checks["billing_paid_matches_charges"]
    assert not passed
    assert found["paid_usd"] - found["charged_less_refunds_usd"] == 500
    assert f"invoice {inv['id']}: paid 2900 usd, charged less refunds 2400" in found["problems"]


def settled(given: dict[str, Any], day: date | None) -> tuple[bool, dict[str, Any]]:
    if day is None:  # on its own: today
        result = materialize(
            [notification_batch, notification_batch_settled],
            resources=given,
            selection=AssetSelection.checks(notification_batch_settled),
            raise_on_error=False,
        )
    else:
        result = materialize(
            [notification_batch, notification_batch_settled],
            partition_key=day.isoformat(),
            resources=given,
        )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation.passed, {k: v.value for k, v in evaluation.metadata.items()}


def test_notification_batch_settled_fails_on_a_notice_left_pending(
    api: Api,
    token: str,  # noqa: F811
    resources: dict[str, Any],  # noqa: F811
) -> None:
    day = date(2026, 11, 19)
    failing = signup(api, token, DECLINED_ON_CHARGE, trial=True)
    move_period_end(api, failing["subscription_id"], at(day))
    remember(api, failing["customer_id"], f"recon-{uuid.uuid4().hex[:8]}@example.com", "+15550001")
    bill_and_check(resources, day)
    passed, found = settled(resources, day)
    assert passed, found

    # A notice claimed for the day that no batch sent, failed or skipped.
    key = f"recon-test:{uuid.uuid4()}"
    sql(
        api,
        "INSERT INTO notification.sends (dedupe_key, customer_id, channel, template, status, "
        "due_on, values) VALUES (%s, %s, 'email', 'dunning', 'pending', %s, '{}')",
        key,
        failing["customer_id"],
        day,
    )
    passed, found = settled(resources, None)
    assert not passed and key in found["problems"]
    sql(api, "DELETE FROM notification.sends WHERE dedupe_key = %s", key)
