"""Batched notices, sent once per (customer, reason, period, channel).

Candidates come from the day (the partition): trials ending in three days (the
subscription service's internal due list), dunning attempts made that day
(`billing.dunning`) and, on the first of a month, receipts for the month before
(`billing.invoices`). Contact details come from the notification service's own
projection, `notification.recipients`.

Each notice is claimed in `billing.notification_sends` under its unique key before it
is sent, so a re-run sends nothing new. Email goes to SendGrid in batches of up to 1000
personalizations per call; SMS to Twilio, one call per message, only with opt-in. A
notice whose recipient is not known yet stays pending and goes with a later run. Delivery
is at least once: a crash between the provider's answer and the row update resends that
batch, and each email carries its dedupe key as a custom arg.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from string import Template
from typing import Any

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from assets.notifications.resources import SENDGRID_MAX_PERSONALIZATIONS, Email, Senders
from paywall.logs import get_logger
from paywall.service_client import ServiceClient

log = get_logger(__name__)
TRIAL_NOTICE_DAYS = 3

TEMPLATES: dict[tuple[str, str], tuple[str, str]] = {
    ("trial_ending", "email"): (
        "Your Paywall trial ends on ${trial_end}",
        "Hi ${name},\n\nyour free trial of ${plan} ends on ${trial_end}. From then on we will "
        "charge ${amount} ${currency} per ${interval} to your saved card.\n",
    ),
    ("trial_ending", "sms"): (
        "",
        "Paywall: your ${plan} trial ends on ${trial_end}; then ${amount} ${currency}/${interval}.",
    ),
    ("dunning", "email"): (
        "Your Paywall payment did not go through",
        "Hi ${name},\n\nwe could not collect ${amount} ${currency} for ${plan} (${reason}). "
        "${next_step}\n",
    ),
    ("receipt", "email"): (
        "Your Paywall receipt for ${month}",
        "Hi ${name},\n\nin ${month} we received ${count} payment(s) totalling ${amount} "
        "${currency}. Thank you.\n",
    ),
}


@dataclass(frozen=True)
class Notice:
    customer_id: str
    reason: str
    period: str
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
            for channel in ("email", "sms"):
                yield Notice(sub["customer_id"], "trial_ending", ends.isoformat(), channel, values)
        after = page.get("next_after")
        if not after:
            return


def dunning(engine: Engine, day: date) -> Iterator[Notice]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.invoice_id, d.customer_id, d.failures, d.next_attempt_on, d.status, "
                "d.last_decline_code, i.amount, i.currency, i.plan_id FROM billing.dunning d "
                "JOIN billing.invoices i ON i.id = d.invoice_id WHERE d.last_attempt_on = :d "
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
        yield Notice(r.customer_id, "dunning", f"{r.invoice_id}#{r.failures}", "email", values)


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
        yield Notice(r.customer_id, "receipt", f"{month}:{r.currency}", "email", values)


# -- claim, then send -----------------------------------------------------------------------


def send(engine: Engine, senders: Senders, notices: list[Notice], day: date) -> BatchCounts:
    counts = BatchCounts(candidates=len(notices))
    with engine.begin() as conn:
        for n in notices:
            counts.claimed += conn.execute(
                text(
                    "INSERT INTO billing.notification_sends (customer_id, reason, period, "
                    "channel, batch_date, values) VALUES (:c, :r, :p, :ch, :d, :v) "
                    "ON CONFLICT ON CONSTRAINT notification_once DO NOTHING"
                ).bindparams(bindparam("v", type_=JSONB)),
                {
                    "c": n.customer_id,
                    "r": n.reason,
                    "p": n.period,
                    "ch": n.channel,
                    "d": day,
                    "v": n.values,
                },
            ).rowcount
        pending = conn.execute(
            text(
                "SELECT s.id, s.customer_id, s.reason, s.period, s.channel, s.values, "
                "r.customer_id AS known, r.email, r.phone, r.name, r.sms_opt_in, r.erased "
                "FROM billing.notification_sends s LEFT JOIN notification.recipients r "
                "ON r.customer_id = s.customer_id WHERE s.status = 'pending' "
                "AND s.batch_date <= :d ORDER BY s.id"
            ),
            {"d": day},
        ).all()
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
        subject_t, body_t = TEMPLATES[(row.reason, row.channel)]
        values = {"name": row.name or "there", **row.values}
        subject = Template(subject_t).safe_substitute(values)
        body = Template(body_t).safe_substitute(values)
        key = f"{row.customer_id}:{row.reason}:{row.period}:{row.channel}"
        if row.channel == "email":
            emails.append((row.id, Email(address, subject, body, key)))
        else:
            sms.append((row.id, address, body))
    _mark(engine, skipped, "skipped")
    counts.skipped = len(skipped)
    for start in range(0, len(emails), SENDGRID_MAX_PERSONALIZATIONS):
        chunk = emails[start : start + SENDGRID_MAX_PERSONALIZATIONS]
        ids = [i for i, _ in chunk]
        try:
            message_id = senders.email_batch([e for _, e in chunk])
        except Exception as exc:
            _provider_error(engine, ids, exc, counts)
            continue
        counts.email_api_calls += 1
        counts.emails_sent += len(chunk)
        _mark(engine, ids, "sent", message_id)
    for send_id, to, body in sms:
        try:
            sid = senders.sms(to, body)
        except Exception as exc:
            _provider_error(engine, [send_id], exc, counts)
            continue
        counts.sms_sent += 1
        _mark(engine, [send_id], "sent", sid)
    return counts


def _provider_error(engine: Engine, ids: list[int], exc: Exception, counts: BatchCounts) -> None:
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status < 500 and status != 429:
        counts.failed += len(ids)  # the provider refused the request: a retry cannot help
        _mark(engine, ids, "failed", error=str(exc)[:500])
    else:
        counts.errors += len(ids)  # left pending: the next attempt sends them
        counts.problems.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    log.warning("notification_batch.provider_error", error=str(exc)[:200], notices=len(ids))


def _mark(
    engine: Engine, ids: list[int], status: str, provider_id: str | None = None, error: str = ""
) -> None:
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE billing.notification_sends SET status = :s, provider_message_id = :p, "
                "error = :e, sent_at = CASE WHEN :s = 'sent' THEN now() END "
                "WHERE id = ANY(:ids) AND status = 'pending'"
            ),
            {"s": status, "p": provider_id, "e": error or None, "ids": ids},
        )
