"""A charge attempt's outcome, booked: the invoice paid, or into dunning (open, retried
on day 1, 3 and 7 after the first failure, then uncollectible), with the subscription-service
call the outcome requires stored beside it (`invoices.pending_action`, see actions.py)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, text

from assets.billing.outcomes import Counts, Outcome
from streaming import invoice_events

# Dunning: retries on day 1, 3 and 7 after the first failure; the subscription is past
# due meanwhile and canceled when the last retry fails.
RETRY_DAYS = (1, 3, 7)


def next_retry(first_failed_on: date, failures: int) -> date | None:
    """When to try again after `failures` failed attempts; None when dunning is over."""
    if failures > len(RETRY_DAYS):
        return None
    return first_failed_on + timedelta(days=RETRY_DAYS[failures - 1])


def record(
    conn: Connection,
    invoice: RowMapping,
    attempt: int,
    outcome: Outcome,
    day: date,
    counts: Counts,
) -> None:
    if outcome.kind in ("pending", "error"):
        counts.pending += outcome.kind == "pending"
        counts.errors += outcome.kind == "error"
        if outcome.kind == "error":
            counts.problems.append(f"invoice {invoice['id']}: {outcome.detail}")
        return
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
        _paid(conn, invoice, attempt, outcome, day, counts)
    else:
        _failed(conn, invoice, attempt, outcome, day, counts)


def _paid(
    conn: Any, invoice: RowMapping, attempt: int, outcome: Outcome, day: date, c: Counts
) -> None:
    c.paid += 1
    in_dunning = attempt > 1
    c.recovered += int(in_dunning)
    paid = (
        conn.execute(
            text(
                "UPDATE billing.invoices SET status = 'paid', attempts = :a, payment_id = :p, "
                "decline_code = NULL, paid_on = :d, pending_action = :action, "
                "amount_paid = total - credit_applied, amount_due = 0, updated_at = now() "
                "WHERE id = :i RETURNING *"
            ),
            {
                "a": attempt,
                "p": outcome.payment_id,
                "d": day,
                "action": "reactivate" if in_dunning else "renew",
                "i": invoice["id"],
            },
        )
        .mappings()
        .one()
    )
    invoice_events.emit(conn, paid, "invoice.paid", payment_id=outcome.payment_id)
    if in_dunning:
        conn.execute(
            text(
                "UPDATE billing.dunning SET status = 'recovered', next_attempt_on = NULL, "
                "last_attempt_on = :d, updated_at = now() WHERE invoice_id = :i"
            ),
            {"d": day, "i": invoice["id"]},
        )


def _failed(
    conn: Any, invoice: RowMapping, attempt: int, outcome: Outcome, day: date, c: Counts
) -> None:
    c.failed += 1
    first_failed_on = day if attempt == 1 else _first_failure(conn, invoice["id"])
    retry_on = next_retry(first_failed_on, attempt)
    exhausted = retry_on is None
    failed = (
        conn.execute(
            text(
                "UPDATE billing.invoices SET status = :s, attempts = :a, decline_code = :c, "
                "pending_action = CASE WHEN :exhausted THEN 'expire' WHEN :first "
                "THEN 'mark_past_due' ELSE pending_action END, updated_at = now() WHERE id = :i "
                "RETURNING *"
            ),
            {
                # Open (still owed, dunning retries it) until dunning gives up: uncollectible.
                "s": "uncollectible" if exhausted else "open",
                "a": attempt,
                "c": outcome.decline_code,
                "exhausted": exhausted,
                "first": attempt == 1,
                "i": invoice["id"],
            },
        )
        .mappings()
        .one()
    )
    invoice_events.emit(
        conn,
        failed,
        "invoice.payment_failed",
        payment_id=outcome.payment_id,
        decline_code=outcome.decline_code,
        attempt=attempt,
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


def _first_failure(conn: Any, invoice_id: uuid.UUID) -> date:
    found: date = conn.execute(
        text("SELECT first_failed_on FROM billing.dunning WHERE invoice_id = :i"),
        {"i": invoice_id},
    ).scalar_one()
    return found
