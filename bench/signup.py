"""Signups per second and latency through `POST /v1/registrations`, against a baseline.

The baseline, measured in the same run on the same database, is a bare FastAPI endpoint
doing one INSERT (bench/baseline_app.py). Both run under uvicorn in their own process;
the load comes from this process over loopback with the same concurrency.

    .venv/bin/python bench/signup.py [--signups 200] [--concurrency 8] [--workers 2]

Targets (issue 3): throughput at least 0.5x the baseline's, p99 at most 2x the baseline's.
A signup is several HTTP calls between services and to Stripe (localstripe here), so the
comparison says how much the saga costs over the cheapest possible write.

Also measured in the same run, each alone at the same concurrency: the parts no signup
can skip — the four Stripe calls of a first charge (customer, attach, default method,
PaymentIntent confirm) against the Stripe server, and the argon2id hash of the password
under the configured cost. Their rates bound what any implementation of the saga could
reach on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import stripe

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fresh_stack import fresh_stack  # noqa: E402
from paywall import clients, db  # noqa: E402
from paywall.cli.demo_flow import GOOD_CARD, new_card, partner_token  # noqa: E402
from paywall.settings import get_settings, reset_settings  # noqa: E402
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


def stripe_calls(client: stripe.StripeClient, card: str) -> None:
    """What the payment service asks Stripe for in a signup with a first charge."""
    customer = client.v1.customers.create(params={"email": "bench@example.com"})
    client.v1.payment_methods.attach(card, params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": card}}
    )
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1900,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": card,
            "payment_method_types": ["card"],
            "confirm": True,
            "off_session": True,
        }
    )
    if intent.status != "succeeded":
        raise RuntimeError(f"bench charge {intent.id} is {intent.status}")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signups", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="`paywall serve --workers`")
    args = parser.parse_args()

    with fresh_stack("paywall-bench-") as (root, settings):
        procs: list[subprocess.Popen[bytes]] = []
        try:
            db.upgrade(settings)
            api_port, base_port = free_port(), free_port()
            env = {**os.environ, "API_PORT": str(api_port), "LOG_LEVEL": "WARNING"}
            procs.append(
                serve(
                    [str(REPO / ".venv/bin/paywall"), "serve", "--workers", str(args.workers)],
                    env,
                    api_port,
                    root / "api.log",
                )
            )
            procs.append(
                serve(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "bench.baseline_app:app",
                        "--port",
                        str(base_port),
                        "--log-level",
                        "warning",
                    ],
                    {**env, "DATABASE_URL": settings.database_url or ""},
                    base_port,
                    root / "baseline.log",
                )
            )
            os.environ["API_PORT"] = str(api_port)
            reset_settings()
            api = f"http://127.0.0.1:{api_port}"
            token = partner_token(api, get_settings())
            cards = [new_card(settings, GOOD_CARD) for _ in range(2 * args.signups + 10)]
            stripe_client = clients.stripe_client(settings)
            http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64))
            baseline_http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64))

            def signup(card: str) -> httpx.Response:
                return created(register(http, api, token, card))

            def insert(_: int) -> httpx.Response:
                return created(
                    baseline_http.post(
                        f"http://127.0.0.1:{base_port}/insert",
                        json={"email": f"{uuid.uuid4().hex}@example.com"},
                    )
                )

            warm, main_cards, spare = (
                cards[:10],
                cards[10 : 10 + args.signups],
                cards[10 + args.signups :],
            )
            load(lambda i: signup(warm[i]), 10, 2)  # warm-up: JWKS cache, connection pools, imports
            load(insert, 10, 2)
            base_rps, base_lat = load(insert, args.signups, args.concurrency)
            rps, lat = load(lambda i: signup(main_cards[i]), args.signups, args.concurrency)
            stripe_rps, stripe_lat = load(
                lambda i: stripe_calls(stripe_client, spare[i]), args.signups, args.concurrency
            )
            hash_rps, hash_lat = load(
                lambda _: hash_secret("bench password 123"), args.signups, args.concurrency
            )
        except RuntimeError:
            for log in root.glob("*.log"):
                print(f"--- {log.name}", log.read_text()[-3000:], sep="\n")
            raise
        finally:
            for proc in procs:
                stop_pid(proc.pid)

    print(
        f"signups: {args.signups} at concurrency {args.concurrency}, "
        f"{args.workers} API worker process(es)"
    )
    print(
        f"baseline (one INSERT): {base_rps:8.1f} req/s  p50 {pct(base_lat, 50):7.1f} ms  "
        f"p99 {pct(base_lat, 99):7.1f} ms"
    )
    print(
        f"signup saga:           {rps:8.1f} req/s  p50 {pct(lat, 50):7.1f} ms  "
        f"p99 {pct(lat, 99):7.1f} ms"
    )
    print("parts every signup needs, each alone:")
    for name, part_rps, part_lat in (
        ("4 Stripe calls", stripe_rps, stripe_lat),
        ("argon2id hash", hash_rps, hash_lat),
    ):
        print(
            f"  {name + ':':20} {part_rps:8.1f} /s     p50 {pct(part_lat, 50):7.1f} ms  "
            f"p99 {pct(part_lat, 99):7.1f} ms  = {part_rps / base_rps:.3f}x baseline "
            f"throughput, {pct(part_lat, 99) / pct(base_lat, 99):.1f}x its p99"
        )
    print(f"throughput ratio (signup/baseline): {rps / base_rps:.3f}x  (target >= 0.5x)")
    print(
        f"p99 ratio (signup/baseline):        {pct(lat, 99) / pct(base_lat, 99):.2f}x  "
        "(target <= 2x)"
    )


if __name__ == "__main__":
    main()
