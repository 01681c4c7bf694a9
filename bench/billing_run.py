"""Invoices per second of the billing run's invoice-creation stage, against a floor.

The stage is what `assets.billing.run` does for a billing day: the due subscriptions are
COPY'd into a temporary stage table, what the run was given is recorded
(`billing.due_seen`), then one set-based `INSERT INTO billing.invoices … SELECT … FROM
stage ON CONFLICT (subscription_id, period_start) DO NOTHING` makes the invoices, with
their totals and tenant, and each its one line and its two events (invoice.created,
invoice.finalized) in the same statement (no charging here). The floor, measured in the
same run on the same server, is COPY of the very same rows of those four tables into
tables of the same shape (`LIKE … INCLUDING ALL`: same columns, unique keys and indexes;
and the lines' foreign key to their invoice, which LIKE leaves out).

    .venv/bin/python bench/billing_run.py [--rows 100000] [--rows 1000000]

Target (issue 17): invoice creation at least 0.8x the floor's rate. Also printed: the
floor used until 2026-12-01 (invoices, lines and events only, without the foreign key),
staging (COPY of the due rows from Python), a re-run of the same day (every row a
conflict: nothing created), and the peak resident memory of this process (ru_maxrss):
after the invoice stage, and overall (the floor holds the COPY data in memory). It starts
its own Postgres in a temporary directory (the local stack's, nothing else) and stops it
at the end.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from assets.billing.invoicing import create_invoices, stage  # noqa: E402
from bench.fresh_stack import fresh_stack  # noqa: E402
from paywall import db  # noqa: E402
from paywall.settings import reset_settings  # noqa: E402
from paywall.stack.postgres import Postgres  # noqa: E402

PLANS = (("basic-monthly", 900), ("pro-monthly", 2900), ("team-monthly", 9900))


def due_rows(n: int, day: date) -> Iterator[tuple[object, ...]]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    for i in range(n):
        plan, amount = PLANS[i % len(PLANS)]
        period_start = start + timedelta(seconds=i % 86_400)
        yield (
            uuid.uuid4(),
            str(uuid.uuid4()),
            f"tenant-{i % 100}",
            plan,
            "trial_conversion" if i % 10 == 0 else "renewal",
            amount,
            "usd",
            period_start,
            period_start + timedelta(days=30),
        )


# What the invoice stage writes: each invoice, its line, its created and finalized events,
# and the record of what the run was given (billing.due_seen, for reconciliation).
TABLES = ("invoices", "invoice_lines", "outbox", "due_seen")
# The floor before 2026-12-01, still printed: three of those tables, without the lines'
# foreign key (LIKE … INCLUDING ALL copies no foreign keys).
OLD_FLOOR_TABLES = TABLES[:3]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench(engine: object, n: int, day: date) -> dict[str, float]:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE billing.invoices, billing.outbox, billing.due_seen CASCADE"))
    out: dict[str, float] = {"rows": n}

    # 1. the invoice stage: stage the due rows, then one INSERT … SELECT … ON CONFLICT.
    with engine.begin() as conn:
        t0 = time.perf_counter()
        stage(conn, due_rows(n, day))
        t1 = time.perf_counter()
        created, skipped = create_invoices(conn, day)
    t3 = time.perf_counter()  # commit included
    assert (created, skipped) == (n, 0), (created, skipped)
    out["stage_s"] = t1 - t0
    out["insert_s"] = t3 - t1
    out["invoices_per_s"] = n / (t3 - t1)
    out["stage_rss_mb"] = peak_rss_mb()  # the billing side only (before the floor's buffers)

    # 2. the same day again: every row conflicts, nothing is created.
    with engine.begin() as conn:
        stage(conn, due_rows(0, day))
        conn.execute(
            text(
                "INSERT INTO billing_due_stage SELECT subscription_id, customer_id, tenant_id, "
                "plan_id, kind, amount, currency, period_start, period_end FROM billing.invoices"
            )
        )
        t0 = time.perf_counter()
        created, skipped = create_invoices(conn, day)
    out["rerun_s"] = time.perf_counter() - t0
    assert (created, skipped) == (0, n), (created, skipped)

    # 3. the floor: COPY the same rows into tables of the same shape, the lines' foreign key
    # included; then the older floor (three tables, no foreign key) for comparison.
    raw_conn = engine.raw_connection()
    try:
        pg = raw_conn.driver_connection
        assert pg is not None
        dumps = {}
        for table in TABLES:
            buf = io.BytesIO()
            with pg.cursor() as cur, cur.copy(f"COPY billing.{table} TO STDOUT") as copy:
                for chunk in copy:
                    buf.write(chunk)
            dumps[table] = buf.getvalue()
        pg.commit()
        out["copy_s"] = copy_floor(pg, dumps, TABLES, foreign_key=True)
        out["old_copy_s"] = copy_floor(pg, dumps, OLD_FLOOR_TABLES, foreign_key=False)
        del dumps
        with pg.cursor() as cur:
            cur.execute("TRUNCATE billing.invoices, billing.outbox, billing.due_seen CASCADE")
        pg.commit()
    finally:
        raw_conn.close()
    out["copy_per_s"] = n / out["copy_s"]
    out["ratio"] = out["invoices_per_s"] / out["copy_per_s"]
    out["old_ratio"] = out["invoices_per_s"] / (n / out["old_copy_s"])
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def copy_floor(
    pg: psycopg.Connection[Any],
    dumps: dict[str, bytes],
    tables: tuple[str, ...],
    *,
    foreign_key: bool,
) -> float:
    """Seconds to COPY `dumps` of `tables` into same-shape tables, in one transaction."""
    with pg.cursor() as cur:
        for table in tables:
            cur.execute(f"DROP TABLE IF EXISTS public.{table}_copy")
            cur.execute(f"CREATE TABLE public.{table}_copy (LIKE billing.{table} INCLUDING ALL)")
        if foreign_key:
            cur.execute(
                "ALTER TABLE public.invoice_lines_copy ADD FOREIGN KEY (invoice_id) "
                "REFERENCES public.invoices_copy (id)"
            )
    pg.commit()
    t0 = time.perf_counter()
    for table in tables:
        with pg.cursor() as cur, cur.copy(f"COPY public.{table}_copy FROM STDIN") as copy:
            view = memoryview(dumps[table])
            for i in range(0, len(view), 1 << 20):
                copy.write(view[i : i + (1 << 20)])
    pg.commit()
    seconds = time.perf_counter() - t0
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM public.invoices_copy")
        copied = cur.fetchone()
        for table in reversed(tables):  # the lines (and their key) before the invoices
            cur.execute(f"DROP TABLE public.{table}_copy")
    pg.commit()
    assert copied is not None and copied[0] == len(dumps["invoices"].splitlines())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="subscriptions (repeatable)")
    args = parser.parse_args()
    sizes = args.rows or [100_000]
    with fresh_stack("paywall-bench-billing-", waves=[[Postgres()]]) as (_, settings):
        reset_settings()
        db.upgrade(settings)
        engine = db.engine(settings)
        print(
            f"{'rows':>9} {'stage s':>8} {'invoice s':>9} {'inv/s':>9} {'COPY s':>7} "
            f"{'COPY/s':>9} {'ratio':>6} {'old floor s':>11} {'old ratio':>9} {'re-run s':>8} "
            f"{'RSS MB billing':>14} {'RSS MB all':>10}"
        )
        for n in sizes:
            r = bench(engine, n, date(2026, 3, 1))
            print(
                f"{n:>9} {r['stage_s']:>8.2f} {r['insert_s']:>9.2f} "
                f"{r['invoices_per_s']:>9.0f} {r['copy_s']:>7.2f} {r['copy_per_s']:>9.0f} "
                f"{r['ratio']:>6.2f} {r['old_copy_s']:>11.2f} {r['old_ratio']:>9.2f} "
                f"{r['rerun_s']:>8.2f} {r['stage_rss_mb']:>14.0f} "
                f"{r['peak_rss_mb']:>10.0f}",
                flush=True,
            )
        print(
            "ratio = invoice creation (INSERT … SELECT … ON CONFLICT DO NOTHING, commit "
            "included) / COPY of the same rows into same-shape tables, the lines' foreign key "
            "included; target >= 0.8. old = the floor before 2026-12-01: invoices, lines and "
            "events only, no foreign key"
        )


if __name__ == "__main__":
    main()
