"""What a billing day amounted to, per currency, for the partition's metadata: invoiced,
collected, failed, credited and outstanding past due, and the invoices that failed that day.

Credited is what credit notes issued that UTC day gave back (refunded or kept as customer
credit), whichever invoice they were on. Outstanding past due is as of the
materialization: invoices billed on or before the day, still open after a failed attempt.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from dagster import MetadataValue
from sqlalchemy import Connection, Engine, text

from assets.shared import markdown_table

MEASURES = ("invoiced", "collected", "failed", "credited", "outstanding_past_due")
FAILED_SHOWN = 50

_AMOUNTS = {
    "invoiced": "SELECT currency, sum(total) FROM billing.invoices "
    "WHERE billing_date = :d AND status <> 'void' GROUP BY currency",
    "collected": "SELECT currency, sum(amount_paid) FROM billing.invoices "
    "WHERE paid_on = :d GROUP BY currency",
    "failed": "SELECT i.currency, sum(i.total) FROM billing.attempts a "
    "JOIN billing.invoices i ON i.id = a.invoice_id "
    "WHERE a.attempted_on = :d AND a.status = 'failed' GROUP BY i.currency",
    "credited": "SELECT currency, sum(amount) FROM billing.credit_notes "
    "WHERE status = 'issued' AND (issued_at AT TIME ZONE 'UTC')::date = :d GROUP BY currency",
    "outstanding_past_due": "SELECT currency, sum(amount_due) FROM billing.invoices "
    "WHERE billing_date <= :d AND status = 'open' AND attempts > 0 GROUP BY currency",
}


def major(minor: int) -> str:
    """Minor units as major, two decimals (every currency the plans use has cents)."""
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


def amounts(conn: Connection, day: date) -> dict[str, dict[str, int]]:
    """{currency: {measure: minor units}}, every measure present for every currency."""
    found: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MEASURES, 0))
    for measure, query in _AMOUNTS.items():
        for row in conn.execute(text(query), {"d": day}).all():
            found[str(row[0])][measure] = int(row[1] or 0)
    return dict(sorted(found.items()))


def failed_invoices(conn: Connection, day: date) -> list[list[Any]]:
    rows = conn.execute(
        text(
            "SELECT i.customer_id, i.id, i.total, i.currency, a.attempt, a.decline_code, "
            "d.next_attempt_on, d.status AS dunning FROM billing.attempts a "
            "JOIN billing.invoices i ON i.id = a.invoice_id "
            "LEFT JOIN billing.dunning d ON d.invoice_id = i.id "
            "WHERE a.attempted_on = :d AND a.status = 'failed' "
            "ORDER BY i.currency, i.total DESC, i.id"
        ),
        {"d": day},
    ).all()
    return [
        [
            r.customer_id,
            r.id,
            f"{major(r.total)} {r.currency.upper()}",
            r.attempt,
            r.decline_code,
            r.next_attempt_on.isoformat()
            if r.next_attempt_on
            else "none (uncollectible)"
            if r.dunning == "exhausted"
            else None,
        ]
        for r in rows
    ]


def metadata(engine: Engine, day: date) -> dict[str, Any]:
    with engine.connect() as conn:
        by_currency = amounts(conn, day)
        failed = failed_invoices(conn, day)
    out: dict[str, Any] = {}
    for currency, measures in by_currency.items():
        for measure, minor in measures.items():
            out[f"{measure}_{currency}"] = MetadataValue.float(int(minor) / 100)
    table: list[list[object]] = [
        [c.upper(), *(major(m[k]) for k in MEASURES)] for c, m in by_currency.items()
    ]
    out["amounts"] = MetadataValue.md(markdown_table(["currency", *MEASURES], table))
    shown = failed[:FAILED_SHOWN]
    text_ = markdown_table(
        ["customer", "invoice", "amount", "attempt", "decline", "next retry"], shown
    )
    if len(failed) > FAILED_SHOWN:
        text_ += f"\n\n… and {len(failed) - FAILED_SHOWN} more"
    out["failed_invoices"] = MetadataValue.md(text_ if failed else "none")
    out["failed_invoice_count"] = MetadataValue.int(len(failed))
    return out
