"""Freshness: how long a signup takes to be queryable in the warehouse's marts through the
streaming path, on a fresh local stack.

    .venv/bin/python bench/freshness.py [--signups 20] [--spacing 6] [--sensor-seconds 120]

The path, as deployed: the API's outbox → the relay (polling every 0.2 s) → Kafka → the
Spark lake stream (`LAKE_TRIGGER_SECONDS`, 1 s here as in production's overlay) → S3 →
the lake sensor (every `--sensor-seconds`; Dagster's `minimum_interval_seconds` is 120) →
the warehouse_job runs it requests (one per group of neighbouring new lake partitions: their
load into raw.events, their checks, then one `dbt build`, incremental where the marts grow
daily) → `marts.dim_customers`. The sensor's
ticks and runs are the real ones, evaluated and materialized in-process against an
ephemeral Dagster instance (no daemon, no run launcher: those add their own latency in a
deployment).

Signups arrive one every `--spacing` seconds over the HTTP API. For each: seconds from its
201 to its customer's row in the marts. Printed: median and max, and per tick the sensor's
wait, the runs it requested and their load and dbt times, which say what bounds each
figure: a signup waits for the next tick (up to the interval), then for that tick's runs (each
builds dbt once).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import httpx  # noqa: E402

from bench.fresh_stack import fresh_stack  # noqa: E402
from paywall.settings import Settings  # noqa: E402


@dataclasses.dataclass
class Tick:
    at: float
    runs: int
    seconds: float
    dbt_seconds: list[float]


def warehouse_assets() -> list[Any]:
    """warehouse_job's selection: the load, the dbt project, and their checks."""
    from assets.warehouse.assets import raw_events
    from assets.warehouse.checks import (
        billing_match_check,
        mart_checks,
        raw_events_unique_event_ids,
    )
    from assets.warehouse.dbt import paywall_dbt

    return [
        raw_events,
        raw_events_unique_event_ids,
        paywall_dbt(),
        *mart_checks(),
        billing_match_check(),
    ]


def tick(instance: Any, resources: dict[str, Any]) -> Tick:
    """One sensor evaluation, then the runs it requests, one after another (as a run queue
    with one slot does: every run writes the same DuckDB file)."""
    from dagster import SensorResult, build_sensor_context, materialize

    from assets.warehouse.sensors import lake_partitions_sensor

    start = time.perf_counter()
    context = build_sensor_context(instance=instance, resources=resources)
    result = lake_partitions_sensor(context)
    dbt_seconds: list[float] = []
    if isinstance(result, SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys or [])
            )
        for run in result.run_requests or []:
            began = time.perf_counter()
            done = materialize(
                warehouse_assets(),
                partition_key=run.partition_key,
                tags=run.tags,  # a run over a range of partitions names it in its tags
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )
            if not done.success:
                raise RuntimeError(f"warehouse run for {run.partition_key} failed")
            dbt_seconds.append(time.perf_counter() - began)
    return Tick(time.time(), len(dbt_seconds), time.perf_counter() - start, dbt_seconds)


def visible(settings: Settings, customer_ids: set[str]) -> set[str]:
    from assets.warehouse.config import warehouse_config

    path = warehouse_config(settings).duckdb_path
    if not path.exists() or not customer_ids:
        return set()
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            rows = con.execute("SELECT customer_id FROM marts.dim_customers").fetchall()
        except duckdb.CatalogException:
            return set()
    return customer_ids & {str(r[0]) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signups", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=6.0, help="seconds between signups")
    parser.add_argument("--sensor-seconds", type=float, default=120.0)
    args = parser.parse_args()

    with fresh_stack("freshness-bench-") as (tmp, _):
        from dagster import DagsterInstance

        from paywall import db
        from paywall.cli.demo_flow import api_server, partner_token
        from paywall.clients import ensure_bucket, make_test_card
        from paywall.settings import get_settings
        from pipelines.resources import build_resources
        from streaming import relay
        from streaming.admin import sync_topics
        from streaming.lake.config import lake_config
        from streaming.lake.job import lake_spark_session, start_lake_queries

        settings = get_settings()
        db.upgrade(settings)
        sync_topics(settings)
        ensure_bucket(settings, settings.lake_bucket)  # the sensor lists it from the start
        cfg = dataclasses.replace(
            lake_config(settings, Path(tmp) / "checkpoint"), trigger_seconds=1.0
        )
        spark = lake_spark_session(cfg)
        stop = threading.Event()
        signed: dict[str, float] = {}  # customer id -> when its signup answered
        seen: dict[str, float] = {}
        ticks: list[Tick] = []
        with api_server(settings) as base, DagsterInstance.ephemeral() as instance:
            settings = get_settings()
            resources = build_resources(settings)
            headers = {"Authorization": f"Bearer {partner_token(base, settings)}"}
            cards = [make_test_card(settings) for _ in range(args.signups)]
            relaying = threading.Thread(
                target=relay.run, args=(db.engine(settings), settings, stop.is_set), daemon=True
            )
            relaying.start()
            queries = start_lake_queries(spark, cfg, available_now=False)

            def sign_up() -> None:
                for i, card in enumerate(cards):
                    resp = httpx.post(
                        f"{base}/v1/registrations",
                        json={
                            "email": f"fresh-{uuid.uuid4().hex[:8]}@example.com",
                            "password": "bench password 1234",
                            "name": f"Fresh {i}",
                            "plan_id": "basic-monthly",
                            "payment_method_id": card,
                        },
                        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                        timeout=60,
                    )
                    if resp.status_code != 201:
                        raise RuntimeError(f"signup answered {resp.status_code}: {resp.text}")
                    signed[resp.json()["customer_id"]] = time.time()
                    time.sleep(args.spacing)

            signing = threading.Thread(target=sign_up, daemon=True)
            try:
                signing.start()
                next_tick = time.time() + args.sensor_seconds
                while len(seen) < args.signups:
                    time.sleep(max(0.0, next_tick - time.time()))
                    next_tick = time.time() + args.sensor_seconds
                    ticks.append(tick(instance, resources))
                    done_at = time.time()
                    for customer in visible(settings, set(signed) - set(seen)):
                        seen[customer] = done_at
                    print(
                        f"tick {len(ticks)}: {ticks[-1].runs} run(s) in "
                        f"{ticks[-1].seconds:.1f} s, {len(seen)}/{args.signups} visible",
                        flush=True,
                    )
                    if len(ticks) > 10 + args.signups * args.spacing / args.sensor_seconds:
                        raise RuntimeError("signups never reached the marts")
            finally:
                for query in queries:
                    query.stop()
                stop.set()
                relaying.join(30)
                spark.stop()

    waits = [seen[c] - signed[c] for c in signed]
    runs = [s for t in ticks for s in t.dbt_seconds]
    print(
        f"signup -> marts.dim_customers, {len(waits)} signups one every {args.spacing:g} s, "
        f"sensor every {args.sensor_seconds:g} s, lake trigger 1 s, relay polling 0.2 s:"
    )
    print(f"  median {statistics.median(waits):.1f} s, max {max(waits):.1f} s")
    print(
        f"  {len(ticks)} ticks, {len(runs)} warehouse runs: a run (load, checks, dbt build) "
        f"median {statistics.median(runs):.1f} s, max {max(runs):.1f} s; a tick's runs "
        f"median {statistics.median(t.seconds for t in ticks):.1f} s"
    )
    print(
        "  bound: a signup waits up to the sensor interval for a tick, then for that tick's "
        "runs (one dbt build per run)"
    )


if __name__ == "__main__":
    main()
