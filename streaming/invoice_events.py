"""The invoice events (streaming/contracts: invoice.*, the latest version) as billing writes
them to its outbox, in the transaction that changes the invoice. One payload for both
writers: the billing service (signups' first periods, upgrades, operators' void and pay)
and the Dagster billing run (which builds the same fields set-based as version 2, whose
kinds cover the renewals and trial conversions it makes: assets/billing/invoicing.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping

from streaming import outbox


def emit(
    conn: Connection, invoice: RowMapping | Mapping[str, Any], event_type: str, **extra: Any
) -> None:
    """`event_type` for `invoice` (a billing.invoices row as it is now), with `extra`
    fields the event's contract adds (payment_id, decline_code, reason)."""
    outbox.emit(
        conn,
        "billing",
        "invoice",
        str(invoice["id"]),
        event_type,
        {
            "invoice_id": str(invoice["id"]),
            "customer_id": invoice["customer_id"],
            "tenant_id": invoice["tenant_id"],
            "subscription_id": str(invoice["subscription_id"]),
            "kind": invoice["kind"],
            "status": invoice["status"],
            "currency": invoice["currency"],
            "subtotal": invoice["subtotal"],
            "discount": invoice["discount"],
            "tax": invoice["tax"],
            "tax_inclusive": invoice["tax_inclusive"],
            "total": invoice["total"],
            "amount_paid": invoice["amount_paid"],
            "amount_due": invoice["amount_due"],
            "period_start": invoice["period_start"].isoformat(),
            "period_end": invoice["period_end"].isoformat(),
            **extra,
        },
    )
