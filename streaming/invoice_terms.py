"""The discount and tax an invoice gets, for both of billing's invoice writers (the billing
service: first charges and prorations; the Dagster billing run: renewals and trial
conversions), read from billing's tables in the writer's transaction. The amounts follow
paywall/pricing.py's one rule; this module only says which coupon and rate apply.

- A subscription's discount applies to a period that starts at or after the discount's
  start, while it has periods left: a `repeating` coupon for N periods discounts exactly
  N of them, because each period it discounts is recorded once (billing.discount_uses,
  keyed by discount and period start), so a re-run or a retried first charge asks again
  about the same period and spends nothing more. An amount-off coupon applies only to
  invoices in its currency.
- The tax rate is the tenant's live rate for the customer's country and region, else for
  the country as a whole; a customer with no address is not taxed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from paywall import pricing


@dataclass(frozen=True)
class Terms:
    discount_id: uuid.UUID | None = None
    discount: pricing.Discount | None = None
    coupon_name: str | None = None
    tax_rate_id: uuid.UUID | None = None
    tax: pricing.Tax | None = None
    tax_name: str | None = None


NONE = Terms()


def find(
    conn: Connection,
    *,
    tenant_id: str | None,
    subscription_id: uuid.UUID,
    currency: str,
    period_start: datetime,
    address: dict[str, Any] | None,
    lock: bool = False,
) -> Terms:
    """What applies to `subscription_id`'s invoice for the period from `period_start`.
    `lock` holds the discount's row to the end of the transaction, so two writers cannot
    both spend its last period."""
    discount = (
        conn.execute(
            text(
                "SELECT d.id, d.periods, c.percent_off_bp, c.amount_off, c.currency, c.name, "
                "(SELECT count(*) FROM billing.discount_uses u WHERE u.discount_id = d.id) "
                "AS used, "
                "EXISTS (SELECT 1 FROM billing.discount_uses u WHERE u.discount_id = d.id "
                "AND u.period_start = :start) AS this_period "
                "FROM billing.discounts d JOIN billing.coupons c ON c.id = d.coupon_id "
                "WHERE d.subscription_id = :sub AND d.start <= :start"
                + (" FOR UPDATE OF d" if lock else "")
            ),
            {"sub": subscription_id, "start": period_start},
        )
        .mappings()
        .first()
    )
    found: dict[str, Any] = {}
    if (
        discount is not None
        and (
            discount["this_period"]
            or discount["periods"] is None
            or discount["used"] < discount["periods"]
        )
        and discount["currency"] in (None, currency)
    ):
        found.update(
            discount_id=discount["id"],
            discount=pricing.Discount(discount["percent_off_bp"], discount["amount_off"]),
            coupon_name=discount["name"],
        )
    rate = _rate(conn, tenant_id, address)
    if rate is not None:
        found.update(
            tax_rate_id=rate["id"],
            tax=pricing.Tax(rate["percentage_bp"], rate["inclusive"]),
            tax_name=rate["display_name"],
        )
    return Terms(**found)


def taxes(conn: Connection, tenant_id: str | None) -> bool:
    """Whether the tenant has a tax rate in force: without one, no address changes an
    invoice (see `_rate`), so a caller need not ask for the customer's."""
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM billing.tax_rates WHERE archived_at IS NULL "
                "AND coalesce(tenant_id, '') = coalesce(:tenant, ''))"
            ),
            {"tenant": tenant_id},
        ).scalar_one()
    )


def _rate(conn: Connection, tenant_id: str | None, address: dict[str, Any] | None) -> Any:
    if not address or not address.get("country"):
        return None
    return (
        conn.execute(
            text(
                "SELECT id, percentage_bp, inclusive, display_name FROM billing.tax_rates "
                "WHERE archived_at IS NULL AND coalesce(tenant_id, '') = coalesce(:tenant, '') "
                "AND country = :country AND (region = :region OR region IS NULL) "
                "ORDER BY region IS NULL LIMIT 1"
            ),
            {"tenant": tenant_id, "country": address["country"], "region": address.get("region")},
        )
        .mappings()
        .first()
    )


def spend(
    conn: Connection, discount_id: uuid.UUID, period_start: datetime, invoice_id: uuid.UUID | None
) -> None:
    """The discount has discounted the period from `period_start` (once, however asked)."""
    conn.execute(
        text(
            "INSERT INTO billing.discount_uses (discount_id, period_start, invoice_id) "
            "VALUES (:d, :p, :i) ON CONFLICT DO NOTHING"
        ),
        {"d": discount_id, "p": period_start, "i": invoice_id},
    )


def lines(base: list[dict[str, Any]], terms: Terms) -> tuple[pricing.Amounts, list[dict[str, Any]]]:
    """`base` lines (kind, description, plan_id, amount, period) with the discount line
    added and each line's tax: the invoice's amounts and its lines as stored."""
    amounts = pricing.invoice([line["amount"] for line in base], terms.discount, terms.tax)
    out = [dict(line) for line in base]
    if amounts.discount:
        span = {"period_start": base[-1]["period_start"], "period_end": base[-1]["period_end"]}
        out.append(
            {
                "kind": "discount",
                "description": f"Discount: {terms.coupon_name}",
                "plan_id": None,
                "amount": -amounts.discount,
                **span,
            }
        )
    for line, tax in zip(out, amounts.line_taxes, strict=True):
        line["tax_amount"] = tax
    return amounts, out
