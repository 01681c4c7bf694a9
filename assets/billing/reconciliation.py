"""Reconciliation of one billing day, read from the billing schema and the payment service.

* Invoiced once: every renewal and trial conversion the run was given (`billing.due_seen`,
  written with the invoices) has its invoice for that period, and no subscription billed
  that day has a second live invoice whose period overlaps it. The unique key
  (subscription_id, period_start) already refuses an exact duplicate; an overlap is the
  duplicate it cannot see (a period start shifted by a second, a re-dated run).
* Paid equals charged: per currency, what the day's invoices say was paid equals what the
  payment service says was taken for them (succeeded charges less refunds). The invoices
  are those paid that day or charged that day, so money taken for an invoice left open is
  a mismatch too. Payments are asked of the payment service over HTTP; billing never
  reads another service's tables.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine, text

from paywall.service_client import ServiceClient

TAKEN = ("succeeded", "partially_refunded", "refunded")  # the payment service's statuses
SHOWN = 20  # problems listed in a check's metadata


@dataclass
class Finding:
    passed: bool
    problems: list[str] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)

    def markdown(self) -> str:
        listed = [f"- {p}" for p in self.problems[:SHOWN]]
        if len(self.problems) > SHOWN:
            listed.append(f"- … and {len(self.problems) - SHOWN} more")
        return "\n".join(listed) or "none"


def invoiced_once(engine: Engine, day: date) -> Finding:
    with engine.connect() as conn:
        seen: int = conn.execute(
            text("SELECT count(*) FROM billing.due_seen WHERE billing_date = :d"), {"d": day}
        ).scalar_one()
        missing = conn.execute(
            text(
                "SELECT s.subscription_id, s.period_start FROM billing.due_seen s "
                "WHERE s.billing_date = :d AND NOT EXISTS (SELECT 1 FROM billing.invoices i "
                "WHERE i.subscription_id = s.subscription_id "
                "AND i.period_start = s.period_start) ORDER BY s.subscription_id"
            ),
            {"d": day},
        ).all()
        overlapping = conn.execute(
            text(
                "SELECT a.subscription_id, a.id, b.id AS other FROM billing.invoices a "
                "JOIN billing.invoices b ON b.subscription_id = a.subscription_id "
                "AND b.id <> a.id AND b.kind <> 'proration' AND b.status <> 'void' "
                "AND tstzrange(b.period_start, b.period_end) "
                "&& tstzrange(a.period_start, a.period_end) "
                "WHERE a.billing_date = :d AND a.kind <> 'proration' AND a.status <> 'void' "
                "ORDER BY a.subscription_id, a.id"
            ),
            {"d": day},
        ).all()
    problems = [
        f"subscription {r.subscription_id}: due from {r.period_start:%Y-%m-%d %H:%M:%S}, no invoice"
        for r in missing
    ]
    problems += [
        f"subscription {r.subscription_id}: invoice {r.id} overlaps invoice {r.other}"
        for r in overlapping
    ]
    numbers = {"due_seen": seen, "missing": len(missing), "overlapping": len(overlapping)}
    return Finding(not problems, problems, numbers)


def paid_matches_charges(engine: Engine, payments: ServiceClient, day: date) -> Finding:
    with engine.connect() as conn:
        invoices = conn.execute(
            text(
                "SELECT i.id, i.currency, i.amount_paid, i.payment_id, "
                # Credit notes refunded to the card: the payment service counts them as
                # refunds of the invoice's payment.
                "(SELECT coalesce(sum(c.amount), 0) FROM billing.credit_notes c "
                "WHERE c.invoice_id = i.id AND c.settlement = 'refund' "
                "AND c.status = 'issued') AS refunded, "
                "coalesce(array_agg(a.payment_id) FILTER (WHERE a.payment_id IS NOT NULL), "
                "'{}') AS attempt_payments FROM billing.invoices i "
                "LEFT JOIN billing.attempts a ON a.invoice_id = i.id "
                "WHERE i.paid_on = :d OR EXISTS (SELECT 1 FROM billing.attempts x "
                "WHERE x.invoice_id = i.id AND x.attempted_on = :d) "
                "GROUP BY i.id ORDER BY i.id"
            ),
            {"d": day},
        ).all()
    paid: dict[str, int] = defaultdict(int)
    taken: dict[str, int] = defaultdict(int)
    problems: list[str] = []
    for inv in invoices:
        kept = inv.amount_paid - int(inv.refunded)
        paid[inv.currency] += kept
        net = 0
        for payment_id in _real_payments(inv.payment_id, inv.attempt_payments):
            payment = _payment(payments, payment_id)
            if payment["status"] in TAKEN:
                net += int(payment["amount"]) - int(payment["amount_refunded"])
        taken[inv.currency] += net
        if net != kept:
            problems.append(
                f"invoice {inv.id}: paid {kept} {inv.currency}, charged less refunds {net}"
            )
    numbers: dict[str, int] = {"invoices": len(invoices)}
    for currency in sorted(paid.keys() | taken.keys()):
        numbers[f"paid_{currency}"] = paid[currency]
        numbers[f"charged_less_refunds_{currency}"] = taken[currency]
        if paid[currency] != taken[currency]:
            problems.insert(
                0,
                f"{currency}: invoices paid {paid[currency]}, charged less refunds "
                f"{taken[currency]}",
            )
    return Finding(not problems, problems, numbers)


def _real_payments(invoice_payment: str | None, attempt_payments: list[str]) -> set[str]:
    """The payment service's ids for an invoice; a free invoice's `free:` marker is none."""
    ids = {*attempt_payments, *([invoice_payment] if invoice_payment else [])}
    return {i for i in ids if not i.startswith("free:")}


def _payment(payments: ServiceClient, payment_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = payments.expect({200}, "GET", f"/v1/payments/{payment_id}")
    return answer
