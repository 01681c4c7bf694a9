"""A whole billing day, end to end, for N due subscriptions, against the processor's floor.

    .venv/bin/python bench/billing_day.py [--due 10000] [--concurrency 8] [--workers 2]
                                          [--stripe-customers 100] [--shards 1]

The day, phase by phase, each timed (seconds and items per second):

1. the billing run: `BillingRun(...).run(day)`, built as the Dagster asset builds it, in
   this process. Its phases: invoices (the subscription service's due list, pricing, the
   set-based invoice creation: the run's time less the next two), charges (billing →
   payment service → Stripe stand-in, one confirmed PaymentIntent each, from
   `--concurrency` threads) and renewals (each paid invoice told to the subscription
   service). With `--shards N`, the day is billed as the Dagster schedule bills it: N
   shard runs at once, each a process of its own (as each is a run pod), then the day's
   close in this process, which finds their work done;
2. events: the project's outbox relay (streaming/relay.py `drain`) publishes the day's
   billing, payment and subscription events to the Kafka-compatible broker until every
   outbox is empty;
3. notifications: the notification batch's code (assets/notifications/batches.py, what
   the `notification_batch` asset runs) for the billing day (trial-ending reminders and
   dunning notices: none here, every charge succeeds) and for the 1st that follows it,
   whose monthly receipts are the day's N payments (the billing day is a month's last),
   sent to the stack's SendGrid stand-in in provider batches of 1000.

Budget: unpaced (billing_charges.UNPACED, a Stripe budget no local run reaches, and the
stand-in's own rate limit off). The point is our overhead, not Stripe's limit, which
bench/billing_charges.py measures.

The floor, measured in the same run before the day at the same concurrency: the same N
charges made straight against the Stripe stand-in (confirmed PaymentIntents,
billing_charges.processor_floor). Printed: floor time / charges time and floor time /
whole day time. The stand-in slows as it fills (below), so the floor gets a second
stand-in of its own, started empty as the day's is: both meet the same growth, whichever
runs first.

Seeding (timed, not part of the day): signing up N through the API is far too slow, so
the N due subscriptions are written set-based (INSERT … SELECT generate_series) into the
owning schemas, every NOT NULL column as the services write it: `customer.customers`,
`subscription.subscriptions` (monthly plans in turn, every tenth of the basic and pro ones
a trial converting that day; periods ending through the billing day),
`payment.accounts` with a default card, and the notification service's own projection
`notification.recipients`. All in one tenant, created as `paywall tenants create` does.
On the Stripe side `--stripe-customers` real customers with an attached test card are
created in the stand-in over its API (as the payment service does: Gateway), and the
seeded accounts point at them round robin, so every charge is a real call against the
stand-in. For that the throwaway database drops one key: `payment.accounts`'
UNIQUE (stripe_customer_id); nothing on the charge path reads by it.

Memory: the peak RSS (high-water, ru_maxrss) of this process when the billing run ends
(it ran BillingRun; the seeding's driver and the Stripe customers are in it too, both
small) and of the API server's process tree (each process's VmHWM, summed), read after
the day. CPU per charge of each process tree (bench/cpu.py: the API, Postgres, the Stripe
stand-in, this process) over the billing run and over the floor: the stand-in's share
says whether it or the platform limits the charges.

The stand-in slows as it fills: localstripe lists a charge's refunds (twice per charge it
returns) by scanning its whole store, the stand-in pickles its whole store every 0.5 s,
and its idempotency middleware scans every saved key on each POST; so each PaymentIntent
costs time in proportion to those made before it. The floor and the day bear it alike,
but at 100,000 it, not the platform, sets the pace unless the stand-in is fixed first.

Checked after the day, failing loudly otherwise: every seeded subscription has exactly one
invoice for the period, paid, by the one succeeded payment of its customer in the payment
schema; every subscription renewed; every outbox drained; N receipts sent.

It starts its own throwaway local stack and `paywall serve`, stops them at the end, and
prints a Markdown row for bench/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import Engine, text  # noqa: E402

from assets.billing.outcomes import Counts  # noqa: E402
from assets.billing.pacing import Pace  # noqa: E402
from assets.billing.run import BillingRun  # noqa: E402
from assets.notifications import batches  # noqa: E402
from assets.shared.resources import Services  # noqa: E402
from bench.billing_charges import UNPACED, processor_floor, stand_in_limit, timed  # noqa: E402
from bench.cpu import CpuMeter  # noqa: E402
from bench.fresh_stack import fresh_stack  # noqa: E402
from bench.signup import serve, stack_pids  # noqa: E402
from paywall import clients, db  # noqa: E402
from paywall.clients import make_test_card  # noqa: E402
from paywall.settings import Settings, get_settings, reset_settings  # noqa: E402
from paywall.shards import Shard  # noqa: E402
from paywall.stack.component import StackContext  # noqa: E402
from paywall.stack.process import free_port, stop_pid  # noqa: E402
from paywall.stack.stripe import Stripe  # noqa: E402
from streaming import relay  # noqa: E402
from streaming.admin import sync_topics  # noqa: E402
from streaming.notifications.senders import Senders  # noqa: E402
from transactional.auth import admin  # noqa: E402
from transactional.auth.admin_models import TenantCreate  # noqa: E402
from transactional.auth.clients import ensure_default_clients  # noqa: E402
from transactional.payment.models import CardSummary  # noqa: E402
from transactional.payment.stripe_gateway import Gateway  # noqa: E402

TENANT = "bench-day"
# A month's last day: the 1st's notification batch then sends the day's payments' receipts.
BILLING_DAY = date(2030, 1, 31)
PLANS = ("basic-monthly", "pro-monthly", "team-monthly")
SEED = "public.bench_day_seed"  # the seeded ids, kept for the checks after the day


@dataclass(frozen=True)
class StripeCustomer:
    id: str
    payment_method: str
    card: CardSummary


@dataclass
class DayResult:
    """What one billing day took: seconds per phase, and what each phase handled."""

    phases: dict[str, float] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    events: int = 0
    notices: int = 0
    billing_rss_mb: float = 0.0
    billing_cpu: dict[str, float] = field(default_factory=dict)  # CPU s per process tree

    @property
    def whole(self) -> float:
        return self.phases["billing run"] + self.phases["events"] + self.phases["notifications"]


# -- the stack and the tenant -------------------------------------------------------------


@contextmanager
def api_server(root: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], Settings]]:
    """`paywall serve` on a free port; the settings this process then uses to reach it."""
    port = free_port()
    env = {**os.environ, "API_PORT": str(port), "LOG_LEVEL": "WARNING"}
    argv = [str(REPO / ".venv/bin/paywall"), "serve", "--workers", str(workers)]
    proc = serve(argv, env, port, root / "api.log")
    try:
        os.environ["API_PORT"] = str(port)
        os.environ["LOG_LEVEL"] = "WARNING"
        reset_settings()
        yield proc, get_settings()
    finally:
        stop_pid(proc.pid)


@contextmanager
def floor_stand_in(root: Path, settings: Settings) -> Iterator[tuple[Settings, int]]:
    """A second Stripe stand-in, empty, for the floor: settings pointing at it, its pid."""
    stripe = Stripe()
    running = stripe.start(StackContext(root / "floor-stripe"))
    try:
        base = running.env["STRIPE_API_BASE"]
        yield settings.model_copy(update={"stripe_api_base": base}), running.pid
    finally:
        stripe.stop(running)


def create_tenant(engine: Engine, settings: Settings) -> None:
    """The bench's tenant, as `paywall tenants create` makes one, and the service clients."""
    with engine.begin() as conn:
        ensure_default_clients(conn, settings)
        admin.create_tenant(conn, TenantCreate(id=TENANT, name="Billing-day bench"), None)


# -- seeding --------------------------------------------------------------------------------


def stripe_customers(settings: Settings, k: int, concurrency: int) -> list[StripeCustomer]:
    """`k` customers in the Stripe stand-in, each with a test card attached as its default,
    made as the payment service makes them (Gateway)."""
    gateway = Gateway(clients.stripe_client(settings))

    def one(i: int) -> StripeCustomer:
        customer = gateway.create_customer(
            f"bench-day-{i}", f"stripe-{i}@example.com", None, TENANT
        )
        method = make_test_card(settings)
        card = gateway.attach_default_payment_method(customer, method)
        if card is None:
            raise RuntimeError(f"the stand-in gave {method} no card")
        return StripeCustomer(customer, method, card)

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(k)))


SEED_SQL = (
    # The ids and shape of every seeded subscription; periods end through the day.
    f"CREATE TABLE {SEED} AS SELECT n, gen_random_uuid() AS customer_id, "
    "gen_random_uuid() AS subscription_id, (CAST(:plans AS text[]))[1 + n % 3] AS plan_id, "
    "(n % 10 = 0 AND n % 3 <> 2) AS trialing, "  # team-monthly has no trial
    "CAST(:start AS timestamptz) + make_interval(secs => n % 86400) AS period_end "
    "FROM generate_series(0, :n - 1) AS n",
    "INSERT INTO customer.customers (id, tenant_id, email, name, phone) "
    "SELECT customer_id, :tenant, 'day-' || n || '@example.com', 'Bench ' || n, "
    f"'+1555' || lpad(n::text, 7, '0') FROM {SEED}",
    "INSERT INTO subscription.subscriptions (id, customer_id, tenant_id, plan_id, status, "
    "current_period_start, current_period_end, trial_end, price_version) "
    "SELECT s.subscription_id, s.customer_id, :tenant, s.plan_id, "
    "CASE WHEN s.trialing THEN 'trialing' ELSE 'active' END, s.period_end - CASE WHEN "
    "s.trialing THEN make_interval(days => p.trial_days) ELSE interval '1 month' END, "
    "s.period_end, CASE WHEN s.trialing THEN s.period_end END, p.price_version "
    f"FROM {SEED} s JOIN subscription.plans p ON p.id = s.plan_id",
    # K Stripe customers stand for N accounts: the one key that forbids it goes.
    "ALTER TABLE payment.accounts DROP CONSTRAINT accounts_stripe_customer_id_key",
    "INSERT INTO payment.accounts (customer_id, tenant_id, stripe_customer_id, "
    "default_payment_method, card_brand, card_last4, card_exp_month, card_exp_year) "
    "SELECT customer_id::text, :tenant, (CAST(:stripe AS text[]))[1 + n % :k], "
    f"(CAST(:methods AS text[]))[1 + n % :k], :brand, :last4, :exp_month, :exp_year FROM {SEED}",
    "INSERT INTO notification.recipients (customer_id, tenant_id, email, phone, name, as_of) "
    "SELECT customer_id::text, :tenant, 'day-' || n || '@example.com', "
    f"'+1555' || lpad(n::text, 7, '0'), 'Bench ' || n, now() FROM {SEED}",
)


def seed(engine: Engine, n: int, day: date, stripe: list[StripeCustomer]) -> None:
    card = stripe[0].card
    params = {
        "n": n,
        "plans": list(PLANS),
        "start": datetime(day.year, day.month, day.day, tzinfo=UTC),
        "tenant": TENANT,
        "stripe": [c.id for c in stripe],
        "methods": [c.payment_method for c in stripe],
        "k": len(stripe),
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
    }
    with engine.begin() as conn:
        for statement in SEED_SQL:
            conn.execute(text(statement), params)
    # The services' queries plan on real statistics, as they would in production.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("customer.customers", "subscription.subscriptions", "payment.accounts"):
            conn.execute(text(f"ANALYZE {table}"))


# -- the floor ----------------------------------------------------------------------------


def measure_floor(
    root: Path, settings: Settings, n: int, concurrency: int
) -> tuple[float, dict[str, float]]:
    """Seconds for the floor's N PaymentIntents, and the CPU seconds it took per process."""
    with floor_stand_in(root, settings) as (floor_settings, stripe_pid):
        meter = CpuMeter({"stripe": stripe_pid}, own="bench")
        meter.start()
        seconds = processor_floor(floor_settings, n, None, concurrency)
        return seconds, meter.stop()


# -- the day ------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def billing_run(settings: Settings, concurrency: int) -> BillingRun:
    """The billing run, built as the `billing_run` asset builds it, with an unpaced budget."""
    assert settings.redis_url
    services = Services(settings)
    return BillingRun(
        db.engine(settings),
        services.subscription,
        services.payment,
        Pace(settings.redis_url, UNPACED),
        concurrency,
        services.customer,
    )


def timed_run(
    settings: Settings, day: date, shard: Shard, concurrency: int
) -> tuple[Counts, dict[str, float]]:
    """One billing run of `shard`: its counts, and its seconds per phase."""
    run = billing_run(settings, concurrency)
    phases: dict[str, float] = {}
    run.charges.charge_all = timed(phases, "charges", run.charges.charge_all)  # type: ignore[method-assign]
    run.actions.apply_pending = timed(phases, "renewals", run.actions.apply_pending)  # type: ignore[method-assign]
    start = time.perf_counter()
    counts = run.run(day, shard)
    phases["billing run"] = time.perf_counter() - start
    phases["invoices"] = phases["billing run"] - phases["charges"] - phases["renewals"]
    return counts, phases


def shard_process(index: int, count: int, day: date, concurrency: int) -> dict[str, Any]:
    """A shard's run in a process of its own, as a run pod bills it: what it did, its
    phases, its CPU and its peak memory (the parent's meter does not see its threads)."""
    counts, phases = timed_run(get_settings(), day, Shard(index, count), concurrency)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "counts": counts.numbers(),
        "phases": phases,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
    }


def bill(
    settings: Settings, day: date, args: argparse.Namespace, result: DayResult, meter: CpuMeter
) -> None:
    """The day's billing: one whole-day run in this process, or `--shards` shard runs at
    once, each its own process, then the day's close (which finds them done) here."""
    meter.start()
    start = time.perf_counter()
    if args.shards == 1:
        result.counts, result.phases = timed_run(settings, day, Shard(), args.concurrency)
        result.billing_cpu = meter.stop()
        result.billing_rss_mb = peak_rss_mb()
        return
    # spawn: a fork would copy this process's open connections and threads.
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.shards) as pool:
        shards = pool.starmap(
            shard_process, [(i, args.shards, day, args.concurrency) for i in range(args.shards)]
        )
    close, _ = timed_run(settings, day, Shard(), args.concurrency)
    result.phases["billing run"] = time.perf_counter() - start
    result.billing_cpu = meter.stop()
    result.billing_cpu["shards"] = sum(s["cpu"] for s in shards)
    # The slowest shard's phases: the day waits for it.
    slowest = max(shards, key=lambda s: s["phases"]["billing run"])
    for name in ("invoices", "charges", "renewals"):
        result.phases[name] = slowest["phases"][name]
    for name in Counts().numbers():
        setattr(result.counts, name, sum(s["counts"][name] for s in shards) + getattr(close, name))
    result.billing_rss_mb = max(s["rss_mb"] for s in shards)


def relay_all(engine: Engine, settings: Settings) -> int:
    """Every pending outbox row published by the project's relay; how many."""
    producer = relay.make_producer(settings)
    published = relay.drain(engine, producer)
    producer.flush(10)
    return published


def notify(engine: Engine, settings: Settings, services: Services, day: date) -> int:
    """The notification batch of `day` and of the next day, as the asset runs it; notices
    sent (a batch that could not hand a notice to its provider fails the bench)."""
    senders, sent = Senders(settings), 0
    for batch_day in (day, day + timedelta(days=1)):
        notices = [
            *batches.trial_ending(services.subscription, batch_day),
            *batches.dunning(engine, batch_day),
            *batches.receipts(engine, batch_day),
        ]
        counts = batches.send(engine, senders, notices, batch_day)
        if counts.errors or counts.failed:
            raise RuntimeError(f"notification batch {batch_day}: {counts.problems[:5]}")
        sent += counts.emails_sent + counts.sms_sent
    return sent


def phase(phases: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    out = step()
    phases[name] = time.perf_counter() - start
    return out


def billing_day(
    settings: Settings, day: date, args: argparse.Namespace, meter: CpuMeter
) -> DayResult:
    engine = db.engine(settings)
    result = DayResult()
    bill(settings, day, args, result, meter)
    result.events = phase(result.phases, "events", lambda: relay_all(engine, settings))
    services = Services(settings)
    result.notices = phase(
        result.phases, "notifications", lambda: notify(engine, settings, services, day)
    )
    return result


# -- what the day must have done ------------------------------------------------------------

CHECKS = {
    # Grouped joins, not a subquery per row: at 100,000 that would scan the invoices once
    # per subscription (the unique index is partial, kind <> 'proration').
    "seeded subscriptions without exactly one invoice for the period": (
        f"SELECT count(*) FROM {SEED} s LEFT JOIN (SELECT subscription_id, period_start, "
        "count(*) AS n FROM billing.invoices GROUP BY 1, 2) i "
        "ON i.subscription_id = s.subscription_id AND i.period_start = s.period_end "
        "WHERE coalesce(i.n, 0) <> 1"
    ),
    "invoices of the day not paid, or paid by no succeeded payment of their customer": (
        f"SELECT count(*) FROM {SEED} s JOIN billing.invoices i "
        "ON i.subscription_id = s.subscription_id AND i.period_start = s.period_end "
        "LEFT JOIN payment.payments p ON p.id::text = i.payment_id "
        "AND p.customer_id = s.customer_id::text AND p.status = 'succeeded' "
        "WHERE i.status <> 'paid' OR i.pending_action IS NOT NULL OR p.id IS NULL"
    ),
    "customers without exactly one succeeded payment": (
        f"SELECT count(*) FROM {SEED} s LEFT JOIN (SELECT customer_id, count(*) AS n "
        "FROM payment.payments WHERE status = 'succeeded' GROUP BY 1) p "
        "ON p.customer_id = s.customer_id::text WHERE coalesce(p.n, 0) <> 1"
    ),
    "payments not succeeded": "SELECT count(*) FROM payment.payments WHERE status <> 'succeeded'",
    "subscriptions not renewed into the next period": (
        f"SELECT count(*) FROM {SEED} s JOIN subscription.subscriptions x "
        "ON x.id = s.subscription_id WHERE x.status <> 'active' "
        "OR x.current_period_start <> s.period_end"
    ),
}


def verify(engine: Engine, n: int, result: DayResult) -> None:
    """Raise, naming every check that failed, unless the day did all it should have."""
    problems = []
    with engine.connect() as conn:
        for what, query in CHECKS.items():
            found: int = conn.execute(text(query)).scalar_one()
            if found:
                problems.append(f"{found} {what}")
        receipts: int = conn.execute(
            text(
                "SELECT count(*) FROM notification.sends "
                "WHERE template = 'monthly_receipt' AND status = 'sent'"
            )
        ).scalar_one()
    if receipts != n:
        problems.append(f"{receipts} receipts sent, not {n}")
    if lag := {s: k for s, k in relay.measure_lag(engine).items() if k}:
        problems.append(f"outboxes not drained: {lag}")
    counts = result.counts
    if counts.errors or counts.paid != n or counts.renewed != n:
        problems.append(
            f"billing run: paid {counts.paid}, renewed {counts.renewed}, "
            f"errors {counts.errors} {counts.problems[:5]}"
        )
    if problems:
        raise RuntimeError("the billing day is wrong: " + "; ".join(problems))


# -- memory and the report ------------------------------------------------------------------


def tree_peak_rss_mb(pid: int) -> float:
    """Each process's RSS high-water (VmHWM) in the tree under `pid`, summed."""
    root = psutil.Process(pid)
    total_kib = 0
    for proc in (root, *root.children(recursive=True)):
        status = Path(f"/proc/{proc.pid}/status").read_text()
        total_kib += next(
            int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmHWM")
        )
    return total_kib / 1024


def rate(n: int, seconds: float) -> str:
    return f"{seconds:.1f} s ({n / seconds:,.0f}/s)"


def cpu_ms(cpu: dict[str, float], n: int) -> str:
    return ", ".join(f"{name} {seconds * 1000 / n:.1f}" for name, seconds in cpu.items())


def report(
    args: argparse.Namespace,
    r: DayResult,
    floor: tuple[float, dict[str, float]],
    api_mb: float,
    load: str,
) -> None:
    n, p = args.due, r.phases
    floor_s, floor_cpu = floor
    rows = [
        ("invoices", n, p["invoices"]),
        ("charges", n, p["charges"]),
        ("renewals", n, p["renewals"]),
        (f"events relayed ({r.events})", r.events, p["events"]),
        (f"notifications ({r.notices} sent)", r.notices, p["notifications"]),
        ("whole day", n, r.whole),
        ("floor: Stripe calls alone", n, floor_s),
    ]
    print(
        f"\n{n:,} due subscriptions, concurrency {args.concurrency}, {args.workers} API "
        f"workers, {args.shards} shard run(s)"
    )
    if args.shards > 1:
        print("  (invoices, charges, renewals: the slowest shard's; billing run: all, then close)")
    for name, count, seconds in rows:
        print(f"  {name:34} {seconds:8.1f} s  {count / seconds:10,.0f}/s")
    print(f"  floor / charges    {floor_s / p['charges']:.2f}x")
    print(f"  floor / whole day  {floor_s / r.whole:.2f}x")
    # The stand-in's CPU per call, floor against run, says whether it or we are the limit.
    print(f"  CPU-ms per charge, billing run: {cpu_ms(r.billing_cpu, n)}")
    print(f"  CPU-ms per charge, floor:       {cpu_ms(floor_cpu, n)}")
    print(f"  peak RSS: billing side {r.billing_rss_mb:.0f} MB, API tree {api_mb:.0f} MB")
    print(
        "\n| run | date | machine | due, concurrency, workers, shards | invoices | charges "
        "| renewals | events | notifications | whole day | floor | floor/charges | floor/day "
        "| peak RSS MB: billing, API |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| ? | {datetime.now(UTC):%Y-%m-%d} | {os.cpu_count()} cores, {load} "
        f"| {n:,}, {args.concurrency}, {args.workers}, {args.shards} "
        f"| {rate(n, p['invoices'])} "
        f"| {rate(n, p['charges'])} | {rate(n, p['renewals'])} | {rate(r.events, p['events'])} "
        f"| {rate(r.notices, p['notifications'])} | {rate(n, r.whole)} | {rate(n, floor_s)} "
        f"| {floor_s / p['charges']:.2f}x | {floor_s / r.whole:.2f}x "
        f"| {r.billing_rss_mb:.0f}, {api_mb:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--due", type=int, default=10_000, help="due subscriptions")
    parser.add_argument("--concurrency", type=int, default=8, help="billing's and the floor's")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="API processes")
    parser.add_argument("--stripe-customers", type=int, default=100)
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="bill the day as this many shard runs at once, each its own process (as "
        "BILLING_SHARDS run pods do), then the day's close; 1: one whole-day run",
    )
    args = parser.parse_args()
    n, day = args.due, BILLING_DAY
    load_before = os.getloadavg()[0]

    with fresh_stack("paywall-bench-day-") as (root, settings):
        try:
            db.upgrade(settings)
            sync_topics(settings)
            with api_server(root, args.workers) as (api, settings):
                engine = db.engine(settings)
                create_tenant(engine, settings)
                stand_in_limit(settings, None)  # the stand-in's own limit off: unpaced
                stripe = stripe_customers(settings, args.stripe_customers, args.concurrency)
                start = time.perf_counter()
                seed(engine, n, day, stripe)
                print(f"seeded {n:,} due subscriptions in {time.perf_counter() - start:.1f} s")
                relay_all(engine, settings)  # what setting up wrote is not the day's
                floor = measure_floor(root, settings, n, args.concurrency)
                print(f"floor: {n:,} PaymentIntents in {floor[0]:.1f} s", flush=True)
                meter = CpuMeter({"API": api.pid, **stack_pids(root)}, own="bench")
                result = billing_day(settings, day, args, meter)
                api_mb = tree_peak_rss_mb(api.pid)
                verify(engine, n, result)
                print(
                    f"checked: {n:,} invoices, one per subscription and period, each paid by "
                    "its customer's one succeeded payment; every subscription renewed; "
                    f"every outbox drained; {n:,} receipts sent"
                )
        except RuntimeError:
            for log in root.glob("*.log"):
                print(f"--- {log.name}", log.read_text()[-3000:], sep="\n")
            raise
    load = f"load average {load_before:.1f} to {os.getloadavg()[0]:.1f}"
    report(args, result, floor, api_mb, load)


if __name__ == "__main__":
    main()
