"""Batched notices, sent once per notice, whichever path sends it.

Candidates come from the day (the partition): trials ending in three days (the
subscription service's internal due list), dunning attempts made that day
(`billing.dunning`) and, on the first of a month, receipts for the month before
(`billing.invoices`). Contact details come from the notification service's own
projection, `notification.recipients`.

Each notice is claimed in the notification toolkit's ledger (`notification.sends`, the
table the real-time consumer records in too) under its dedupe key before it is sent, so a
re-run sends nothing new. A failed charge's notice is keyed by its payment, as the
consumer's payment-failed notice is: whichever path is first tells the customer, the
other sends nothing. The last attempt's notice (the subscription is canceled) has its own
key. Email goes to SendGrid in batches of up to 1000 personalizations per call; SMS to
Twilio, one call per message, only with opt-in. A notice whose recipient is not known yet
stays pending and goes with a later run. Delivery is at least once: a crash between the
provider's answer and the row update resends that batch, and each email carries its
dedupe key as a custom arg.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, text

from paywall.logs import get_logger
from paywall.service_client import ServiceClient
from streaming.notifications import ledger
from streaming.notifications.senders import (
    SENDGRID_MAX_PERSONALIZATIONS,
    Email,
    ProviderError,
    Senders,
)
from streaming.notifications.templates import render, with_links

log = get_logger(__name__)
TRIAL_NOTICE_DAYS = 3


@dataclass(frozen=True)
class Notice:
    key: str
    customer_id: str
    template: str
    channel: str
    values: dict[str, Any]


@dataclass
class BatchCounts:
    candidates: int = 0
    claimed: int = 0
    emails_sent: int = 0
    sms_sent: int = 0
    email_api_calls: int = 0
    skipped: int = 0
    waiting: int = 0
    failed: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)

    def numbers(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


def _money(minor: int) -> str:
    return f"{minor / 100:.2f}"


# -- who gets what today ------------------------------------------------------------------


def trial_ending(subscriptions: ServiceClient, day: date) -> Iterator[Notice]:
    ends = day + timedelta(days=TRIAL_NOTICE_DAYS)
    after: str | None = None
    while True:
        query = f"/v1/due-subscriptions?date={ends.isoformat()}&limit=500"
        page = subscriptions.expect({200}, "GET", query + (f"&after={after}" if after else ""))
        for item in page["data"]:
            if item["action"] != "convert_trial":
                continue
            sub, plan = item["subscription"], item["plan"]
            values = {
                "plan": plan["name"],
                "amount": _money(plan["amount"]),
                "currency": plan["currency"].upper(),
                "interval": plan["interval"],
                "trial_end": ends.isoformat(),
            }
            customer_id = sub["customer_id"]
            for channel in ("email", "sms"):
                key = ledger.notice_key(customer_id, "trial_ending", ends.isoformat(), channel)
                yield Notice(key, customer_id, "trial_ending", channel, values)
        after = page.get("next_after")
        if not after:
            return


def dunning(engine: Engine, day: date) -> Iterator[Notice]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.invoice_id, d.customer_id, d.failures, d.next_attempt_on, d.status, "
                "d.last_decline_code, i.amount, i.currency, i.plan_id, a.payment_id "
                "FROM billing.dunning d JOIN billing.invoices i ON i.id = d.invoice_id "
                "LEFT JOIN billing.attempts a ON a.invoice_id = d.invoice_id "
                "AND a.attempt = d.failures WHERE d.last_attempt_on = :d "
                "AND d.status IN ('retrying', 'exhausted')"
            ),
            {"d": day},
        ).all()
    for r in rows:
        next_step = (
            f"We will try again on {r.next_attempt_on.isoformat()}; please check your card."
            if r.status == "retrying"
            else "This was our last attempt, and your subscription has been canceled."
        )
        values = {
            "plan": r.plan_id,
            "amount": _money(r.amount),
            "currency": r.currency.upper(),
            "reason": r.last_decline_code or "declined",
            "next_step": next_step,
        }
        if r.status == "retrying" and r.payment_id:
            # The same notice as the consumer's for this payment.failed event.
            key = ledger.notice_key(r.customer_id, "payment_failed", r.payment_id, "email")
        else:
            period = f"{r.invoice_id}#{r.failures}"
            key = ledger.notice_key(r.customer_id, "dunning", period, "email")
        yield Notice(key, r.customer_id, "dunning", "email", values)


def receipts(engine: Engine, day: date) -> Iterator[Notice]:
    """On the first of a month: one receipt per customer and currency for the month before."""
    if day.day != 1:
        return
    start = (day - timedelta(days=1)).replace(day=1)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT customer_id, currency, count(*) AS n, sum(amount) AS total "
                "FROM billing.invoices WHERE status = 'paid' AND paid_on >= :s AND paid_on < :e "
                "GROUP BY customer_id, currency ORDER BY customer_id, currency"
            ),
            {"s": start, "e": day},
        ).all()
    month = f"{start:%Y-%m}"
    for r in rows:
        values = {
            "month": month,
            "count": r.n,
            "amount": _money(r.total),
            "currency": r.currency.upper(),
        }
        key = ledger.notice_key(r.customer_id, "receipt", f"{month}:{r.currency}", "email")
        yield Notice(key, r.customer_id, "monthly_receipt", "email", values)


# -- claim, then send -----------------------------------------------------------------------


def send(engine: Engine, senders: Senders, notices: list[Notice], day: date) -> BatchCounts:
    counts = BatchCounts(candidates=len(notices))
    with engine.begin() as conn:
        for n in notices:
            counts.claimed += ledger.claim(
                conn, n.key, n.customer_id, n.channel, n.template, day, n.values
            )
        pending = ledger.due(conn, day)
    emails: list[tuple[int, Email]] = []
    sms: list[tuple[int, str, str]] = []
    skipped: list[int] = []
    for row in pending:
        if row.known is None:
            counts.waiting += 1  # the customer's own event has not reached us yet
            continue
        address = row.email if row.channel == "email" else row.phone
        if row.erased or not address or (row.channel == "sms" and not row.sms_opt_in):
            skipped.append(row.id)
            continue
        values = with_links(row.template, row.customer_id, row.tenant_id, row.values)
        message = render(row.template, row.channel, {"name": row.name or "there", **values})
        if row.channel == "email":
            emails.append((row.id, Email(address, message.subject, message.body, row.dedupe_key)))
        else:
            sms.append((row.id, address, message.body))
    ledger.mark(engine, skipped, "skipped")
    counts.skipped = len(skipped)
    for start in range(0, len(emails), SENDGRID_MAX_PERSONALIZATIONS):
        chunk = emails[start : start + SENDGRID_MAX_PERSONALIZATIONS]
        ids = [i for i, _ in chunk]
        try:
            message_id = senders.email([e for _, e in chunk])
        except ProviderError as exc:
            _provider_error(engine, ids, exc, counts)
            continue
        counts.email_api_calls += 1
        counts.emails_sent += len(chunk)
        ledger.mark(engine, ids, "sent", message_id)
    for send_id, to, body in sms:
        try:
            sid = senders.sms(to, body)
        except ProviderError as exc:
            _provider_error(engine, [send_id], exc, counts)
            continue
        counts.sms_sent += 1
        ledger.mark(engine, [send_id], "sent", sid)
    return counts


def _provider_error(
    engine: Engine, ids: list[int], exc: ProviderError, counts: BatchCounts
) -> None:
    if exc.retryable:
        counts.errors += len(ids)  # left pending: the next attempt sends them
        counts.problems.append(str(exc)[:200])
    else:
        counts.failed += len(ids)  # the provider refused the request: a retry cannot help
        ledger.mark(engine, ids, "failed", error=str(exc)[:500])
    log.warning("notification_batch.provider_error", error=str(exc)[:200], notices=len(ids))
