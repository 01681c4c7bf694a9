"""Kind `first_period`: the invoice of a signup's first charge.

The registration saga charges a subscription's first period itself (before the
subscription is active); billing now records that charge as a paid invoice with lines,
discount and tax, linked to the saga's payment. It is one per subscription and period like
a renewal (the partial unique index `invoice_once_per_period` already holds for every kind
but prorations), and its request key names the subscription, so a resumed saga finds the
invoice an earlier attempt made.

Revision ID: 0028_first_period_invoices
Revises: 0026_proration_periods
"""

from __future__ import annotations

from alembic import op

revision = "0028_first_period_invoices"
down_revision = "0026_proration_periods"
branch_labels = None
depends_on = None

KINDS = ("renewal", "trial_conversion", "proration", "first_period")
OLD_KINDS = ("renewal", "trial_conversion", "proration")


def upgrade() -> None:
    op.drop_constraint("invoice_kind", "invoices", schema="billing")
    op.create_check_constraint("invoice_kind", "invoices", f"kind IN {KINDS!r}", schema="billing")


def downgrade() -> None:
    # What hangs off a first-period invoice goes with it (its credit notes' refunds stay in
    # the payment service, which owns the money).
    first = "SELECT id FROM billing.invoices WHERE kind = 'first_period'"
    notes = f"SELECT id FROM billing.credit_notes WHERE invoice_id IN ({first})"
    op.execute(f"DELETE FROM billing.credit_note_lines WHERE credit_note_id IN ({notes})")
    op.execute(
        f"DELETE FROM billing.customer_balance WHERE credit_note_id IN ({notes}) "
        f"OR invoice_id IN ({first})"
    )
    op.execute(f"DELETE FROM billing.credit_notes WHERE invoice_id IN ({first})")
    op.execute(f"UPDATE billing.discount_uses SET invoice_id = NULL WHERE invoice_id IN ({first})")
    for table in ("invoice_lines", "attempts", "dunning"):
        op.execute(f"DELETE FROM billing.{table} WHERE invoice_id IN ({first})")
    op.execute("DELETE FROM billing.invoices WHERE kind = 'first_period'")
    op.drop_constraint("invoice_kind", "invoices", schema="billing")
    op.create_check_constraint(
        "invoice_kind", "invoices", f"kind IN {OLD_KINDS!r}", schema="billing"
    )
