"""billing.due_seen: what each billing run saw due, so reconciliation can prove every due
renewal and trial conversion has its invoice.

The subscription service's answer moves on once a subscription renews (its period ends
later), so asking it again after the run cannot tell what the run was given; the run
records it, in the transaction that creates the invoices.

Revision ID: 0021_billing_due_seen
Revises: 0015_invoices
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021_billing_due_seen"
down_revision = "0015_invoices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "due_seen",
        sa.Column("billing_date", sa.Date, primary_key=True),
        sa.Column("subscription_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column(
            "seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema="billing",
    )


def downgrade() -> None:
    op.drop_table("due_seen", schema="billing")
