"""One renewal invoice per subscription and period, any number of prorations in it.

The unique key (subscription_id, period_start) made the billing run's renewal and an
upgrade's proration invoice of the same period collide: every upgrade after a renewal was
refused as a concurrent plan change, and so was a second upgrade within one period. The
key now holds for the invoices a billing run makes (renewals and trial conversions);
prorations are kept apart by their request key and the one-in-flight rule.

Also joins the billing branch's two heads (credit notes; coupons and tax).

Revision ID: 0026_proration_periods
Revises: 0022_credit_notes, 0023_coupons_tax
"""

from __future__ import annotations

from alembic import op

revision = "0026_proration_periods"
down_revision = ("0022_credit_notes", "0023_coupons_tax")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("invoice_once_per_period", "invoices", schema="billing")
    op.execute(
        "CREATE UNIQUE INDEX invoice_once_per_period ON billing.invoices "
        "(subscription_id, period_start) WHERE kind <> 'proration'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX billing.invoice_once_per_period")
    op.create_unique_constraint(
        "invoice_once_per_period",
        "invoices",
        ["subscription_id", "period_start"],
        schema="billing",
    )
