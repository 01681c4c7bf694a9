"""One billing day, free of Dagster: due subscriptions → invoices → charges → dunning.

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
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, RowMapping, text

from assets.billing.invoicing import DueRow, create_invoices, stage
from paywall.logs import get_logger
from paywall.service_client import ServiceClient, ServiceError

log = get_logger(__name__)

# Dunning: retries on day 1, 3 and 7 after the first failure; the subscription is past
# due meanwhile and canceled when the last retry fails.
RETRY_DAYS = (1, 3, 7)
MAX_ATTEMPTS = 1 + len(RETRY_DAYS)
DUE_PAGE = 500
RUN_LOCK = "billing.run:"


def next_retry(first_failed_on: date, failures: int) -> date | None:
    """When to try again after `failures` failed attempts; None when dunning is over."""
    if failures > len(RETRY_DAYS):
        return None
    return first_failed_on + timedelta(days=RETRY_DAYS[failures - 1])


def idempotency_key(invoice_id: uuid.UUID | str, attempt: int) -> str:
    return f"billing:{invoice_id}:{attempt}"


@dataclass
class Counts:
    due: int = 0
    invoiced: int = 0
    skipped_already_invoiced: int = 0
    charged: int = 0
    paid: int = 0
    failed: int = 0
    retried: int = 0
    recovered: int = 0
    renewed: int = 0
    past_due: int = 0
    canceled: int = 0
    pending: int = 0
    conflicts: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)

    def numbers(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)}


@dataclass(frozen=True)
class Outcome:
    kind: str  # succeeded | failed | pending | error
    payment_id: str | None = None
    decline_code: str | None = None
    detail: str | None = None


class BillingRun:
    def __init__(
        self,
        engine: Engine,
        subscriptions: ServiceClient,
        payments: ServiceClient,
        concurrency: int = 8,
    ) -> None:
        self.engine = engine
        self.subscriptions = subscriptions
        self.payments = payments
        self.concurrency = concurrency

    # -- the day ---------------------------------------------------------------------------

    def run(self, day: date) -> Counts:
        counts = Counts()
        with self._exclusive(day):
            expiring = self._invoice_due(day, counts)
            for sub_id, at in expiring:
                self._call_expire(sub_id, at, "period_end", counts)
            self._charge_all(self._first_attempts(day), day, counts, retry=False)
            self._charge_all(self._retries(day), day, counts, retry=True)
            self._apply_pending_actions(day, counts)
        log.info("billing.run", day=day.isoformat(), **counts.numbers())
        return counts

    @contextmanager
    def _exclusive(self, day: date) -> Iterator[None]:
        """One run per billing day at a time (a second is refused, not queued)."""
        with self.engine.connect() as conn:
            got: bool = conn.execute(
                text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"),
                {"k": RUN_LOCK + day.isoformat()},
            ).scalar_one()
            conn.commit()
            if not got:
                raise RuntimeError(f"a billing run for {day} is already running")
            try:
                yield
            finally:
                conn.execute(
                    text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"),
                    {"k": RUN_LOCK + day.isoformat()},
                )
                conn.commit()

    # -- 1. what ends today becomes an invoice (or a cancellation) -----------------------

    def due(self, day: date) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            query = f"/v1/due-subscriptions?date={day.isoformat()}&limit={DUE_PAGE}"
            page = self.subscriptions.expect(
                {200}, "GET", query + (f"&after={after}" if after else "")
            )
            yield from page["data"]
            after = page.get("next_after")
            if not after:
                return

    def _invoice_due(self, day: date, counts: Counts) -> list[tuple[str, datetime]]:
        rows: list[DueRow] = []
        expiring: list[tuple[str, datetime]] = []
        for item in self.due(day):
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
                    plan_id=plan["id"],
                    kind="trial_conversion" if item["action"] == "convert_trial" else "renewal",
                    amount=plan["amount"],
                    currency=plan["currency"],
                    period_start=datetime.fromisoformat(item["next_period_start"]),
                    period_end=datetime.fromisoformat(item["next_period_end"]),
                )
            )
        with self.engine.begin() as conn:
            stage(conn, rows)
            created, skipped = create_invoices(conn, day)
        counts.invoiced += created
        counts.skipped_already_invoiced += skipped
        return expiring

    # -- 2./3. charges: first attempts of today's invoices, then dunning retries due ------

    def _first_attempts(self, day: date) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT * FROM billing.invoices WHERE billing_date = :d "
                        "AND status = 'open' ORDER BY id"
                    ),
                    {"d": day},
                ).mappings()
            )

    def _retries(self, day: date) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT i.* FROM billing.dunning d JOIN billing.invoices i "
                        "ON i.id = d.invoice_id WHERE d.status = 'retrying' "
                        "AND d.next_attempt_on <= :d AND i.status = 'past_due' ORDER BY i.id"
                    ),
                    {"d": day},
                ).mappings()
            )

    def _charge_all(
        self, invoices: list[RowMapping], day: date, counts: Counts, *, retry: bool
    ) -> None:
        if retry:
            invoices = [inv for inv in invoices if self._still_wanted(inv, day, counts)]

        def one(invoice: RowMapping) -> tuple[RowMapping, int, Outcome]:
            attempt = invoice["attempts"] + 1
            return invoice, attempt, self._charge(invoice, attempt, day)

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = list(pool.map(one, invoices))
        for invoice, attempt, outcome in results:
            counts.charged += 1
            counts.retried += int(retry)
            self._record(invoice, attempt, outcome, day, counts)

    def _still_wanted(self, invoice: RowMapping, day: date, counts: Counts) -> bool:
        """A subscription canceled (by its customer) during dunning is not charged again."""
        status, sub = self.subscriptions.call(
            "GET", f"/v1/subscriptions/{invoice['subscription_id']}"
        )
        if status == 200 and sub.get("status") != "canceled":
            return True
        if status not in (200, 404):
            counts.errors += 1
            counts.problems.append(f"subscription {invoice['subscription_id']}: {status}")
            return False
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE billing.invoices SET status = 'void', pending_action = NULL, "
                    "updated_at = now() WHERE id = :i"
                ),
                {"i": invoice["id"]},
            )
            conn.execute(
                text(
                    "UPDATE billing.dunning SET status = 'abandoned', next_attempt_on = NULL, "
                    "updated_at = now() WHERE invoice_id = :i"
                ),
                {"i": invoice["id"]},
            )
        return False

    def _charge(self, invoice: RowMapping, attempt: int, day: date) -> Outcome:
        key = idempotency_key(invoice["id"], attempt)
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO billing.attempts (invoice_id, attempt, attempted_on, "
                    "idempotency_key) VALUES (:i, :a, :d, :k) ON CONFLICT DO NOTHING"
                ),
                {"i": invoice["id"], "a": attempt, "d": day, "k": key},
            )
        if invoice["amount"] == 0:
            return Outcome("succeeded", payment_id=f"free:{invoice['id']}")
        body = {
            "customer_id": invoice["customer_id"],
            "amount": invoice["amount"],
            "currency": invoice["currency"],
            "description": f"{invoice['plan_id']} from {invoice['period_start']:%Y-%m-%d}",
            "metadata": {
                "invoice_id": str(invoice["id"]),
                "subscription_id": str(invoice["subscription_id"]),
                "attempt": str(attempt),
            },
        }
        try:
            status, answer = self.payments.call(
                "POST", "/v1/payments", json=body, idempotency_key=key
            )
        except ServiceError as exc:
            return Outcome("error", detail=str(exc))
        if status == 201:
            return Outcome("succeeded", payment_id=str(answer["id"]))
        if status == 402:
            code = answer.get("decline_code") or answer.get("failure_code") or "declined"
            return Outcome("failed", answer.get("payment_id"), str(code))
        if status in (404, 422):  # no payment account or method: dunning, the customer can fix it
            reason = str(answer.get("type", "")).rsplit("/", 1)[-1] or f"http_{status}"
            return Outcome("failed", None, reason, str(answer.get("detail")))
        if status in (202, 409):  # still processing / in flight: the next run asks again
            return Outcome("pending", detail=f"payment service answered {status}")
        return Outcome("error", detail=f"payment service answered {status}: {answer}")

    def _record(
        self, invoice: RowMapping, attempt: int, outcome: Outcome, day: date, counts: Counts
    ) -> None:
        if outcome.kind in ("pending", "error"):
            counts.pending += outcome.kind == "pending"
            counts.errors += outcome.kind == "error"
            if outcome.kind == "error":
                counts.problems.append(f"invoice {invoice['id']}: {outcome.detail}")
            return
        with self.engine.begin() as conn:
            current: int = conn.execute(
                text("SELECT attempts FROM billing.invoices WHERE id = :i FOR UPDATE"),
                {"i": invoice["id"]},
            ).scalar_one()
            if current >= attempt:
                return  # a concurrent run recorded this attempt already
            conn.execute(
                text(
                    "UPDATE billing.attempts SET status = :s, payment_id = :p, decline_code = :c, "
                    "finished_at = now() WHERE invoice_id = :i AND attempt = :a"
                ),
                {
                    "s": outcome.kind,
                    "p": outcome.payment_id,
                    "c": outcome.decline_code,
                    "i": invoice["id"],
                    "a": attempt,
                },
            )
            if outcome.kind == "succeeded":
                self._paid(conn, invoice, attempt, outcome, day, counts)
            else:
                self._failed(conn, invoice, attempt, outcome, day, counts)

    def _paid(
        self, conn: Any, invoice: RowMapping, attempt: int, outcome: Outcome, day: date, c: Counts
    ) -> None:
        c.paid += 1
        in_dunning = attempt > 1
        c.recovered += int(in_dunning)
        conn.execute(
            text(
                "UPDATE billing.invoices SET status = 'paid', attempts = :a, payment_id = :p, "
                "decline_code = NULL, paid_on = :d, pending_action = :action, updated_at = now() "
                "WHERE id = :i"
            ),
            {
                "a": attempt,
                "p": outcome.payment_id,
                "d": day,
                "action": "reactivate" if in_dunning else "renew",
                "i": invoice["id"],
            },
        )
        if in_dunning:
            conn.execute(
                text(
                    "UPDATE billing.dunning SET status = 'recovered', next_attempt_on = NULL, "
                    "last_attempt_on = :d, updated_at = now() WHERE invoice_id = :i"
                ),
                {"d": day, "i": invoice["id"]},
            )

    def _failed(
        self, conn: Any, invoice: RowMapping, attempt: int, outcome: Outcome, day: date, c: Counts
    ) -> None:
        c.failed += 1
        first_failed_on = day if attempt == 1 else self._first_failure(conn, invoice["id"])
        retry_on = next_retry(first_failed_on, attempt)
        exhausted = retry_on is None
        conn.execute(
            text(
                "UPDATE billing.invoices SET status = :s, attempts = :a, decline_code = :c, "
                "pending_action = CASE WHEN :exhausted THEN 'expire' WHEN :first "
                "THEN 'mark_past_due' ELSE pending_action END, updated_at = now() WHERE id = :i"
            ),
            {
                "s": "uncollectible" if exhausted else "past_due",
                "a": attempt,
                "c": outcome.decline_code,
                "exhausted": exhausted,
                "first": attempt == 1,
                "i": invoice["id"],
            },
        )
        conn.execute(
            text(
                "INSERT INTO billing.dunning AS d (invoice_id, subscription_id, customer_id, "
                "first_failed_on, last_attempt_on, failures, next_attempt_on, status, "
                "last_decline_code) VALUES (:i, :s, :c, :first, :d, :n, :next, :st, :code) "
                "ON CONFLICT (invoice_id) DO UPDATE SET "
                "last_attempt_on = excluded.last_attempt_on, "
                "failures = excluded.failures, next_attempt_on = excluded.next_attempt_on, "
                "status = excluded.status, last_decline_code = excluded.last_decline_code, "
                "updated_at = now()"
            ),
            {
                "i": invoice["id"],
                "s": invoice["subscription_id"],
                "c": invoice["customer_id"],
                "first": first_failed_on,
                "d": day,
                "n": attempt,
                "next": retry_on,
                "st": "exhausted" if exhausted else "retrying",
                "code": outcome.decline_code,
            },
        )

    @staticmethod
    def _first_failure(conn: Any, invoice_id: uuid.UUID) -> date:
        found: date = conn.execute(
            text("SELECT first_failed_on FROM billing.dunning WHERE invoice_id = :i"),
            {"i": invoice_id},
        ).scalar_one()
        return found

    # -- 4. tell the subscription service --------------------------------------------------

    def _apply_pending_actions(self, day: date, counts: Counts) -> None:
        with self.engine.connect() as conn:
            owed = list(
                conn.execute(
                    text(
                        "SELECT * FROM billing.invoices WHERE pending_action IS NOT NULL "
                        "AND billing_date <= :d ORDER BY billing_date, id"
                    ),
                    {"d": day},
                ).mappings()
            )
        for invoice in owed:
            action = invoice["pending_action"]
            sub_id = invoice["subscription_id"]
            if action in ("renew", "reactivate"):
                body = {
                    "invoice_id": str(invoice["id"]),
                    "payment_id": invoice["payment_id"],
                    "plan_id": invoice["plan_id"],
                    "period_start": invoice["period_start"].isoformat(),
                    "period_end": invoice["period_end"].isoformat(),
                }
                done = self._call(f"/v1/subscriptions/{sub_id}/{action}", body, counts)
                counts.renewed += int(done == 200)
            elif action == "mark_past_due":
                body = {"invoice_id": str(invoice["id"]), "decline_code": invoice["decline_code"]}
                done = self._call(f"/v1/subscriptions/{sub_id}/mark-past-due", body, counts)
                counts.past_due += int(done == 200)
            else:
                at = datetime.combine(day, time.min, UTC)
                done = self._call_expire(str(sub_id), at, "dunning_exhausted", counts)
            if done in (200, 409):  # 409: the subscription moved on (its customer acted)
                with self.engine.begin() as conn:
                    conn.execute(
                        text(
                            "UPDATE billing.invoices SET pending_action = NULL, updated_at = now() "
                            "WHERE id = :i AND pending_action = :a"
                        ),
                        {"i": invoice["id"], "a": action},
                    )

    def _call_expire(self, sub_id: str, at: datetime, reason: str, counts: Counts) -> int | None:
        body = {"at": at.isoformat(), "reason": reason}
        done = self._call(f"/v1/subscriptions/{sub_id}/expire", body, counts)
        counts.canceled += int(done == 200)
        return done

    def _call(self, path: str, body: dict[str, Any], counts: Counts) -> int | None:
        try:
            status, answer = self.subscriptions.call("POST", path, json=body)
        except ServiceError as exc:
            status, answer = exc.status, exc.body
        if status == 409:
            counts.conflicts += 1
            counts.problems.append(f"{path}: {answer.get('detail')}")
        elif status != 200:
            counts.errors += 1
            counts.problems.append(f"{path}: {status} {answer.get('detail')}")
            return None
        return status
