"""Customer credit consumed by an invoice when it is collected: one rule for both
collectors, the billing service (collect.py) and the Dagster billing run (charges.py),
like invoice_events.py beside it.

Credit notes kept as customer credit add rows to `billing.customer_balance`; the next
invoice charged takes what it can (never more than it owes, so it never goes below zero;
the rest stays for the invoice after). The ledger row is unique per invoice: a retried
collection finds it and charges the same amount under the same attempt key, instead of
taking the credit twice or sending a different amount under a key already used.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, RowMapping, text


def balance(conn: Connection, customer_id: str, currency: str) -> int:
    """The customer's credit in `currency`, minor units (never negative)."""
    found: int = conn.execute(
        text(
            "SELECT coalesce(sum(amount), 0) FROM billing.customer_balance "
            "WHERE customer_id = :c AND currency = :cur"
        ),
        {"c": customer_id, "cur": currency},
    ).scalar_one()
    return int(found)


def lock_customer(conn: Connection, customer_id: str) -> None:
    """Serialise balance movements of one customer until the transaction ends: two
    invoices collected at once cannot both spend the same credit."""
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('credit:' || :c, 0))"),
        {"c": customer_id},
    )


def apply(conn: Connection, invoice: RowMapping) -> RowMapping:
    """The invoice (locked here, if the caller has not) with the customer's credit
    applied once: credit_applied and amount_due updated, a negative
    ledger row written. Already applied, or no credit: the invoice as it is now."""
    # The invoice's row first, then the customer's lock: every collector takes them in
    # this order, so two of them (an operator's pay-now and the billing run) cannot deadlock.
    current = (
        conn.execute(
            text("SELECT * FROM billing.invoices WHERE id = :i FOR UPDATE"), {"i": invoice["id"]}
        )
        .mappings()
        .one()
    )
    lock_customer(conn, current["customer_id"])
    applied = conn.execute(
        text("SELECT 1 FROM billing.customer_balance WHERE invoice_id = :i"),
        {"i": invoice["id"]},
    ).first()
    if applied is not None or current["status"] not in ("open", "uncollectible"):
        return current
    use = min(balance(conn, current["customer_id"], current["currency"]), current["amount_due"])
    if use <= 0:
        return current
    conn.execute(
        text(
            "INSERT INTO billing.customer_balance (id, customer_id, tenant_id, currency, "
            "amount, invoice_id) VALUES (:id, :c, :t, :cur, :a, :i)"
        ),
        {
            "id": uuid.uuid4(),
            "c": current["customer_id"],
            "t": current["tenant_id"],
            "cur": current["currency"],
            "a": -use,
            "i": current["id"],
        },
    )
    updated: RowMapping = (
        conn.execute(
            text(
                "UPDATE billing.invoices SET credit_applied = credit_applied + :u, "
                "amount_due = amount_due - :u, updated_at = now() WHERE id = :i RETURNING *"
            ),
            {"u": use, "i": current["id"]},
        )
        .mappings()
        .one()
    )
    return updated
