"""One billing day, free of Dagster: due subscriptions → invoices → charges → dunning.

The steps: invoicing.py (due subscriptions → one invoice each, priced with discount and tax
by pricing.py), charges.py (the calls to
the payment service), dunning.py (each outcome booked), actions.py (what it means for the
subscription, told to the subscription service).

"Today" is the billing day passed in (the partition), never the wall clock, so a backfill
or a re-run of any day does exactly what that day's run did. Money is safe under re-runs:

* one invoice per (subscription, period) — a database unique key;
* each charge attempt has its own Idempotency-Key, `billing:<invoice>:<attempt>`, recorded
  before the call, and the attempt number only moves on once its outcome is stored, so a
  re-run after a crash asks the payment service again with the same key and gets the first
  answer instead of a second charge;
* the subscription-service call an outcome requires (renew, mark past due, reactivate,
  expire) is stored with the outcome (`invoices.pending_action`) and retried by every
  later run until the service confirms it; those endpoints are idempotent.

Billing learns which subscriptions end on a day from the subscription service's internal
`GET /v1/due-subscriptions?date=YYYY-MM-DD&after=<id>&limit=<n>` (keyset-paged by id;
internal scope) and never reads or writes its tables. An endpoint rather than a projection
fed by subscription events: the run charges money on the answer, so it asks the system of
record at run time instead of a copy that lags the outbox relay and Kafka (a cancel made a
minute before 02:00 would otherwise be charged); the service also applies its own rules
there (a scheduled downgrade is billed, a trial converts, cancel-at-period-end cancels).
The price is that billing needs the subscription service up while it runs; it retries.

A run bills one shard of the day (paywall/shards.py), or the whole day. Shards of a day run
at once, in their own Dagster runs and pods, each over its own subscriptions only: their due
list, their invoices' charges and dunning retries, their pending subscription calls. The
whole day's run covers every shard, so it finishes whatever a shard left; it waits for no
shard and runs beside none (`exclusive`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, text

from assets.billing.actions import SubscriptionActions
from assets.billing.charges import Charges
from assets.billing.invoicing import DueRow, create_invoices, stage
from assets.billing.outcomes import Counts
from assets.billing.pacing import Pace
from assets.billing.pricing import Pricing
from paywall.logs import get_logger
from paywall.service_client import ServiceClient
from paywall.shards import Shard

log = get_logger(__name__)
DUE_PAGE = 500
RUN_LOCK = "billing.run:"
WHOLE_DAY = Shard()


class BillingRun:
    def __init__(
        self,
        engine: Engine,
        subscriptions: ServiceClient,
        payments: ServiceClient,
        pace: Pace,
        concurrency: int = 8,
        customers: ServiceClient | None = None,
    ) -> None:
        self.engine = engine
        self.subscriptions = subscriptions
        self.pricing = Pricing(customers)
        self.charges = Charges(engine, subscriptions, payments, concurrency, pace)
        self.actions = SubscriptionActions(engine, subscriptions, concurrency)

    # -- the day ---------------------------------------------------------------------------

    def run(self, day: date, shard: Shard = WHOLE_DAY) -> Counts:
        counts = Counts()
        with self.exclusive(day, shard):
            expiring = self._invoice_due(day, shard, counts)
            self.actions.expire_all(expiring, "period_end", counts)
            first = self.charges.first_attempts(day, shard)
            self.charges.charge_all(first, day, counts, retry=False)
            self.charges.charge_all(self.charges.retries(day, shard), day, counts, retry=True)
            self.actions.apply_pending(day, shard, counts)
        log.info("billing.run", day=day.isoformat(), shard=shard.label, **counts.numbers())
        return counts

    @contextmanager
    def exclusive(self, day: date, shard: Shard) -> Iterator[None]:
        """One run per shard of a day at a time, and the whole day's run alone: a shard
        holds the day's lock shared and its own exclusively, the whole day holds the day's
        exclusively. A run that cannot have its locks is refused, not queued."""
        day_key = RUN_LOCK + day.isoformat()
        locks = [("", day_key)] if shard.whole else [("_shared", day_key)]
        if not shard.whole:
            locks.append(("", f"{day_key}:{shard.label}"))
        with self.engine.connect() as conn:
            held: list[tuple[str, str]] = []
            try:
                for mode, key in locks:
                    got: bool = conn.execute(
                        text(f"SELECT pg_try_advisory_lock{mode}(hashtextextended(:k, 0))"),
                        {"k": key},
                    ).scalar_one()
                    conn.commit()
                    if not got:
                        raise RuntimeError(
                            f"a billing run for {day} (shard {shard.label}) cannot start: "
                            "a run of the same shard or of the whole day is running"
                        )
                    held.append((mode, key))
                yield
            finally:
                for mode, key in reversed(held):
                    conn.execute(
                        text(f"SELECT pg_advisory_unlock{mode}(hashtextextended(:k, 0))"),
                        {"k": key},
                    )
                    conn.commit()

    # -- 1. what ends today becomes an invoice (or a cancellation) -----------------------

    def due(self, day: date, shard: Shard = WHOLE_DAY) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            query = (
                f"/v1/due-subscriptions?date={day.isoformat()}&limit={DUE_PAGE}"
                f"&shard={shard.index}&shards={shard.count}"
            )
            page = self.subscriptions.expect(
                {200}, "GET", query + (f"&after={after}" if after else "")
            )
            yield from page["data"]
            after = page.get("next_after")
            if not after:
                return

    def _invoice_due(self, day: date, shard: Shard, counts: Counts) -> list[tuple[str, datetime]]:
        rows: list[DueRow] = []
        expiring: list[tuple[str, datetime]] = []
        for item in self.due(day, shard):
            counts.due += 1
            sub = item["subscription"]
            if item["action"] == "cancel":
                expiring.append((sub["id"], datetime.fromisoformat(sub["current_period_end"])))
                continue
            plan = item["plan"]
            rows.append(
                DueRow(
                    subscription_id=uuid.UUID(sub["id"]),
                    customer_id=sub["customer_id"],
                    tenant_id=sub["tenant_id"],
                    plan_id=plan["id"],
                    kind="trial_conversion" if item["action"] == "convert_trial" else "renewal",
                    amount=plan["amount"],
                    currency=plan["currency"],
                    period_start=datetime.fromisoformat(item["next_period_start"]),
                    period_end=datetime.fromisoformat(item["next_period_end"]),
                )
            )
        addresses = self.pricing.addresses(self.engine, rows)
        with self.engine.begin() as conn:
            stage(conn, [self.pricing.priced(conn, row, addresses) for row in rows])
            created, skipped = create_invoices(conn, day)
        counts.invoiced += created
        counts.skipped_already_invoiced += skipped
        return expiring
