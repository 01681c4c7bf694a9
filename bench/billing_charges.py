"""A billing day's charges under Stripe's rate limit: what a day of 100k due subscriptions takes.

The billing run charges through the payment service, each charge one Stripe request
(a confirmed PaymentIntent), paced by billing's Stripe budget (assets/billing/pacing.py).
No run can beat the budget: N charges take at least N / rate seconds, so at Stripe's
live limit of 100 a second 100,000 charges take at least 1,000 s (16.7 min). The floor
measured in the same run is the processor's calls alone: the same N confirmed
PaymentIntents sent straight to the Stripe stand-in from as many threads, paced by a
budget of the same rate (so at most N / rate, or the stand-in's own speed when that is
lower), none of them refused. The ratio (floor time / charge time) says what billing and
the payment service cost on top. Per rate:

* 25/s (test mode) and 100/s (live mode), with the Stripe stand-in enforcing the same
  limit itself (answering 429 past it, as Stripe does), so a 429 counted here is a charge
  the budget let through too early;
* unpaced (a budget nobody reaches), which is what this machine's stack can do at all.

Each rate bills its own N fresh subscriptions (signed up through the API, then their
period end moved to the billing day), running `BillingRun.run` for that day as the Dagster
asset does, and times its phases: the charges (paced) and the renewals told to the
subscription service afterwards (in batches of 100 paid invoices, not Stripe calls).

    .venv/bin/python bench/billing_charges.py [--charges 500] [--concurrency 8]

It starts its own throwaway local stack and `paywall serve`, and stops them at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from dateutil.relativedelta import relativedelta

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from assets.billing.pacing import Pace  # noqa: E402
from assets.billing.run import BillingRun  # noqa: E402
from assets.shared.resources import Services  # noqa: E402
from bench.fresh_stack import fresh_stack  # noqa: E402
from bench.signup import created, register, serve  # noqa: E402
from paywall import clients, db  # noqa: E402
from paywall.cli.demo_flow import partner_token  # noqa: E402
from paywall.clients import make_test_card  # noqa: E402
from paywall.settings import Settings, get_settings, reset_settings  # noqa: E402
from paywall.stack.process import free_port, stop_pid  # noqa: E402
from transactional.auth.clients import ensure_default_clients  # noqa: E402

UNPACED = 10_000  # a budget no local run reaches
DAY_HOUR = 5


def sign_up(api: str, settings: Settings, n: int, concurrency: int) -> list[str]:
    token = partner_token(api, settings)
    cards = [make_test_card(settings) for _ in range(n)]

    def one(card: str) -> str:
        with httpx.Client(timeout=60) as http:
            resp = created(register(http, api, token, card))
        return str(resp.json()["subscription_id"])

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, cards))


def due_on(settings: Settings, subs: list[str], day: date) -> None:
    end = datetime(day.year, day.month, day.day, DAY_HOUR, tzinfo=UTC)
    with db.engine(settings).begin() as conn:
        conn.execute(
            text(
                "UPDATE subscription.subscriptions SET current_period_end = :e, "
                "current_period_start = :s WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"e": end, "s": end - relativedelta(months=1), "ids": subs},
        )


def stand_in_limit(settings: Settings, per_second: int | None) -> dict[str, Any]:
    resp = httpx.post(
        f"{settings.stripe_api_base}/_config/rate_limit", json={"per_second": per_second}
    )
    resp.raise_for_status()
    return dict(resp.json())


def timed(phases: dict[str, float], name: str, step: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return step(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start

    return run


def processor_floor(settings: Settings, n: int, rate: int | None, concurrency: int) -> float:
    """Seconds for n confirmed PaymentIntents straight to Stripe, paced at `rate`."""
    assert settings.redis_url
    client = clients.stripe_client(settings)
    customer = client.v1.customers.create(params={"email": "floor@example.com"})
    card = make_test_card(settings)
    client.v1.payment_methods.attach(card, params={"customer": customer.id})
    pace = Pace(settings.redis_url, rate or UNPACED, budget=f"bench-floor-{uuid.uuid4()}")

    def charge(_: int) -> None:
        pace.wait()
        intent = client.v1.payment_intents.create(
            params={
                "amount": 2900,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": card,
                "payment_method_types": ["card"],
                "confirm": True,
                "off_session": True,
            },
            options={"idempotency_key": str(uuid.uuid4())},
        )
        if intent.status != "succeeded":
            raise RuntimeError(f"floor charge {intent.id} is {intent.status}")

    # Not refused by the stand-in's limit: the floor is the ideal, never a 429 met.
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(charge, range(n)))
    return time.perf_counter() - start


def bill(settings: Settings, day: date, rate: int | None, concurrency: int) -> dict[str, Any]:
    assert settings.redis_url
    services = Services(settings)
    run = BillingRun(
        db.engine(settings),
        services.subscription,
        services.payment,
        Pace(settings.redis_url, rate or UNPACED),
        concurrency,
    )
    phases: dict[str, float] = {}
    run.charges.charge_all = timed(phases, "charges", run.charges.charge_all)  # type: ignore[method-assign]
    run.actions.apply_pending = timed(phases, "renewals", run.actions.apply_pending)  # type: ignore[method-assign]
    before = stand_in_limit(settings, rate)["answered"]
    start = time.perf_counter()
    counts = run.run(day)
    total = time.perf_counter() - start
    after = stand_in_limit(settings, None)["answered"]
    refused = sum(after.values()) - sum(before.values())
    return {"counts": counts, "total": total, "phases": phases, "refused": refused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--charges", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rates: list[int | None] = [25, 100, None]

    with fresh_stack("paywall-bench-charges-") as (root, settings):
        api_proc: subprocess.Popen[bytes] | None = None
        try:
            db.upgrade(settings)
            port = free_port()
            env = {**os.environ, "API_PORT": str(port), "LOG_LEVEL": "WARNING"}
            api_proc = serve(
                [str(REPO / ".venv/bin/paywall"), "serve"], env, port, root / "api.log"
            )
            os.environ["API_PORT"] = str(port)
            os.environ["LOG_LEVEL"] = "WARNING"
            reset_settings()
            settings = get_settings()
            with db.engine(settings).begin() as conn:
                ensure_default_clients(conn, settings)
            api = f"http://127.0.0.1:{port}"
            results = []
            for i, rate in enumerate(rates):
                start = time.perf_counter()
                subs = sign_up(api, settings, args.charges, args.concurrency)
                print(f"signed up {len(subs)} in {time.perf_counter() - start:.0f} s", flush=True)
                day = date(2030, 1, 10 + i)
                due_on(settings, subs, day)
                result = bill(settings, day, rate, args.concurrency)
                result["floor"] = processor_floor(settings, args.charges, rate, args.concurrency)
                results.append((rate, result))
        except RuntimeError:
            for log in root.glob("*.log"):
                print(f"--- {log.name}", log.read_text()[-3000:], sep="\n")
            raise
        finally:
            if api_proc is not None:
                stop_pid(api_proc.pid)

    n = args.charges
    print(f"\n{n} due subscriptions per budget, billing concurrency {args.concurrency}")
    print(
        "| budget | paid | charges | charges/s | floor: Stripe calls alone | ratio "
        "| renewals | whole run | 429s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for rate, r in results:
        charges, renewals, floor = r["phases"]["charges"], r["phases"]["renewals"], r["floor"]
        print(
            f"| {rate or 'unpaced'}/s | {r['counts'].paid} | {charges:.1f} s "
            f"| {n / charges:.1f} | {floor:.1f} s ({n / floor:.1f}/s) | {floor / charges:.2f}x "
            f"| {renewals:.1f} s | {r['total']:.1f} s | {r['refused']} |"
        )
    live = dict(results)[100]
    ratio = live["floor"] / live["phases"]["charges"]
    bound = max(1000.0, 100_000 * live["floor"] / n)
    per_renewal = live["phases"]["renewals"] / n
    print(
        f"\n100,000 due at the live limit: the budget allows 1,000 s (16.7 min), the Stripe "
        f"calls alone took {bound / 60:.1f} min here; at the measured {ratio:.2f}x the "
        f"charges take {bound / ratio / 60:.1f} min, and the renewals, at "
        f"{per_renewal * 1000:.1f} ms each one after another, {100_000 * per_renewal / 60:.1f} "
        "min more"
    )


if __name__ == "__main__":
    main()
