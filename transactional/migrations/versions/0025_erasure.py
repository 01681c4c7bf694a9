"""Erasure: a key per customer for the personal fields of events, and erased accounts.

`privacy.customer_keys` holds the AES key that seals a customer's email, phone and name in
every event (paywall/privacy.py); erasing the customer sets `key` to NULL and keeps the
row, so no new key is ever made for an erased customer. `payment.accounts.erased_at` says
the Stripe customer was deleted, so a retried erasure does not ask Stripe again.

Revision ID: 0025_erasure
Revises: 0003_payment
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025_erasure"
down_revision = "0003_payment"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS privacy")
    op.create_table(
        "customer_keys",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("key", sa.LargeBinary),  # null once the customer was erased
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("shredded_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("(key IS NULL) = (shredded_at IS NOT NULL)", name="key_or_shredded"),
        schema="privacy",
    )
    op.add_column("accounts", sa.Column("erased_at", sa.DateTime(timezone=True)), schema="payment")


def downgrade() -> None:
    op.drop_column("accounts", "erased_at", schema="payment")
    op.execute("DROP SCHEMA IF EXISTS privacy CASCADE")
