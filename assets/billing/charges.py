"""Charges: the day's first attempts and the dunning retries due, made through the payment
service with an Idempotency-Key per (invoice, attempt) recorded before the call."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from sqlalchemy import Connection, Engine, RowMapping, text

from assets.billing.dunning import record
from assets.billing.outcomes import Counts, Outcome
from assets.billing.paced_payments import Answered, Charge, PacedPayments
from assets.billing.pacing import Pace, Unpaced
from paywall.service_client import ServiceClient, ServiceError
from paywall.shards import Shard
from streaming import invoice_credit, invoice_events

# The most charges one request carries; a batch waits on Stripe once per charge.
MAX_BATCH = 20


def idempotency_key(invoice_id: uuid.UUID | str, attempt: int) -> str:
    return f"billing:{invoice_id}:{attempt}"


class Charges:
    def __init__(
        self,
        engine: Engine,
        subscriptions: ServiceClient,
        payments: ServiceClient,
        concurrency: int,
        pace: Pace,
    ) -> None:
        self.engine = engine
        self.subscriptions = subscriptions
        # Paced by the Stripe budget and backed off while Stripe is busy (paced_payments.py).
        self.payments = PacedPayments(payments, pace)
        self.concurrency = concurrency

    def first_attempts(self, day: date, shard: Shard) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT * FROM billing.invoices WHERE billing_date = :d "
                        "AND status = 'open' AND attempts = 0 AND kind <> 'proration' "
                        f"AND {shard.where('subscription_id')} ORDER BY id"
                    ),
                    {"d": day, **shard.params()},
                ).mappings()
            )

    def retries(self, day: date, shard: Shard) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT i.* FROM billing.dunning d JOIN billing.invoices i "
                        "ON i.id = d.invoice_id WHERE d.status = 'retrying' "
                        "AND d.next_attempt_on <= :d AND i.status = 'open' "
                        f"AND {shard.where('i.subscription_id')} ORDER BY i.id"
                    ),
                    {"d": day, **shard.params()},
                ).mappings()
            )

    def charge_all(
        self, invoices: list[RowMapping], day: date, counts: Counts, *, retry: bool
    ) -> None:
        if retry:
            invoices = [inv for inv in invoices if self._still_wanted(inv, day, counts)]

        def some(group: list[RowMapping]) -> Counts:
            # A batch's attempts are committed together before it is sent, and its outcomes
            # booked together after: one transaction each, not one per charge.
            with self.engine.begin() as conn:
                opened = [self._open(conn, inv, inv["attempts"] + 1, day) for inv in group]
            outcomes = self._ask(opened)
            # Booked by the thread that charged, at once: the bookings of a day's charges
            # run side by side rather than one after another once all are made, and a crash
            # mid-run leaves only the charges in flight for the next run to ask about.
            own = Counts()
            with self.engine.begin() as conn:
                for (invoice, attempt, _), outcome in zip(opened, outcomes, strict=True):
                    mine = Counts(charged=1, retried=int(retry))
                    record(conn, invoice, attempt, outcome, day, mine)
                    own.add(mine)
            return own

        size = batch_size(len(invoices), self.concurrency)
        groups = [invoices[i : i + size] for i in range(0, len(invoices), size)]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for own in pool.map(some, groups):
                counts.add(own)

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
            voided = (
                conn.execute(
                    text(
                        "UPDATE billing.invoices SET status = 'void', pending_action = NULL, "
                        "amount_due = 0, voided_at = now(), updated_at = now() WHERE id = :i "
                        "AND status <> 'void' RETURNING *"
                    ),
                    {"i": invoice["id"]},
                )
                .mappings()
                .first()
            )
            if voided is not None:
                invoice_events.emit(conn, voided, "invoice.voided", reason="subscription_canceled")
            conn.execute(
                text(
                    "UPDATE billing.dunning SET status = 'abandoned', next_attempt_on = NULL, "
                    "updated_at = now() WHERE invoice_id = :i"
                ),
                {"i": invoice["id"]},
            )
        return False

    def _open(
        self, conn: Connection, invoice: RowMapping, attempt: int, day: date
    ) -> tuple[RowMapping, int, str]:
        """The attempt's row, to be committed before any call, and the key it is sent under."""
        key = idempotency_key(invoice["id"], attempt)
        opened = conn.execute(
            text(
                "INSERT INTO billing.attempts (invoice_id, attempt, attempted_on, "
                "idempotency_key) VALUES (:i, :a, :d, :k) ON CONFLICT DO NOTHING "
                "RETURNING attempt"
            ),
            {"i": invoice["id"], "a": attempt, "d": day, "k": key},
        ).first()
        # The customer's credit is taken when an attempt is first opened, so an attempt
        # asked again (a re-run) sends the amount it was first sent with.
        if opened is not None:
            invoice = invoice_credit.apply(conn, invoice)
        else:
            invoice = (
                conn.execute(
                    text("SELECT * FROM billing.invoices WHERE id = :i"), {"i": invoice["id"]}
                )
                .mappings()
                .one()
            )
        # The attempt may have been opened first by the billing service (an operator's
        # "pay now"): its key, whoever wrote it, is the one key this attempt is sent under.
        key = conn.execute(
            text(
                "SELECT idempotency_key FROM billing.attempts "
                "WHERE invoice_id = :i AND attempt = :a"
            ),
            {"i": invoice["id"], "a": attempt},
        ).scalar_one()
        return invoice, attempt, key

    def _ask(self, opened: list[tuple[RowMapping, int, str]]) -> list[Outcome]:
        """Each opened attempt's outcome: one batch to the payment service for those with
        something to pay."""
        outcomes: list[Outcome | None] = [None] * len(opened)
        charges, slots = [], []
        for slot, (invoice, attempt, key) in enumerate(opened):
            if invoice["amount_due"] == 0:
                outcomes[slot] = Outcome("succeeded", payment_id=f"free:{invoice['id']}")
                continue
            body = {
                "customer_id": invoice["customer_id"],
                "amount": invoice["amount_due"],
                "currency": invoice["currency"],
                "description": f"{invoice['plan_id']} from {invoice['period_start']:%Y-%m-%d}",
                "metadata": {
                    "invoice_id": str(invoice["id"]),
                    "subscription_id": str(invoice["subscription_id"]),
                    "attempt": str(attempt),
                },
            }
            charges.append(Charge(body, key))
            slots.append(slot)
        if charges:
            try:
                answers: list[Answered | ServiceError | Unpaced] = list(
                    self.payments.create(charges)
                )
            except Unpaced as exc:
                answers = [exc] * len(charges)
            for slot, answer in zip(slots, answers, strict=True):
                outcomes[slot] = _outcome(answer)
        return [o for o in outcomes if o is not None]


def batch_size(charges: int, concurrency: int) -> int:
    """Charges per request: enough to spare most requests' cost, few enough that every
    thread has a batch (a small day) and one request stays short."""
    return max(1, min(MAX_BATCH, -(-charges // concurrency)))


def _outcome(answer: Answered | ServiceError | Unpaced) -> Outcome:
    if isinstance(answer, ServiceError | Unpaced):
        return Outcome("error", detail=str(answer))
    status, body = answer.status, answer.body
    if status == 201:
        return Outcome("succeeded", payment_id=str(body["id"]))
    if status == 402:
        code = body.get("decline_code") or body.get("failure_code") or "declined"
        return Outcome("failed", body.get("payment_id"), str(code))
    if status in (404, 422):  # no payment account or method: dunning, the customer can fix it
        reason = str(body.get("type", "")).rsplit("/", 1)[-1] or f"http_{status}"
        return Outcome("failed", None, reason, str(body.get("detail")))
    if status in (202, 409):  # still processing / in flight: the next run asks again
        return Outcome("pending", detail=f"payment service answered {status}")
    return Outcome("error", detail=f"payment service answered {status}: {body}")
