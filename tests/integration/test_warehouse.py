"""Lake → DuckDB warehouse → dbt marts, on the real moto S3 of the local stack.

A small synthetic history (Jan to Mar 2025, USD) is written to the lake in its exact layout;
every MRR figure asserted below is worked out by hand from it:

    customer  Jan                       Feb                          Mar
    A         pro 29 (new)              upgraded to team 99 (+70)    99
    B         trialing (0)              trial → basic 9 (new),       9 (past due Mar 4,
                                        after one failed charge      paid Mar 6)
    C         team 99 (new)             downgrade scheduled, paused  29
                                        and resumed; at period end
                                        (Feb 8) → pro 29 (-70),
                                        renewed by billing an hour
                                        later
    D         pro 29 (new)              cancel at period end         canceled Mar 12 (-29)
    E         basic 9 (new)             canceled Feb 5 (-9),         new subscription on
                                        payment refunded             basic 9 (reactivation)
    F         —                         pro yearly 290 → 24.166667   24.166667
    G         registration failed, never subscribed

    MRR       166                       190.166667                   170.166667
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import os
import shutil
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.warehouse import (
    DuckDBWarehouse,
    LakePartition,
    list_lake_partitions,
    load_partition,
    partitions_to_load,
)
from paywall.clients import ensure_bucket, s3_client
from paywall.settings import Settings
from streaming import contracts
from streaming.lake import layout
from streaming.lake.config import lake_filesystem

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DBT_DIR = REPO / "dbt"
BUCKET = "paywall-lake-warehouse-test"
QUERY = "3f1c2a9e-0000-4000-8000-00000000b001"  # a streaming query id, as the lake job names files
AS_OF = "2025-03-31 23:00:00"
UTC = dt.UTC
JAN, FEB, MAR = dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)

PLANS = {  # id: (amount in cents, interval), as in the subscription service's catalogue
    "basic-monthly": (900, "month"),
    "pro-monthly": (2900, "month"),
    "pro-yearly": (29000, "year"),
    "team-monthly": (9900, "month"),
}
SERVICE = {
    "customer": "customer",
    "subscription": "subscription",
    "payment": "payment",
    "registration": "registration",
    "user": "auth",
    "invoice": "billing",
    "credit_note": "billing",
}


def at(month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, minute, tzinfo=UTC)


def _hash(value: str) -> str:
    return "sha256:" + uuid.uuid5(uuid.NAMESPACE_DNS, value).hex * 2


@dataclass
class Sub:
    id: str
    customer_id: str
    plan_id: str
    status: str
    period_start: dt.datetime
    period_end: dt.datetime
    trial_end: dt.datetime | None = None
    canceled_at: dt.datetime | None = None


@dataclass
class History:
    """Envelopes as the services emit them (data = the row after the change)."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def emit(
        self,
        event_type: str,
        when: dt.datetime,
        key: str,
        data: dict[str, Any],
        version: int = 1,
    ) -> None:
        self.events.append(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": event_type,
                "schema_version": version,
                "occurred_at": when,
                "producer": f"{SERVICE[event_type.split('.')[0]]}-service",
                "key": key,
                "data": data,
            }
        )

    def customer(self, cid: str, when: dt.datetime, name: str) -> None:
        self.emit(
            "customer.created",
            when,
            cid,
            {
                "customer_id": cid,
                "tenant_id": None,
                "email": _hash(f"{name}@example.com"),
                "name": _hash(name),
                "phone": None,
                "marketing_opt_in": name < "c",
                "status": "active",
            },
        )
        self.emit(
            "payment.account_created",
            when + dt.timedelta(seconds=1),
            cid,
            {"customer_id": cid, "tenant_id": None, "stripe_customer_id": f"cus_{name}"},
        )

    def sub_event(self, event_type: str, when: dt.datetime, sub: Sub, **extra: Any) -> None:
        data: dict[str, Any] = {
            "subscription_id": sub.id,
            "customer_id": sub.customer_id,
            "tenant_id": None,
            "plan_id": sub.plan_id,
            "status": sub.status,
            "current_period_start": sub.period_start.isoformat(),
            "current_period_end": sub.period_end.isoformat(),
            **extra,
        }
        if event_type != "subscription.created":
            data["previous_status"] = extra.get("previous_status", sub.status)
        self.emit(event_type, when, sub.id, data)

    def invoice(
        self, event_type: str, when: dt.datetime, inv: dict[str, Any], **extra: Any
    ) -> None:
        """billing's invoice.* data: the invoice after the change (amounts in cents);
        version 2 when it carries its subtotal, discount, tax and period."""
        version = 2 if "subtotal" in inv else 1
        self.emit(event_type, when, inv["invoice_id"], {**inv, **extra}, version)

    def bill(
        self,
        when: dt.datetime,
        iid: str,
        sub: Sub,
        kind: str,
        total: int,
        discount: int = 0,
        period: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> dict[str, Any]:
        """A new invoice, created and finalized in one transaction (one instant); with a
        discount, as version 2 events carry it (subtotal, discount, tax, period)."""
        inv: dict[str, Any] = {
            "invoice_id": iid,
            "customer_id": sub.customer_id,
            "tenant_id": None,
            "subscription_id": sub.id,
            "kind": kind,
            "status": "draft",
            "currency": "usd",
            "total": total,
            "amount_paid": 0,
            "amount_due": total,
        }
        if discount:
            assert period is not None
            inv |= {
                "subtotal": total + discount,
                "discount": discount,
                "tax": 0,
                "tax_inclusive": False,
                "period_start": period[0].isoformat(),
                "period_end": period[1].isoformat(),
            }
        self.invoice("invoice.created", when, inv)
        inv["status"] = "open"
        self.invoice("invoice.finalized", when, inv)
        return inv

    def subscribe(
        self, cid: str, when: dt.datetime, plan: str, trial_days: int = 0
    ) -> tuple[Sub, str]:
        amount, interval = PLANS[plan]
        sid = str(uuid.uuid4())
        if trial_days:
            end = when + dt.timedelta(days=trial_days)
            sub = Sub(sid, cid, plan, "trialing", when, end, trial_end=end)
        else:
            sub = Sub(sid, cid, plan, "incomplete", when, _add_interval(when, interval))
        self.sub_event(
            "subscription.created",
            when,
            sub,
            amount=amount,
            currency="usd",
            interval=interval,
            trial_end=sub.trial_end.isoformat() if sub.trial_end else None,
        )
        self.emit(
            "registration.completed",
            when + dt.timedelta(seconds=2),
            cid,
            {
                "registration_id": str(uuid.uuid4()),
                "customer_id": cid,
                "subscription_id": sid,
                "plan_id": plan,
                "subscription_status": sub.status,
                "email": _hash(cid),
                "phone": None,
                "name": _hash(cid),
                "tenant_id": None,
                "trial": bool(trial_days),
                "marketing_opt_in": False,
            },
        )
        payment_id = ""
        if not trial_days:
            payment_id = self.charge(cid, when + dt.timedelta(minutes=1), amount)
            self.activate(sub, when + dt.timedelta(minutes=2), payment_id)
        return sub, payment_id

    def charge(self, cid: str, when: dt.datetime, amount: int, fail: bool = False) -> str:
        pid = str(uuid.uuid4())
        data: dict[str, Any] = {
            "payment_id": pid,
            "customer_id": cid,
            "amount": amount,
            "currency": "usd",
            "status": "failed" if fail else "succeeded",
            "stripe_payment_intent_id": f"pi_{pid[:8]}",
        }
        if fail:
            data |= {
                "failure_code": "card_declined",
                "decline_code": "insufficient_funds",
                "failure_message": "Your card has insufficient funds.",
            }
        self.emit("payment.failed" if fail else "payment.succeeded", when, pid, data)
        return pid

    def activate(self, sub: Sub, when: dt.datetime, payment_id: str) -> None:
        previous = sub.status
        sub.status = "active"
        if previous == "trialing":  # the first paid period starts now
            sub.period_start = when
            sub.period_end = _add_interval(when, PLANS[sub.plan_id][1])
        self.sub_event(
            "subscription.activated",
            when,
            sub,
            previous_status=previous,
            payment_id=payment_id,
        )


def _add_interval(start: dt.datetime, interval: str) -> dt.datetime:
    if interval == "year":
        return start.replace(year=start.year + 1)
    month = start.month % 12 + 1
    return start.replace(year=start.year + (start.month == 12), month=month)


def synthetic_history() -> History:
    h = History()
    a, b, c, d, e, f, g = (f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 8))
    h.customer(a, at(1, 5, 9), "alice")
    h.emit(
        "user.created",
        at(1, 5, 9, 1),
        "user-a",
        {"user_id": "user-a", "customer_id": a, "tenant_id": None, "created_at": "2025-01-05"},
    )
    sub_a, _ = h.subscribe(a, at(1, 5, 10), "pro-monthly")
    sub_a.plan_id = "team-monthly"
    h.sub_event(
        "subscription.upgraded",
        at(2, 10),
        sub_a,
        pending_plan_id=None,
        previous_plan_id="pro-monthly",
        proration_amount_due=4800,
        currency="usd",
    )

    h.customer(b, at(1, 20, 8), "bob")
    sub_b, _ = h.subscribe(b, at(1, 20, 9), "basic-monthly", trial_days=14)
    h.charge(b, at(2, 3, 9), 900, fail=True)
    h.activate(sub_b, at(2, 4, 9, 5), h.charge(b, at(2, 4, 9), 900))

    h.customer(c, at(1, 8, 7), "carol")
    sub_c, _ = h.subscribe(c, at(1, 8, 8), "team-monthly")
    # As the service emits it: the changed column only, carried by later events no more.
    h.sub_event(
        "subscription.downgrade_scheduled", at(2, 1, 15), sub_c, pending_plan_id="pro-monthly"
    )
    sub_c.status = "paused"  # a pause and resume before the period end keep the downgrade
    h.sub_event("subscription.paused", at(2, 3), sub_c, previous_status="active")
    sub_c.status = "active"
    h.sub_event("subscription.resumed", at(2, 4), sub_c, previous_status="paused")

    # Billing renews C an hour after the period end, on the downgraded plan.
    sub_c.plan_id, sub_c.status = "pro-monthly", "active"
    sub_c.period_start, sub_c.period_end = at(2, 8, 8), at(3, 8, 8)
    inv_c1 = h.bill(at(2, 8, 8, 59), "inv_c1", sub_c, "renewal", 2900)
    paid_c1 = h.charge(c, at(2, 8, 9), 2900)
    inv_c1 |= {"status": "paid", "amount_paid": 2900, "amount_due": 0}
    h.invoice("invoice.paid", at(2, 8, 9), inv_c1, payment_id=paid_c1)
    # An operator gives C 5.00 back on it as customer credit (nothing refunded).
    h.emit(
        "credit_note.created",
        at(2, 9, 10),
        "cn_c1",
        {
            "credit_note_id": "cn_c1",
            "invoice_id": "inv_c1",
            "customer_id": c,
            "tenant_id": None,
            "subscription_id": sub_c.id,
            "currency": "usd",
            "amount": 500,
            "refunded_amount": 0,
            "credited_amount": 500,
            "settlement": "customer_balance",
            "origin": "api",
            "reason": "product_unsatisfactory",
            "refund_id": None,
        },
    )
    h.sub_event(
        "subscription.renewed",
        at(2, 8, 9, 1),
        sub_c,
        pending_plan_id=None,
        previous_plan_id="team-monthly",
        invoice_id="inv_c1",
        payment_id=paid_c1,
        amount=2900,
        currency="usd",
        interval="month",
    )

    # B's first renewal, half off with a coupon (a version 2 invoice: 9.00 - 4.50), fails
    # (past due, still counted in MRR, net of the discount), then is paid in dunning.
    b_period = (at(3, 4, 9, 5), at(4, 4, 9, 5))
    inv_b1 = h.bill(at(3, 4, 8, 59), "inv_b1", sub_b, "renewal", 450, 450, b_period)
    h.invoice(
        "invoice.payment_failed",
        at(3, 4, 9),
        inv_b1,
        payment_id=h.charge(b, at(3, 4, 9), 450, fail=True),
        decline_code="insufficient_funds",
        attempt=1,
    )
    sub_b.status = "past_due"
    h.sub_event(
        "subscription.past_due",
        at(3, 4, 9, 1),
        sub_b,
        previous_status="active",
        invoice_id="inv_b1",
        decline_code="insufficient_funds",
    )
    paid_b1 = h.charge(b, at(3, 6, 9), 450)
    inv_b1 |= {"status": "paid", "amount_paid": 450, "amount_due": 0}
    h.invoice("invoice.paid", at(3, 6, 9), inv_b1, payment_id=paid_b1)
    sub_b.status = "active"
    sub_b.period_start, sub_b.period_end = b_period
    h.sub_event(
        "subscription.reactivated",
        at(3, 6, 9, 1),
        sub_b,
        previous_status="past_due",
        invoice_id="inv_b1",
        payment_id=paid_b1,
        amount=900,
        currency="usd",
        interval="month",
    )

    # C tries to upgrade back to team on Mar 20: the proration charge (70 for the rest of
    # the period, as billing priced it) is declined, so the invoice is voided in the same
    # transaction and the plan stays (no subscription event).
    inv_c2 = h.bill(at(3, 20, 10), "inv_c2", sub_c, "proration", 7000)
    h.invoice(
        "invoice.payment_failed",
        at(3, 20, 10),
        inv_c2,
        payment_id=h.charge(c, at(3, 20, 10), 7000, fail=True),
        decline_code="insufficient_funds",
        attempt=1,
    )
    inv_c2 |= {"status": "void", "amount_due": 0}
    h.invoice("invoice.voided", at(3, 20, 10), inv_c2, reason="upgrade_declined")

    h.customer(d, at(1, 12, 7), "dave")
    sub_d, _ = h.subscribe(d, at(1, 12, 8), "pro-monthly")
    sub_d.period_start, sub_d.period_end = at(2, 12, 8), at(3, 12, 8)  # renewed Feb 12
    h.sub_event("subscription.cancel_scheduled", at(2, 20), sub_d, cancel_at_period_end=True)

    h.customer(e, at(1, 15, 7), "erin")
    sub_e, paid_e = h.subscribe(e, at(1, 15, 8), "basic-monthly")
    sub_e.status, sub_e.canceled_at = "canceled", at(2, 5)
    h.sub_event(
        "subscription.canceled",
        at(2, 5),
        sub_e,
        previous_status="active",
        canceled_at=at(2, 5).isoformat(),
    )
    h.emit(
        "payment.refunded",
        at(2, 5, 13),
        paid_e,
        {
            "payment_id": paid_e,
            "customer_id": e,
            "amount": 900,
            "currency": "usd",
            "status": "refunded",
            "stripe_payment_intent_id": None,
            "refund_id": "ref_1",
            "refund_amount": 900,
            "amount_refunded": 900,
            "stripe_refund_id": "re_1",
        },
    )
    h.subscribe(e, at(3, 10, 8), "basic-monthly")  # comes back: reactivation

    h.customer(f, at(2, 2, 7), "frank")
    h.subscribe(f, at(2, 2, 8), "pro-yearly")

    h.customer(g, at(3, 3, 7), "gina")
    h.emit(
        "registration.failed",
        at(3, 3, 7, 1),
        g,
        {"registration_id": str(uuid.uuid4()), "reason": "card_declined", "customer_id": g},
    )
    return h


def write_lake(settings: Settings, history: History) -> dict[LakePartition, int]:
    """Parquet files in the lake layout, one per (type, day) per batch, plus a manifest.

    Every event is filed in batch 1; the first subscription.created also lands again in
    batch 2 (a replayed batch), so the lake holds one duplicate event id.
    """
    s3 = lake_filesystem(settings)
    offsets: dict[tuple[str, int], int] = {}
    rows_by_part: dict[LakePartition, list[dict[str, Any]]] = {}
    for ev in sorted(history.events, key=lambda e: e["occurred_at"]):
        topic = f"paywall.{SERVICE[ev['event_type'].split('.')[0]]}"
        kafka_partition = zlib.crc32(ev["key"].encode()) % 3
        offset = offsets.get((topic, kafka_partition), 0)
        offsets[(topic, kafka_partition)] = offset + 1
        row = {
            **ev,
            "data": json.dumps(ev["data"]),
            "topic": topic,
            "partition": kafka_partition,
            "offset": offset,
            "ingested_at": ev["occurred_at"] + dt.timedelta(seconds=5),
        }
        part = LakePartition(ev["event_type"], ev["occurred_at"].date())
        rows_by_part.setdefault(part, []).append(row)

    counts: dict[LakePartition, int] = {}
    files = []
    for part, rows in sorted(rows_by_part.items()):
        key = layout.event_file_key(part.event_type, part.event_date, QUERY, 1, 0)
        _put(s3, key, rows)
        counts[part] = len(rows)
        files.append({"path": key, "rows": len(rows)})
    replayed = next(p for p in sorted(rows_by_part) if p.event_type == "subscription.created")
    replay_row = {**rows_by_part[replayed][0], "ingested_at": at(3, 31)}
    _put(
        s3,
        layout.event_file_key(replayed.event_type, replayed.event_date, QUERY, 2, 0),
        [replay_row],
    )
    counts[replayed] += 1
    manifest = {
        "manifest_version": layout.MANIFEST_VERSION,
        "query_id": QUERY,
        "batch_id": 1,
        "files": files,
    }
    with s3.open_output_stream(f"{settings.lake_bucket}/{layout.manifest_key(QUERY, 1)}") as out:
        out.write(json.dumps(manifest).encode())
    return counts


def _put(s3: Any, key: str, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=layout.EVENT_SCHEMA)
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="zstd")
    with s3.open_output_stream(f"{BUCKET}/{key}") as out:
        out.write(buffer.getvalue())


@pytest.fixture(scope="module")
def lake_settings(settings: Settings) -> Settings:
    """The session stack's S3, with a bucket of our own (other tests write the lake too)."""
    ours = settings.model_copy(update={"lake_bucket": BUCKET})
    ensure_bucket(ours, BUCKET)
    client = s3_client(ours)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return ours


@pytest.fixture(scope="module")
def lake(lake_settings: Settings) -> dict[LakePartition, int]:
    return write_lake(lake_settings, synthetic_history())


@pytest.fixture(scope="module")
def warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"


@pytest.fixture(scope="module")
def loaded(
    lake_settings: Settings, lake: dict[LakePartition, int], warehouse_path: Path
) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(lake_settings, warehouse_path)
    for part in list_lake_partitions(lake_settings):
        load_partition(warehouse, part.event_type, part.event_date)
    return warehouse


def _count(path: Path, sql: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_the_hand_made_invoice_events_are_billing_contracts() -> None:
    """fct_invoices is asserted on these: they must be what billing can emit."""
    invoices = [e for e in synthetic_history().events if e["event_type"].startswith("invoice.")]
    assert len(invoices) == 11
    for event in invoices:
        contracts.validate({**event, "occurred_at": event["occurred_at"].isoformat()})


def test_fct_credit_notes(dbt_build: DbtRun) -> None:
    notes = dbt_build.query(
        "SELECT credit_note_id, invoice_id, currency, credit_amount, refunded_amount, "
        "customer_credit_amount, settlement, origin, reason, created_at "
        "FROM marts.fct_credit_notes ORDER BY credit_note_id"
    )
    assert notes == [
        {
            "credit_note_id": "cn_c1",
            "invoice_id": "inv_c1",
            "currency": "usd",
            "credit_amount": Decimal("5.00"),
            "refunded_amount": Decimal("0.00"),
            "customer_credit_amount": Decimal("5.00"),
            "settlement": "customer_balance",
            "origin": "api",
            "reason": "product_unsatisfactory",
            "created_at": dt.datetime(2025, 2, 9, 10),
        }
    ]
    [note] = [e for e in synthetic_history().events if e["event_type"] == "credit_note.created"]
    contracts.validate({**note, "occurred_at": note["occurred_at"].isoformat()})


def test_lake_partitions_come_from_the_s3_listing(
    lake_settings: Settings, lake: dict[LakePartition, int]
) -> None:
    partitions = list_lake_partitions(lake_settings)
    assert partitions == sorted(lake)  # the manifest under _manifests/ is not a partition
    assert LakePartition("subscription.upgraded", dt.date(2025, 2, 10)) in partitions
    assert all(isinstance(p.event_date, dt.date) for p in partitions)


def test_loading_every_partition_twice_changes_nothing(
    loaded: DuckDBWarehouse, lake: dict[LakePartition, int], warehouse_path: Path
) -> None:
    total = sum(lake.values())
    per_type = "SELECT count(*) FROM raw.events WHERE event_type = 'subscription.created'"
    assert _count(warehouse_path, "SELECT count(*) FROM raw.events") == total
    first_created = _count(warehouse_path, per_type)
    assert partitions_to_load(loaded) == []  # the bookkeeping knows all is loaded

    results = [load_partition(loaded, p.event_type, p.event_date) for p in sorted(lake)]

    assert [r.rows for r in results] == [lake[p] for p in sorted(lake)]
    assert _count(warehouse_path, "SELECT count(*) FROM raw.events") == total
    assert _count(warehouse_path, per_type) == first_created
    assert _count(warehouse_path, "SELECT count(*) FROM raw.loaded_partitions") == len(lake)
    assert _count(warehouse_path, "SELECT count(DISTINCT event_id) FROM raw.events") == total - 1


def test_a_partition_that_changes_in_the_lake_is_offered_again(
    loaded: DuckDBWarehouse, lake_settings: Settings, lake: dict[LakePartition, int]
) -> None:
    part = LakePartition("registration.failed", dt.date(2025, 3, 3))
    key = layout.event_file_key(part.event_type, part.event_date, QUERY, 1, 0)
    s3 = lake_filesystem(lake_settings)
    with s3.open_input_stream(f"{BUCKET}/{key}") as src:
        body = src.read()
    # A replayed batch rewrites the same object (same rows, new ingested_at).
    with s3.open_output_stream(f"{BUCKET}/{layout.event_file_key(*part, QUERY, 3, 0)}") as out:
        out.write(body)
    try:
        assert partitions_to_load(loaded) == [part]
        assert load_partition(loaded, *part).rows == lake[part] + 1
        assert partitions_to_load(loaded) == []
    finally:
        s3.delete_file(f"{BUCKET}/{layout.event_file_key(*part, QUERY, 3, 0)}")
        assert partitions_to_load(loaded) == [part]
        assert load_partition(loaded, part.event_type, part.event_date.isoformat()).rows == 1


@dataclass
class DbtRun:
    warehouse_path: Path
    target_path: Path
    profiles_dir: Path

    def invoke(self, *args: str) -> Any:
        from dbt.cli.main import dbtRunner

        result = dbtRunner().invoke(
            [
                *args,
                "--project-dir",
                str(DBT_DIR),
                "--profiles-dir",
                str(self.profiles_dir),
                "--target",
                "duckdb",
                "--target-path",
                str(self.target_path),
                "--log-path",
                str(self.target_path / "logs"),
                "--vars",
                json.dumps({"as_of": AS_OF}),
            ]
        )
        _release_duckdb()
        if not result.success:
            results: Any = result.result or []
            failed = [
                f"{r.node.unique_id}: {r.status} {r.message}"
                for r in results
                if getattr(r, "status", None) not in ("success", "pass", None)
            ]
            raise AssertionError(f"dbt {args[0]} failed: {result.exception or failed}")
        return result

    def query(self, sql: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.warehouse_path), read_only=True) as con:
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _release_duckdb() -> None:
    """dbt-duckdb keeps its DuckDB instance open in-process after a run; the file cannot be
    opened again with another configuration until it is closed."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            env.close()


@pytest.fixture(scope="module")
def dbt_build(
    loaded: DuckDBWarehouse, warehouse_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DbtRun]:
    """The one `dbt build` of the session (seeds, models, tests) on the loaded warehouse."""
    run = DbtRun(warehouse_path, tmp_path_factory.mktemp("dbt_target"), DBT_DIR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_PATH", str(warehouse_path))
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        run.invoke("build")
        yield run


def test_dbt_build_passes_every_test(dbt_build: DbtRun) -> None:
    results = json.loads((dbt_build.target_path / "run_results.json").read_text())["results"]
    tests = [r for r in results if r["unique_id"].startswith("test.")]
    assert len(tests) >= 40
    built = [r for r in results if not r["unique_id"].startswith("exposure.")]  # no-op
    assert {r["status"] for r in built} <= {"success", "pass"}
    singular = {r["unique_id"].split(".")[-1] for r in tests}
    assert {
        "assert_mrr_components_sum_to_change",
        "assert_no_overlapping_subscription_intervals",
    } <= singular


def test_mrr_is_there_when_no_invoice_has_a_discount(dbt_build: DbtRun, tmp_path: Path) -> None:
    """DuckDB 2.0 dropped every row of int_customer_mrr_monthly when no invoice had a
    discount (a left join to an empty CTE): the model keeps that CTE from being empty."""
    copy = tmp_path / "no-discounts.duckdb"
    shutil.copy(dbt_build.warehouse_path, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE marts.fct_invoices SET discount_amount = 0")
        before = con.execute("SELECT count(*) FROM intermediate.int_customer_mrr_monthly")
        rows = before.fetchone()
    run = DbtRun(copy, tmp_path / "target", dbt_build.profiles_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_PATH", str(copy))
        run.invoke("run", "--select", "int_customer_mrr_monthly")
    assert rows is not None and rows[0] > 0
    assert run.query("SELECT count(*) AS n FROM intermediate.int_customer_mrr_monthly") == [
        {"n": rows[0]}
    ]


def test_mrr_by_month_matches_the_hand_computed_history(dbt_build: DbtRun) -> None:
    rows = dbt_build.query("SELECT * FROM marts.mrr_monthly ORDER BY month")
    by_month = {r["month"]: r for r in rows}
    assert list(by_month) == [JAN, FEB, MAR]
    assert {r["currency"] for r in rows} == {"usd"}
    yearly = Decimal("24.17")  # 290.00 / 12, rounded to the cent per subscription

    jan, feb, mar = by_month[JAN], by_month[FEB], by_month[MAR]
    assert (jan["starting_mrr"], jan["mrr"]) == (0, Decimal(166))
    assert jan["new_mrr"] == Decimal(166)  # A 29 + C 99 + D 29 + E 9; B is trialing
    assert jan["paying_customers"] == 4

    assert feb["starting_mrr"] == Decimal(166)
    assert feb["new_mrr"] == 9 + yearly  # B after the trial, F yearly /12
    assert feb["expansion_mrr"] == Decimal(70)  # A pro → team
    assert feb["contraction_mrr"] == Decimal(-70)  # C team → pro at period end
    assert feb["churned_mrr"] == Decimal(-9)  # E canceled
    assert feb["reactivation_mrr"] == 0
    assert feb["mrr"] == 190 + yearly - 24  # 99 + 9 + 29 + 29 + 24.17
    assert (feb["new_customers"], feb["churned_customers"]) == (2, 1)

    assert mar["churned_mrr"] == Decimal(-29)  # D's scheduled cancel on Mar 12
    assert mar["reactivation_mrr"] == Decimal(9)  # E back on basic
    assert mar["new_mrr"] == mar["expansion_mrr"] == 0
    assert mar["contraction_mrr"] == Decimal("-4.50")  # B's renewal is half off
    assert mar["mrr"] == 99 + Decimal("4.50") + 29 + 9 + yearly
    assert mar["reactivated_customers"] == 1


def test_churn_and_cohorts(dbt_build: DbtRun) -> None:
    churn = {r["month"]: r for r in dbt_build.query("SELECT * FROM marts.churn_monthly")}
    assert churn[FEB]["customers_at_start"] == 4
    assert churn[FEB]["customer_churn_rate"] == Decimal("0.25")
    assert churn[MAR]["customers_at_start"] == 5
    assert churn[MAR]["customer_churn_rate"] == Decimal("0.2")
    assert churn[JAN]["customer_churn_rate"] is None

    cohorts = dbt_build.query(
        "SELECT cohort_month, month, cohort_customers, active_customers, mrr "
        "FROM marts.cohort_retention ORDER BY cohort_month, month"
    )
    jan_cohort = [(r["active_customers"], r["mrr"]) for r in cohorts if r["cohort_month"] == JAN]
    # A, C, D, E start in January; E leaves in Feb and returns in Mar, D leaves in Mar.
    assert jan_cohort == [(4, 166), (3, 99 + 29 + 29), (3, 99 + 29 + 9)]
    feb_cohort = [r for r in cohorts if r["cohort_month"] == FEB]
    assert [r["active_customers"] for r in feb_cohort] == [2, 2]
    assert {r["cohort_customers"] for r in feb_cohort} == {2}


def test_subscription_history_is_scd2(dbt_build: DbtRun) -> None:
    rows = dbt_build.query(
        "SELECT s.customer_id, s.plan_id, s.status, s.change_reason, s.valid_from, "
        "s.valid_to, s.mrr FROM marts.fct_subscriptions s "
        "WHERE s.customer_id LIKE '%3' ORDER BY s.valid_from"
    )
    assert [(r["change_reason"], r["plan_id"], r["status"], r["mrr"]) for r in rows] == [
        ("subscription.created", "team-monthly", "incomplete", 0),
        ("subscription.activated", "team-monthly", "active", 99),
        ("subscription.downgrade_scheduled", "team-monthly", "active", 99),
        ("subscription.paused", "team-monthly", "paused", 0),
        ("subscription.resumed", "team-monthly", "active", 99),
        ("scheduled.downgrade", "pro-monthly", "active", 29),
        ("subscription.renewed", "pro-monthly", "active", 29),
    ]
    assert all(a["valid_to"] == b["valid_from"] for a, b in itertools.pairwise(rows))
    assert rows[-2]["valid_from"] == dt.datetime(2025, 2, 8, 8)  # C's period end, UTC
    assert rows[-1]["valid_to"] is None

    canceled = dbt_build.query(
        "SELECT count(*) AS n FROM marts.fct_subscriptions "
        "WHERE change_reason = 'scheduled.cancel' AND status = 'canceled' AND is_current"
    )
    assert canceled == [{"n": 1}]  # D


def v1_amounts(total: str) -> dict[str, Any]:
    """A version 1 invoice's: its total is its subtotal, with no discount, tax or period."""
    return {
        "subtotal_amount": Decimal(total),
        "discount_amount": Decimal("0.00"),
        "tax_amount": Decimal("0.00"),
        "tax_inclusive": False,
        "period_start": None,
    }


def test_payments_and_customers(dbt_build: DbtRun) -> None:
    payments = dbt_build.query(
        "SELECT payment_status, count(*) AS n, sum(net_amount) AS net "
        "FROM marts.fct_payments GROUP BY payment_status ORDER BY payment_status"
    )
    # Charges: A 29, C 99 + renewal 29, D 29, E 9 (refunded), E again 9, F 290,
    # B 9 + renewal 4.50 (each after a failed attempt); C's declined upgrade (70).
    assert payments == [
        {"payment_status": "failed", "n": 3, "net": 0},
        {"payment_status": "refunded", "n": 1, "net": 0},
        {"payment_status": "succeeded", "n": 8, "net": Decimal("498.50")},
    ]
    invoices = dbt_build.query(
        "SELECT invoice_id, invoice_kind, invoice_status, currency, total_amount, amount_paid, "
        "amount_due, attempts, decline_code, void_reason, payment_id IS NOT NULL AS has_payment, "
        "created_at, finalized_at, first_failed_at, paid_at, voided_at, subtotal_amount, "
        "discount_amount, tax_amount, tax_inclusive, period_start "
        "FROM marts.fct_invoices ORDER BY invoice_id"
    )
    usd = {"currency": "usd"}
    assert invoices == [
        {  # failed once (in dunning), paid on the second attempt
            "invoice_id": "inv_b1",
            "invoice_kind": "renewal",
            "invoice_status": "paid",
            **usd,
            "total_amount": Decimal("4.50"),
            "amount_paid": Decimal("4.50"),
            "amount_due": Decimal("0.00"),
            "attempts": 2,
            "decline_code": "insufficient_funds",
            "void_reason": None,
            "has_payment": True,
            "created_at": dt.datetime(2025, 3, 4, 8, 59),
            "finalized_at": dt.datetime(2025, 3, 4, 8, 59),
            "first_failed_at": dt.datetime(2025, 3, 4, 9),
            "paid_at": dt.datetime(2025, 3, 6, 9),
            "voided_at": None,
            # version 2: the coupon's half off, and the period billed
            "subtotal_amount": Decimal("9.00"),
            "discount_amount": Decimal("4.50"),
            "tax_amount": Decimal("0.00"),
            "tax_inclusive": False,
            "period_start": dt.datetime(2025, 3, 4, 9, 5),
        },
        {
            "invoice_id": "inv_c1",
            "invoice_kind": "renewal",
            "invoice_status": "paid",
            **usd,
            "total_amount": Decimal("29.00"),
            "amount_paid": Decimal("29.00"),
            "amount_due": Decimal("0.00"),
            "attempts": 1,
            "decline_code": None,
            "void_reason": None,
            "has_payment": True,
            "created_at": dt.datetime(2025, 2, 8, 8, 59),
            "finalized_at": dt.datetime(2025, 2, 8, 8, 59),
            "first_failed_at": None,
            "paid_at": dt.datetime(2025, 2, 8, 9),
            "voided_at": None,
            **v1_amounts("29.00"),
        },
        {  # declined upgrade: failed and voided in one instant; its amounts stay known
            "invoice_id": "inv_c2",
            "invoice_kind": "proration",
            "invoice_status": "void",
            **usd,
            "total_amount": Decimal("70.00"),
            "amount_paid": Decimal("0.00"),
            "amount_due": Decimal("0.00"),
            "attempts": 1,
            "decline_code": "insufficient_funds",
            "void_reason": "upgrade_declined",
            "has_payment": False,
            "created_at": dt.datetime(2025, 3, 20, 10),
            "finalized_at": dt.datetime(2025, 3, 20, 10),
            "first_failed_at": dt.datetime(2025, 3, 20, 10),
            "paid_at": None,
            "voided_at": dt.datetime(2025, 3, 20, 10),
            **v1_amounts("70.00"),
        },
    ]
    staged_invoices = dbt_build.query(
        "SELECT count(*) AS n, count(DISTINCT invoice_id) AS invoices "
        "FROM staging.stg_invoice_events"
    )
    assert staged_invoices == [{"n": 11, "invoices": 3}]
    customers = dbt_build.query(
        "SELECT count(*) AS n, count(stripe_customer_id) AS with_stripe, "
        "count(first_paid_at) AS paid FROM marts.dim_customers"
    )
    assert customers == [{"n": 7, "with_stripe": 7, "paid": 6}]
    staged = dbt_build.query(
        "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM staging.stg_subscription_events"
    )
    assert staged[0]["n"] == staged[0]["ids"]  # the replayed copy is gone


def test_metrics_answer_through_metricflow(dbt_build: DbtRun, tmp_path: Path) -> None:
    """The semantic layer an analyst queries: MetricFlow's own CLI on the built warehouse
    gives the marts' figures. mf reads the project's target/, so it runs on a copy."""
    project = tmp_path / "dbt"
    shutil.copytree(DBT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    (project / "target").mkdir()
    shutil.copy(dbt_build.target_path / "semantic_manifest.json", project / "target")
    out = tmp_path / "metrics.csv"
    env = {
        **os.environ,
        "WAREHOUSE_PATH": str(dbt_build.warehouse_path),
        "DBT_PROFILES_DIR": str(dbt_build.profiles_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    metrics = "mrr,arpu,customer_churn_rate,failed_payment_rate"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "mf"),
            "query",
            "--metrics",
            metrics,
            "--group-by",
            "metric_time__month",
            "--order",
            "metric_time__month",
            "--csv",
            str(out),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and out.exists(), done.stdout + done.stderr
    rows = {r["metric_time__month"][:10]: r for r in csv.DictReader(out.open())}
    marts = dbt_build.query(
        "SELECT m.month, m.mrr, m.paying_customers, c.customer_churn_rate FROM "
        "marts.mrr_monthly m JOIN marts.churn_monthly c USING (month, currency) ORDER BY month"
    )
    for mart in marts:
        metric = rows[mart["month"].isoformat()]
        assert Decimal(metric["mrr"]) == mart["mrr"]
        assert Decimal(metric["arpu"]) == pytest.approx(mart["mrr"] / mart["paying_customers"])
        if mart["customer_churn_rate"] is not None:
            assert Decimal(metric["customer_churn_rate"]) == mart["customer_churn_rate"]
    failed = [Decimal(r["failed_payment_rate"]) for r in rows.values() if r["failed_payment_rate"]]
    assert failed, "a month with payments has a failed-payment rate"


def test_dbt_docs_generate_and_source_freshness(dbt_build: DbtRun) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_PATH", str(dbt_build.warehouse_path))
        dbt_build.invoke("docs", "generate")
        dbt_build.invoke("source", "freshness")
    catalog = json.loads((dbt_build.target_path / "catalog.json").read_text())
    assert "model.paywall.mrr_monthly" in catalog["nodes"]
    assert "source.paywall.lake.events" in catalog["sources"]


def test_subscribers_of_one_plan_count_at_the_price_each_pays(
    dbt_build: DbtRun, tmp_path: Path
) -> None:
    """A new price version of pro (39.00) for a new subscriber H in March: the plan's
    existing subscriber C keeps counting at the 29.00 it pays (its own events' amount), not
    at the plan's latest price, even once migrated to 39.00 from its next renewal."""
    copy = tmp_path / "two-prices.duckdb"
    shutil.copy(dbt_build.warehouse_path, copy)
    before = {
        r["month"]: r["mrr"] for r in dbt_build.query("SELECT month, mrr FROM marts.mrr_monthly")
    }
    [c] = dbt_build.query(
        "SELECT subscription_id, mrr FROM marts.fct_subscriptions WHERE is_current "
        "AND plan_id = 'pro-monthly' AND status = 'active'"
    )
    assert c["mrr"] == Decimal(29)
    with duckdb.connect(str(copy)) as con:
        cursor = con.execute(
            "SELECT * FROM raw.events WHERE event_type = 'subscription.created' "
            "AND data LIKE '%pro-monthly%' LIMIT 1"
        )
        names = [d[0] for d in cursor.description]
        row = dict(zip(names, cursor.fetchone() or (), strict=True))
        data = json.loads(row["data"])
        sub_id, customer_id = str(uuid.uuid4()), str(uuid.uuid4())
        data |= {
            "subscription_id": sub_id,
            "customer_id": customer_id,
            "status": "active",
            "amount": 3900,
            "current_period_start": at(3, 20).isoformat(),
            "current_period_end": at(4, 20).isoformat(),
            "trial_end": None,
        }
        row |= {
            "event_id": str(uuid.uuid4()),
            "occurred_at": at(3, 20),
            "key": sub_id,
            "data": json.dumps(data),
            "loaded_at": dt.datetime.now(UTC),
        }
        columns = ", ".join(f'"{name}"' for name in row)  # "partition", "offset", "key"
        con.execute(
            f"INSERT INTO raw.events ({columns}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        # C migrated on Mar 25 to the new price, from its renewal in April.
        cursor = con.execute(
            "SELECT * FROM raw.events WHERE event_type LIKE 'subscription.%' "
            "ORDER BY occurred_at DESC"
        )
        row = next(
            r
            for r in (dict(zip(names, values, strict=True)) for values in cursor.fetchall())
            if json.loads(r["data"])["subscription_id"] == c["subscription_id"]
        )
        last = json.loads(row["data"])
        keep = ("subscription_id", "customer_id", "tenant_id", "plan_id", "status")
        migrated = {k: last[k] for k in (*keep, "current_period_start", "current_period_end")}
        migrated |= {
            "pending_plan_id": None,
            "migrated_plan_id": "pro-monthly",
            "next_price_version": 2,
            "next_amount": 3900,
            "currency": "usd",
            "effective_at": last["current_period_end"],
        }
        contracts.validate(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": "subscription.price_migrated",
                "schema_version": 1,
                "occurred_at": at(3, 25).isoformat(),
                "producer": "subscription-service",
                "key": c["subscription_id"],
                "data": migrated,
            }
        )
        row |= {
            "event_id": str(uuid.uuid4()),
            "event_type": "subscription.price_migrated",
            "schema_version": 1,
            "occurred_at": at(3, 25),
            "data": json.dumps(migrated),
            "loaded_at": dt.datetime.now(UTC),
        }
        con.execute(
            f"INSERT INTO raw.events ({columns}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    run = DbtRun(copy, tmp_path / "target", dbt_build.profiles_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_PATH", str(copy))
        run.invoke("run", "--select", "stg_subscription_events+")
        run.invoke("test", "--select", "stg_subscription_events")  # its accepted event types
    current = {
        r["subscription_id"]: r["mrr"]
        for r in run.query(
            "SELECT subscription_id, mrr FROM marts.fct_subscriptions WHERE is_current"
        )
    }
    assert (current[c["subscription_id"]], current[sub_id]) == (Decimal(29), Decimal(39))
    after = {r["month"]: r["mrr"] for r in run.query("SELECT month, mrr FROM marts.mrr_monthly")}
    assert after == {**before, MAR: before[MAR] + 39}
