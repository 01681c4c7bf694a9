"""A due subscription's invoice priced: its discount and tax (streaming/invoice_terms.py)
and amounts (paywall/pricing.py's one rule), staged with it for invoicing.py.

The tax rate depends on the customer's address, which the customer service owns: it is
asked once per customer and run, and only for customers of tenants that have a live tax
rate at all (most runs ask nothing). Asked before the invoicing transaction opens, so no
HTTP call holds its locks.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import Connection, Engine, text

from assets.billing.invoicing import DueRow
from paywall.service_client import ServiceClient, ServiceError
from streaming import invoice_terms

Addresses = dict[str, dict[str, Any] | None]


class Pricing:
    def __init__(self, customers: ServiceClient | None) -> None:
        self.customers = customers

    def addresses(self, engine: Engine, rows: list[DueRow]) -> Addresses:
        """The billing address of each customer whose tenant taxes (None: no address)."""
        if self.customers is None or not rows:
            return {}
        with engine.connect() as conn:
            taxing = {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT DISTINCT tenant_id FROM billing.tax_rates WHERE archived_at IS NULL"
                    )
                )
            }
        found: Addresses = {}
        for row in rows:
            if row.tenant_id in taxing and row.customer_id not in found:
                status, body = self.customers.call("GET", f"/v1/customers/{row.customer_id}")
                if status not in (200, 404):
                    raise ServiceError("customer", status, body)
                found[row.customer_id] = body.get("address") if status == 200 else None
        return found

    def priced(self, conn: Connection, row: DueRow, addresses: Addresses) -> DueRow:
        terms = invoice_terms.find(
            conn,
            tenant_id=row.tenant_id,
            subscription_id=row.subscription_id,
            currency=row.currency,
            period_start=row.period_start,
            address=addresses.get(row.customer_id),
            lock=True,
        )
        if terms == invoice_terms.NONE:
            return row  # the plan's price, one line
        base = [
            {
                "kind": "subscription",
                "description": row.plan_id,
                "plan_id": row.plan_id,
                "amount": row.amount,
                "period_start": row.period_start,
                "period_end": row.period_end,
            }
        ]
        amounts, lines = invoice_terms.lines(base, terms)
        keep = ("kind", "description", "plan_id", "amount", "tax_amount")
        return dataclasses.replace(
            row,
            subtotal=amounts.subtotal,
            discount=amounts.discount,
            tax=amounts.tax,
            tax_inclusive=amounts.inclusive,
            total=amounts.total,
            discount_id=terms.discount_id if amounts.discount else None,
            tax_rate_id=terms.tax_rate_id,
            lines=json.dumps([{k: line[k] for k in keep} for line in lines]),
        )
