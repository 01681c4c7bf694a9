"""`paywall demo`: the whole flow on the local stack, with a summary of every stage.

stack up → migrate → topics → API (all services, one process) → four months of signups,
plan changes and billing days (demo_story.py; billing runs and notification batches
materialized through Dagster, demo_dagster.py) → outbox relay → notification and audit
consumers → Spark lake job → lake → warehouse and dbt build through Dagster →
billing_report through Dagster → the first customer's invoice as PDF and PNG → summary,
with the money per currency from the billing schema beside the marts' (demo_billing.py),
and MRR per month and its chart.
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
from typing import TYPE_CHECKING

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from paywall import clients, db
from paywall.cli import demo_billing as extras
from paywall.cli.demo_story import StoryOutcome
from paywall.logs import configure_logging
from paywall.settings import Settings, get_settings, reset_settings, state_dir
from paywall.stack.process import free_port, port_open

if TYPE_CHECKING:
    from assets.billing.mrr import MonthMrr


@dataclass
class Outcome:
    story: StoryOutcome = field(default_factory=StoryOutcome)
    published: int = 0
    lake_rows: dict[str, int] = field(default_factory=dict)
    warehouse: dict[str, str] = field(default_factory=dict)
    handled: dict[str, dict[str, int]] = field(default_factory=dict)
    mrr: list[MonthMrr] = field(default_factory=list)
    dagster_failed: list[str] = field(default_factory=list)
    money: list[tuple[str, str]] = field(default_factory=list)
    invoice: tuple[Path, Path] | None = None


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
            scopes=(
                "registrations:write",
                "subscriptions:read",
                "subscriptions:write",
                "coupons:write",
                "tax_rates:write",
                "invoices:read",
                "invoices:write",
            ),
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


def mrr_months(rows: list[MonthMrr]) -> Table:
    from assets.billing.mrr import COMPONENTS

    table = Table(
        "month", "currency", "starting", *COMPONENTS, "MRR", title="MRR per month (marts)"
    )
    for r in rows:
        table.add_row(
            r.month.strftime("%Y-%m"),
            r.currency.upper(),
            f"{r.starting:,.2f}",
            *(f"{r.components[c]:,.2f}" for c in COMPONENTS),
            f"{r.mrr:,.2f}",
        )
    return table


def summary(settings: Settings, outcome: Outcome) -> Table:
    from streaming.consumers.audit import verify

    engine = db.engine(settings)
    with engine.connect() as conn:
        mrr: float = conn.execute(
            text(
                # The marts' rule: a yearly price's monthly share rounded to the cent first;
                # each subscription at the price version it pays, not the plan's latest.
                "SELECT coalesce(sum(CASE p.interval WHEN 'year' THEN round(v.amount / 12.0) "
                "ELSE v.amount END), 0) FROM subscription.subscriptions s JOIN "
                "subscription.plans p ON p.id = s.plan_id JOIN subscription.plan_prices v ON "
                "v.plan_id = s.plan_id AND v.version = s.price_version "
                "WHERE s.status IN ('active', 'past_due')"
            )
        ).scalar_one()
        states: dict[str, int] = dict(
            conn.execute(
                text("SELECT status, count(*) FROM subscription.subscriptions GROUP BY status")
            ).all()
        )
        invoices: dict[str, int] = dict(
            conn.execute(
                text("SELECT status, count(*) FROM billing.invoices GROUP BY status")
            ).all()
        )
        sends: dict[str, int] = dict(
            conn.execute(
                text("SELECT channel || ' ' || status, count(*) FROM notification.sends GROUP BY 1")
            ).all()
        )
    audit = verify(engine)
    table = Table("stage", "result", title="paywall demo")
    story = outcome.story
    table.add_row("signups (HTTP)", ", ".join(f"{k}: {v}" for k, v in story.signups.items()))
    table.add_row("plan changes", ", ".join(f"{k}: {v}" for k, v in story.changes.items()))
    table.add_row("coupon and tax rates", ", ".join(story.billing_setup))
    table.add_row("subscriptions", ", ".join(f"{k}: {v}" for k, v in sorted(states.items())))
    table.add_row("events relayed to Kafka", str(outcome.published))
    for name, stats in outcome.handled.items():
        table.add_row(f"{name} consumer", ", ".join(f"{k}: {v}" for k, v in stats.items()))
    table.add_row("notifications", ", ".join(f"{k}: {v}" for k, v in sorted(sends.items())))
    table.add_row(
        "lake (Parquet rows)", ", ".join(f"{k}: {v}" for k, v in sorted(outcome.lake_rows.items()))
    )
    days = story.billing_days
    table.add_row(
        "billing runs (Dagster)",
        f"{len(days)} day(s), {days[0]} … {days[-1]}, each {settings.billing_shards} shard runs, "
        "then its close"
        if days
        else "nothing due",
    )
    table.add_row("invoices", ", ".join(f"{k}: {v}" for k, v in sorted(invoices.items())))
    table.add_row("invoices discounted, taxed", extras.invoice_terms(engine))
    table.add_row("credit note", story.credit_note or "none")
    table.add_row("Dagster runs failed", ", ".join(outcome.dagster_failed) or "none")
    for key, value in outcome.warehouse.items():
        table.add_row(key, value)
    table.add_row("audit log", f"{audit.rows} rows, chain {'intact' if audit.ok else 'BROKEN'}")
    for key, value in outcome.money:
        table.add_row(key, value)
    if outcome.invoice:
        table.add_row("first customer's invoice (PDF)", str(outcome.invoice[0]))
        table.add_row("first customer's invoice (PNG)", str(outcome.invoice[1]))
    table.add_row("MRR from subscriptions", f"{float(mrr) / 100:,.2f} USD (active and past_due)")
    return table


def mrr_from_marts(settings: Settings) -> list[MonthMrr]:
    from assets.billing.mrr import MRR_SQL, mrr_rows
    from assets.warehouse.resources import WarehouseResource

    try:
        return mrr_rows(WarehouseResource(settings).query(MRR_SQL).to_dict("records"))
    except Exception:  # no marts: dbt failed, and the summary says so
        return []


def run(console: Console, signups: int) -> None:
    from assets.billing.mrr import write_chart
    from paywall.cli.demo_dagster import DemoDagster, demo_instance
    from paywall.cli.demo_story import Story
    from streaming import relay
    from streaming.admin import sync_topics
    from streaming.lake.job import run_lake_stream
    from transactional.auth.clients import ensure_default_clients

    settings = get_settings()
    configure_logging(settings)
    logging.getLogger().setLevel(logging.WARNING)  # the tables tell the story; logs would drown it
    with console.status("migrating the database and creating topics…"):
        db.upgrade(settings)
        sync_topics(settings)
    outcome = Outcome()
    with api_server(settings) as base, demo_instance() as instance:
        console.log(f"API (all services) at {base} — docs at {base}/docs")
        settings = get_settings()
        engine = db.engine(settings)
        with engine.begin() as conn:
            ensure_default_clients(conn, settings)  # billing's own OAuth client
        dagster = DemoDagster(settings, instance)
        story = Story(base, settings, partner_token(base, settings), dagster, console)
        outcome.story = story.play(signups)
        with console.status("relaying the outbox to Kafka…"):
            outcome.published = relay.drain(engine, relay.make_producer(settings))
        with console.status("notification and audit consumers…"):
            outcome.handled = run_consumers(settings)
        with console.status("Spark: Kafka → S3 lake (available-now)…"):
            run_lake_stream(settings, available_now=True)
            outcome.lake_rows = lake_rows(settings)
        with console.status("Dagster: lake → warehouse, dbt build, billing report…"):
            loaded, built = dagster.warehouse()
            outcome.warehouse["warehouse load (Dagster)"] = f"{loaded} lake partition(s)"
            outcome.warehouse["dbt build (Dagster)"] = built
            outcome.warehouse["fct_invoices_match_billing (blocking)"] = dagster.invoices_match
            if outcome.story.billing_days:
                dagster.billing_report(outcome.story.billing_days[-1])
        outcome.dagster_failed = dagster.failed
        outcome.money = extras.money_rows(
            extras.billing_money(engine), extras.marts_money(dagster.resources["warehouse"])
        )
        first = next((p.answer["customer_id"] for p in story.people if p.answer), None)
        if first:
            with httpx.Client(timeout=60) as http:
                outcome.invoice = extras.render_invoice(
                    http, base, story.headers, engine, first, state_dir()
                )
        outcome.mrr = mrr_from_marts(settings)
        if outcome.mrr:
            latest = max(r.month for r in outcome.mrr)
            total = sum(r.mrr for r in outcome.mrr if r.month == latest)
            outcome.warehouse["MRR from the marts"] = f"{total:,.2f} USD ({latest})"
            chart = state_dir() / "mrr.png"
            write_chart(outcome.mrr, chart)
            outcome.warehouse["MRR chart"] = str(chart)
        outcome.warehouse["Dagster instance"] = str(instance.root_directory)
    console.print(summary(settings, outcome))
    if outcome.mrr:
        console.print(mrr_months(outcome.mrr))
