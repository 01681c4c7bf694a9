"""`paywall demo`: the whole flow on the local stack, with a summary of every stage.

stack up → migrate → topics → API (all services, one process) → signups over HTTP (some
trials, some declined cards, an upgrade and a cancellation) → outbox relay → notification
and audit consumers → summary.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import text

from paywall import clients, db
from paywall.logs import configure_logging
from paywall.settings import Settings, get_settings, reset_settings
from paywall.stack.process import free_port, port_open

GOOD_CARD, DECLINED_CARD = "4242424242424242", "4000000000000341"


@dataclass
class Outcome:
    signups: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    published: int = 0
    lake_rows: dict[str, int] = field(default_factory=dict)
    billing: dict[str, dict[str, int]] = field(default_factory=dict)
    warehouse: dict[str, str] = field(default_factory=dict)
    handled: dict[str, dict[str, int]] = field(default_factory=dict)


@contextmanager
def api_server(settings: Settings) -> Iterator[str]:
    """Every service in this process on a free loopback port, stopped on exit."""
    from transactional.common.serving import serving
    from transactional.services import combined_app

    port = settings.api_port if not port_open(settings.api_host, settings.api_port) else free_port()
    os.environ["API_PORT"] = str(port)
    reset_settings()
    with serving(combined_app(), settings.api_host, port) as base:
        yield base


def partner_token(base: str, settings: Settings) -> str:
    from transactional.auth.clients import create_client

    secret = uuid.uuid4().hex
    with db.engine(settings).begin() as conn:
        create_client(
            conn,
            "demo-partner",
            secret=secret,
            grant_types=("client_credentials",),
            scopes=("registrations:write", "subscriptions:read", "subscriptions:write"),
            tenant_id="demo",
            replace=True,
        )
    resp = httpx.post(
        f"{base}/oauth/token",
        auth=("demo-partner", secret),
        data={"grant_type": "client_credentials"},
        timeout=30,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def new_card(settings: Settings, number: str) -> str:
    pm = clients.stripe_client(settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return str(pm.id)


def run_signups(base: str, settings: Settings, count: int, console: Console) -> Outcome:
    outcome = Outcome()
    headers = {"Authorization": f"Bearer {partner_token(base, settings)}"}
    plans = ["basic-monthly", "pro-monthly", "pro-yearly", "team-monthly"]
    made: list[dict[str, str]] = []
    with Progress(console=console, transient=True) as bar, httpx.Client(timeout=60) as http:
        task = bar.add_task("signups over HTTP", total=count)
        for i in range(count):
            declined, trial = i % 6 == 5, i % 4 == 1
            body = {
                "email": f"demo-{uuid.uuid4().hex[:8]}@example.com",
                "password": "demo password 1234",
                "name": f"Demo Customer {i + 1}",
                "phone": "+14155550100",
                "plan_id": plans[i % len(plans)],
                "trial": trial,
                "marketing_opt_in": i % 2 == 0,
                "payment_method_id": new_card(settings, DECLINED_CARD if declined else GOOD_CARD),
            }
            resp = http.post(
                f"{base}/v1/registrations",
                json=body,
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            if resp.status_code == 201:
                outcome.signups[resp.json()["subscription_status"]] += 1
                made.append(resp.json())
            else:
                outcome.signups[f"refused ({resp.status_code})"] += 1
            bar.advance(task)
        # A few lifecycle changes, as customers make them.
        for reg in made[:2]:
            if reg["plan_id"] == "basic-monthly":
                r = http.post(
                    f"{base}/v1/subscriptions/{reg['subscription_id']}/change-plan",
                    json={"plan_id": "pro-monthly"},
                    # Charged now (a proration invoice); the key makes a retry safe.
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                )
                outcome.changes[f"upgrade {r.status_code}"] += 1
        for reg in made[-2:]:
            r = http.post(
                f"{base}/v1/subscriptions/{reg['subscription_id']}/cancel",
                json={"at_period_end": True},
                headers=headers,
            )
            outcome.changes[f"cancel at period end {r.status_code}"] += 1
    return outcome


def run_consumers(settings: Settings, idle_seconds: float = 4.0) -> dict[str, dict[str, int]]:
    from paywall.cli import consumers

    stats = {}
    for name in consumers.NAMES:
        loop = consumers.loop(name, settings)
        last = time.monotonic()
        try:
            while time.monotonic() - last < idle_seconds or not loop.consumer.assignment():
                if loop.poll_once(0.5):
                    last = time.monotonic()
                if time.monotonic() - last > 60:
                    break
        finally:
            loop.close()
        stats[name] = loop.stats
    return stats


def lake_rows(settings: Settings) -> dict[str, int]:
    """Rows per event type in the lake, from the manifests the streaming job committed."""
    import json

    s3 = clients.s3_client(settings)
    rows: Counter[str] = Counter()
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.lake_bucket, Prefix="_manifests/events/"
    )
    for page in pages:
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=settings.lake_bucket, Key=obj["Key"])["Body"].read()
            for f in json.loads(body)["files"]:
                rows[f["event_type"]] += f["rows"]
    return dict(rows)


def run_billing_days(settings: Settings) -> dict[str, dict[str, int]]:
    """The daily billing run for the days this demo's trials and first months end.

    The days are in the future: the demo simulates them by running billing for those dates,
    which is all the billing run looks at (the Dagster schedule runs the day just ended).
    """
    from datetime import UTC, datetime, timedelta

    from dateutil.relativedelta import relativedelta

    from assets.billing.pacing import Pace
    from assets.billing.run import BillingRun
    from assets.shared.resources import Services

    with db.engine(settings).begin() as conn:
        from transactional.auth.clients import ensure_default_clients

        ensure_default_clients(conn, settings)
    services = Services(settings)
    run = BillingRun(
        db.engine(settings),
        services.subscription,
        services.payment,
        Pace.of(settings),
        services.payment_concurrency,
    )
    today = datetime.now(UTC).date()
    days = sorted({today + timedelta(days=14), today + relativedelta(months=1)})
    return {day.isoformat(): run.run(day).numbers() for day in days}


def load_and_build(settings: Settings) -> dict[str, str]:
    """Every new lake partition into the warehouse (DuckDB here), then `dbt build`."""
    import subprocess
    import sys

    import duckdb

    from assets.warehouse.config import warehouse_config
    from assets.warehouse.loader import (
        load_partition,
        partitions_to_load,
        warehouse_from_config,
    )

    warehouse = warehouse_from_config(settings)
    todo = partitions_to_load(warehouse)
    rows = sum(load_partition(warehouse, p.event_type, p.event_date).rows for p in todo)
    path = warehouse_config(settings).duckdb_path
    repo = Path(__file__).resolve().parents[2]
    target = path.parent / "dbt-target"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "build",
            "--project-dir",
            str(repo / "dbt"),
            "--profiles-dir",
            str(repo / "dbt"),
            "--target",
            "duckdb",
            "--target-path",
            str(target),
            "--log-path",
            str(target / "logs"),
        ],
        env={**os.environ, "WAREHOUSE_PATH": str(path)},
        capture_output=True,
        text=True,
        check=False,
    )
    tail = [ln for ln in done.stdout.splitlines() if "Done." in ln or "ERROR" in ln]
    out = {
        "warehouse load": f"{len(todo)} partition(s), {rows} row(s) into {path.name}",
        "dbt build": (tail[-1].split("Done.")[-1].strip() if tail else "no summary")
        if done.returncode == 0
        else f"FAILED: {' | '.join(tail[-3:])}",
    }
    if done.returncode == 0:
        with duckdb.connect(str(path), read_only=True) as con:
            latest = con.execute(
                "SELECT month, sum(mrr) FROM marts.mrr_monthly GROUP BY month "
                "ORDER BY month DESC LIMIT 1"
            ).fetchone()
        if latest:
            out["MRR from the marts"] = f"{float(latest[1]):,.2f} USD ({latest[0]})"
    return out


def mrr_chart(settings: Settings) -> Path | None:
    """MRR per month from the mart, drawn to a PNG next to the warehouse file."""
    import duckdb
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from assets.warehouse.config import warehouse_config

    path = warehouse_config(settings).duckdb_path
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute(
                "SELECT month, sum(mrr), sum(new_mrr), sum(churned_mrr) "
                "FROM marts.mrr_monthly GROUP BY month ORDER BY month"
            ).fetchall()
    except duckdb.Error:
        return None
    if not rows:
        return None
    months = [str(r[0])[:7] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(months, [float(r[1]) for r in rows], color="#336791", label="MRR")
    ax.plot(months, [float(r[2]) for r in rows], "o-", color="#2e8b57", label="new")
    ax.plot(months, [float(r[3]) for r in rows], "o-", color="#dc382d", label="churned")
    ax.set_title("Monthly recurring revenue (USD)")
    ax.legend()
    fig.tight_layout()
    out = path.with_name("mrr.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def summary(settings: Settings, outcome: Outcome) -> Table:
    from streaming.consumers.audit import verify

    engine = db.engine(settings)
    with engine.connect() as conn:
        mrr: float = conn.execute(
            text(
                # The marts' rule: a yearly price's monthly share rounded to the cent first.
                "SELECT coalesce(sum(CASE p.interval WHEN 'year' THEN round(p.amount / 12.0) "
                "ELSE p.amount END), 0) FROM subscription.subscriptions s JOIN "
                "subscription.plans p ON p.id = s.plan_id WHERE s.status IN ('active', 'past_due')"
            )
        ).scalar_one()
        states: dict[str, int] = dict(
            conn.execute(
                text("SELECT status, count(*) FROM subscription.subscriptions GROUP BY status")
            ).all()
        )
        sends: dict[str, int] = dict(
            conn.execute(
                text("SELECT channel || ' ' || status, count(*) FROM notification.sends GROUP BY 1")
            ).all()
        )
    audit = verify(engine)
    table = Table("stage", "result", title="paywall demo")
    table.add_row("signups (HTTP)", ", ".join(f"{k}: {v}" for k, v in outcome.signups.items()))
    table.add_row("plan changes", ", ".join(f"{k}: {v}" for k, v in outcome.changes.items()))
    table.add_row("subscriptions", ", ".join(f"{k}: {v}" for k, v in sorted(states.items())))
    table.add_row("events relayed to Kafka", str(outcome.published))
    for name, stats in outcome.handled.items():
        table.add_row(f"{name} consumer", ", ".join(f"{k}: {v}" for k, v in stats.items()))
    table.add_row("notifications", ", ".join(f"{k}: {v}" for k, v in sorted(sends.items())))
    table.add_row(
        "lake (Parquet rows)", ", ".join(f"{k}: {v}" for k, v in sorted(outcome.lake_rows.items()))
    )
    for day, counts in outcome.billing.items():
        shown = ", ".join(f"{k}: {v}" for k, v in counts.items() if v)
        table.add_row(f"billing run {day} (simulated)", shown or "nothing due")
    for key, value in outcome.warehouse.items():
        table.add_row(key, value)
    table.add_row("audit log", f"{audit.rows} rows, chain {'intact' if audit.ok else 'BROKEN'}")
    table.add_row("MRR from subscriptions", f"{float(mrr) / 100:,.2f} USD (active and past_due)")
    return table


def run(console: Console, signups: int) -> None:
    from streaming import relay
    from streaming.admin import sync_topics

    settings = get_settings()
    configure_logging(settings)
    logging.getLogger().setLevel(logging.WARNING)  # the tables tell the story; logs would drown it
    with console.status("migrating the database and creating topics…"):
        db.upgrade(settings)
        sync_topics(settings)
    with api_server(settings) as base:
        console.log(f"API (all services) at {base} — docs at {base}/docs")
        settings = get_settings()
        outcome = run_signups(base, settings, signups, console)
        engine = db.engine(settings)
        with console.status("relaying the outbox to Kafka…"):
            outcome.published = relay.drain(engine, relay.make_producer(settings))
        with console.status("billing runs over simulated days…"):
            outcome.billing = run_billing_days(settings)
            outcome.published += relay.drain(engine, relay.make_producer(settings))
    with console.status("notification and audit consumers…"):
        outcome.handled = run_consumers(settings)
    with console.status("Spark: Kafka → S3 lake (available-now)…"):
        from streaming.lake.job import run_lake_stream

        run_lake_stream(settings, available_now=True)
        outcome.lake_rows = lake_rows(settings)
    with console.status("lake → warehouse, then dbt build…"):
        outcome.warehouse = load_and_build(settings)
    chart = mrr_chart(settings)
    if chart:
        outcome.warehouse["MRR chart"] = str(chart)
    console.print(summary(settings, outcome))
