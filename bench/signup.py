"""Signups per second, latency and CPU per signup through `POST /v1/registrations`,
against a floor measured in the same run.

    .venv/bin/python bench/signup.py [--signups 200] [--concurrency 8] [--workers 2]

The floor (bench/signup_floor.py) does, at the same concurrency and in threads of this
process, only what no signup can skip: the argon2id hash, the four Stripe calls of a first
charge against the same Stripe server, and one INSERT per row the saga wrote in this run
(counted exactly, committed once per owning schema). The ratio signup/floor is what the
saga itself costs: internal HTTP hops, token checks, idempotency and step records.

CPU per signup is read per process tree (bench/cpu.py) over each phase: the API server
and its workers, PostgreSQL, the Stripe stand-in, and for the floor this process, which
does the floor's work itself. The hash and the Stripe calls are also timed alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cpu import CpuMeter  # noqa: E402
from bench.fresh_stack import fresh_stack  # noqa: E402
from bench.signup_floor import (  # noqa: E402
    create_floor_table,
    floor_signup,
    rows_per_schema,
    stripe_first_charge,
    table_rows,
)
from paywall import clients, db  # noqa: E402
from paywall.cli.demo_flow import partner_token  # noqa: E402
from paywall.clients import make_test_card  # noqa: E402
from paywall.settings import get_settings, reset_settings  # noqa: E402
from paywall.stack.local import LocalStack  # noqa: E402
from paywall.stack.process import free_port, stop_pid, wait_until  # noqa: E402
from transactional.auth.passwords import hash_secret  # noqa: E402


def serve(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_until(
        lambda: _up(port),
        " ".join(argv[:3]),
        timeout=60,
        alive=lambda: proc.poll() is None,
        log=log,
    )
    return proc


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def load(call: Callable[[int], object], n: int, concurrency: int) -> tuple[float, list[float]]:
    """Rate and latencies of `n` calls from `concurrency` threads; a call raises on failure."""
    latencies: list[float] = []

    def one(i: int) -> None:
        start = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - start), latencies


def register(http: httpx.Client, api: str, token: str, card: str) -> httpx.Response:
    """One partner signup (a new email, the pro plan, `card`), as the benchmarks send it."""
    return http.post(
        f"{api}/v1/registrations",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        json={
            "email": f"bench-{uuid.uuid4().hex[:12]}@example.com",
            "password": "bench password 123",
            "name": "Bench",
            "plan_id": "pro-monthly",
            "payment_method_id": card,
        },
    )


def created(resp: httpx.Response) -> httpx.Response:
    if resp.status_code != 201:
        raise RuntimeError(f"{resp.request.url} answered {resp.status_code}: {resp.text[:300]}")
    return resp


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def stack_pids(root: Path) -> dict[str, int]:
    """PIDs of the servers this run's stack started (an external server is not measured)."""
    return {
        part.name: part.pid
        for part in LocalStack(root / "stack").status()
        if part.name in ("postgres", "stripe") and part.pid is not None
    }


def report(name: str, rate: float, lat: list[float], cpu: dict[str, float], n: int) -> None:
    per = "  ".join(f"{proc} {seconds * 1000 / n:5.1f}" for proc, seconds in cpu.items())
    total = sum(cpu.values()) * 1000 / n
    print(
        f"{name:22} {rate:7.1f} /s  p50 {pct(lat, 50):7.1f} ms  p99 {pct(lat, 99):7.1f} ms  "
        f"CPU-ms/signup {total:6.1f} ({per})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signups", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="`paywall serve --workers`")
    args = parser.parse_args()

    with fresh_stack("paywall-bench-") as (root, settings):
        api_proc: subprocess.Popen[bytes] | None = None
        try:
            db.upgrade(settings)
            api_port = free_port()
            env = {**os.environ, "API_PORT": str(api_port), "LOG_LEVEL": "WARNING"}
            api_proc = serve(
                [str(REPO / ".venv/bin/paywall"), "serve", "--workers", str(args.workers)],
                env,
                api_port,
                root / "api.log",
            )
            os.environ["API_PORT"] = str(api_port)
            reset_settings()
            api = f"http://127.0.0.1:{api_port}"
            token = partner_token(api, get_settings())
            cards = [make_test_card(settings) for _ in range(3 * args.signups + 10)]
            warm, saga_cards, floor_cards, part_cards = (
                cards[:10],
                cards[10 : 10 + args.signups],
                cards[10 + args.signups : 10 + 2 * args.signups],
                cards[10 + 2 * args.signups :],
            )
            stripe_client = clients.stripe_client(settings)
            http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64))
            url = settings.database_url or ""
            servers = stack_pids(root)

            def signup(card: str) -> httpx.Response:
                return created(register(http, api, token, card))

            load(lambda i: signup(warm[i]), 10, 2)  # warm-up: JWKS cache, pools, imports
            before = table_rows(url)
            meter = CpuMeter({"api": api_proc.pid, **servers})
            meter.start()
            rps, lat = load(lambda i: signup(saga_cards[i]), args.signups, args.concurrency)
            saga_cpu = meter.stop()
            rows = rows_per_schema(before, table_rows(url), args.signups)

            create_floor_table(url)
            local = threading.local()

            def floor(i: int) -> None:
                if not hasattr(local, "conn"):
                    local.conn = psycopg.connect(url, autocommit=True)
                floor_signup(local.conn, stripe_client, floor_cards[i], rows)

            meter = CpuMeter(servers, own="bench")
            meter.start()
            floor_rps, floor_lat = load(floor, args.signups, args.concurrency)
            floor_cpu = meter.stop()
            stripe_rps, stripe_lat = load(
                lambda i: stripe_first_charge(stripe_client, part_cards[i]),
                args.signups,
                args.concurrency,
            )
            hash_rps, hash_lat = load(
                lambda _: hash_secret("bench password 123"), args.signups, args.concurrency
            )
        except RuntimeError:
            for log in root.glob("*.log"):
                print(f"--- {log.name}", log.read_text()[-3000:], sep="\n")
            raise
        finally:
            if api_proc is not None:
                stop_pid(api_proc.pid)

    print(
        f"signups: {args.signups} at concurrency {args.concurrency}, "
        f"{args.workers} API worker process(es), {os.cpu_count()} cores"
    )
    print("rows the saga wrote per signup: " + ", ".join(f"{k} {v}" for k, v in rows.items()))
    report("signup saga", rps, lat, saga_cpu, args.signups)
    report("floor", floor_rps, floor_lat, floor_cpu, args.signups)
    print("parts of the floor, each alone at the same concurrency:")
    for name, part_rps, part_lat in (
        ("4 Stripe calls", stripe_rps, stripe_lat),
        ("argon2id hash", hash_rps, hash_lat),
    ):
        print(
            f"  {name + ':':20} {part_rps:7.1f} /s  p50 {pct(part_lat, 50):7.1f} ms  "
            f"p99 {pct(part_lat, 99):7.1f} ms"
        )
    saga_ms = sum(saga_cpu.values()) / args.signups
    floor_ms = sum(floor_cpu.values()) / args.signups
    print(f"throughput ratio (signup/floor): {rps / floor_rps:.3f}x")
    print(f"p99 ratio (signup/floor):        {pct(lat, 99) / pct(floor_lat, 99):.2f}x")
    print(f"CPU ratio (signup/floor):        {saga_ms / floor_ms:.2f}x")


if __name__ == "__main__":
    main()
