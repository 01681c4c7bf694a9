"""The demo's billing extras: the demo tenant's coupon and tax rates (made over HTTP before
the first signup), a credit note on a paid invoice, the money per currency in the billing
schema beside the same figures in the marts, and the first customer's invoice as a PNG.

The money figures, per currency, in minor units on both sides (every invoice: signups'
first periods, renewals, trial conversions and upgrades' prorations):
billed       sum of the invoices' totals (void invoices were never billed)
collected    sum of what the invoices were paid
credited     sum of the issued credit notes
outstanding  sum of what is still due on open and past-due invoices
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from paywall.errors import PaywallError

COUPON = {
    "code": "SPRING25",
    "name": "25 % off for three months",
    "percent_off": 25,
    "duration": "repeating",
    "duration_periods": 3,
}
# California's sales tax is added to the price; Germany's VAT is already in it.
US_CA = {"country": "US", "region": "CA"}
DE = {"country": "DE"}
TAX_RATES = [
    {**US_CA, "percentage": 7.25, "inclusive": False, "display_name": "CA sales tax"},
    {**DE, "percentage": 19, "inclusive": True, "display_name": "MwSt."},
]
FIGURES = ("billed", "collected", "credited", "outstanding")
Money = dict[str, dict[str, int]]  # currency → figure → minor units

BILLING_SQL = """
SELECT currency,
       coalesce(sum(total) FILTER (WHERE status <> 'void'), 0),
       coalesce(sum(amount_paid), 0),
       0,
       coalesce(sum(amount_due) FILTER (WHERE status IN ('open', 'past_due')), 0)
FROM billing.invoices GROUP BY currency
UNION ALL
SELECT currency, 0, 0, sum(amount), 0 FROM billing.credit_notes
WHERE status = 'issued' GROUP BY currency
"""
# The marts hold major units: times 100 back to the billing schema's minor units.
MARTS_SQL = """
SELECT currency,
       coalesce(sum(CASE WHEN invoice_status <> 'void' THEN total_amount END), 0) * 100,
       coalesce(sum(amount_paid), 0) * 100,
       0,
       coalesce(sum(CASE WHEN invoice_status IN ('open', 'past_due') THEN amount_due END), 0)
           * 100
FROM marts.fct_invoices GROUP BY currency
UNION ALL
SELECT currency, 0, 0, sum(credit_amount) * 100, 0 FROM marts.fct_credit_notes GROUP BY currency
"""


def require_pdftoppm() -> str:
    """pdftoppm renders the invoice's PDF; checked before the stack starts."""
    found = shutil.which("pdftoppm")
    if found is None:
        raise PaywallError("pdftoppm not found: install Debian's poppler-utils")
    return found


def set_up(http: httpx.Client, base: str, headers: dict[str, str]) -> list[str]:
    """The demo tenant's coupon and tax rates, once: an earlier demo's are still there."""
    made = []
    for path, body in [("/v1/coupons", COUPON), *(("/v1/tax-rates", r) for r in TAX_RATES)]:
        key = {"Idempotency-Key": str(uuid.uuid4())}
        resp = http.post(f"{base}{path}", json=body, headers={**headers, **key})
        if resp.status_code not in (201, 409):  # 409: made by an earlier demo
            resp.raise_for_status()
        made.append(str(body.get("code") or body["display_name"]))
    return made


def credit_note(
    http: httpx.Client, base: str, headers: dict[str, str], engine: Engine, customer_id: str
) -> str:
    """A partial refund to the card (a quarter of the customer's first paid invoice)."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT id, total FROM billing.invoices WHERE customer_id = :c "
                "AND status = 'paid' AND amount_paid > 0 ORDER BY period_start LIMIT 1"
            ),
            {"c": customer_id},
        ).first()
    if row is None:
        return "no paid invoice to credit"
    amount = max(1, int(row.total) // 4)
    body = {
        "amount": amount,
        "reason": "product_unsatisfactory",
        "memo": "Goodwill: an outage during the period",
        "settlement": "refund",
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    resp = http.post(
        f"{base}/v1/invoices/{row.id}/credit_notes", json=body, headers={**headers, **key}
    )
    if resp.status_code != 201:
        return f"refused ({resp.status_code}: {resp.json().get('detail', '')})"
    note = resp.json()
    return f"{note['status']}: {note['amount'] / 100:,.2f} refunded to the card ({body['reason']})"


def render_invoice(
    http: httpx.Client,
    base: str,
    headers: dict[str, str],
    engine: Engine,
    customer_id: str,
    to: Path,
) -> tuple[Path, Path] | None:
    """The customer's first invoice (GET /v1/invoices/{id}.pdf) and its first page as PNG."""
    with engine.connect() as conn:
        invoice_id = conn.execute(
            text(
                "SELECT id FROM billing.invoices WHERE customer_id = :c "
                "ORDER BY period_start, created_at LIMIT 1"
            ),
            {"c": customer_id},
        ).scalar()
    if invoice_id is None:
        return None
    resp = http.get(f"{base}/v1/invoices/{invoice_id}.pdf", headers=headers)
    resp.raise_for_status()
    pdf = to / "invoice.pdf"
    pdf.write_bytes(resp.content)
    png = to / "invoice.png"
    # -singlefile: the first page to exactly `<stem>.png` (no page-number suffix).
    stem = str(png.with_suffix(""))
    subprocess.run(
        [require_pdftoppm(), "-png", "-r", "100", "-singlefile", str(pdf), stem],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return pdf, png


def invoice_terms(engine: Engine) -> str:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE discount > 0), "
                "count(*) FILTER (WHERE tax > 0 AND NOT tax_inclusive), "
                "count(*) FILTER (WHERE tax > 0 AND tax_inclusive) FROM billing.invoices"
            )
        ).one()
    return f"{row[0]} discounted, {row[1]} with tax added, {row[2]} with tax included"


def _money(rows: Iterable[Any]) -> Money:
    out: Money = {}
    for row in rows:
        per = out.setdefault(str(row[0]).upper(), dict.fromkeys(FIGURES, 0))
        for name, value in zip(FIGURES, row[1:], strict=True):
            per[name] += int(Decimal(str(value or 0)))
    return out


def billing_money(engine: Engine) -> Money:
    with engine.connect() as conn:
        return _money(conn.execute(text(BILLING_SQL)).all())


def marts_money(warehouse: Any) -> Money | str:
    """The same figures from the marts, or why they cannot be read (dbt failed)."""
    try:
        frame = warehouse.query(MARTS_SQL)
    except Exception as exc:  # no marts: the summary says so
        return f"no marts ({str(exc).splitlines()[0][:120]})"
    return _money(frame.itertuples(index=False, name=None))


def money_rows(billing: Money, marts: Money | str) -> list[tuple[str, str]]:
    """Summary rows: per currency, billing's figures, the marts' and whether they are equal."""
    rows = []
    for currency in sorted(set(billing) | set(marts if isinstance(marts, dict) else {})):
        ours = billing.get(currency, dict.fromkeys(FIGURES, 0))
        shown = ", ".join(f"{k} {ours[k] / 100:,.2f}" for k in FIGURES)
        rows.append((f"money {currency} (billing schema)", shown))
        if isinstance(marts, str):
            rows.append((f"money {currency} (marts)", marts))
            continue
        theirs = marts.get(currency, dict.fromkeys(FIGURES, 0))
        shown = ", ".join(f"{k} {theirs[k] / 100:,.2f}" for k in FIGURES)
        rows.append((f"money {currency} (marts)", shown))
        rows.append((f"money {currency} equal", "yes" if ours == theirs else "NO"))
    return rows
