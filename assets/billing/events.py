"""Invoice events the billing run writes to billing's outbox (streaming/contracts: invoice.*),
in the transaction that books the outcome; the billing service writes the same ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping

from streaming import outbox


def emit(conn: Connection, invoice: RowMapping, event_type: str, **extra: Any) -> None:
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
            "total": invoice["total"],
            "amount_paid": invoice["amount_paid"],
            "amount_due": invoice["amount_due"],
            **extra,
        },
    )
