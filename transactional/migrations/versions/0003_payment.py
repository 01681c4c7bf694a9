"""Payment service tables: Stripe accounts, payments, refunds, received webhooks.

Revision ID: 0003_payment
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_payment"
down_revision = "0001"
branch_labels = ("payment",)
depends_on = None

SCHEMA = "payment"
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "refunded", "partially_refunded")


def _now() -> sa.Column[sa.DateTime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("stripe_customer_id", sa.Text, nullable=False, unique=True),
        sa.Column("default_payment_method", sa.Text),
        _now(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_index("accounts_tenant", "accounts", ["tenant_id"], schema=SCHEMA)

    statuses = ", ".join(f"'{s}'" for s in PAYMENT_STATUSES)
    op.create_table(
        "payments",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "customer_id",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.accounts.customer_id"),
            nullable=False,
        ),
        # The key is the payment's identity: a unique index makes a second charge for
        # the same key impossible, whatever the clients and workers do.
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("request_fingerprint", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("stripe_payment_intent_id", sa.Text, unique=True),
        sa.Column("amount_refunded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failure_code", sa.Text),
        sa.Column("decline_code", sa.Text),
        sa.Column("failure_message", sa.Text),
        # The first answer given for the key, replayed verbatim on retries.
        sa.Column("response_status", sa.Integer),
        sa.Column("response_body", postgresql.JSONB),
        _now(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("amount > 0", name="payment_amount_positive"),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="payment_refund_bounds"
        ),
        sa.CheckConstraint("currency ~ '^[a-z]{3}$'", name="payment_currency"),
        sa.CheckConstraint(f"status IN ({statuses})", name="payment_status"),
        schema=SCHEMA,
    )
    op.create_index("payments_customer", "payments", ["customer_id", "created_at"], schema=SCHEMA)

    op.create_table(
        "refunds",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "payment_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.payments.id"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("request_fingerprint", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("stripe_refund_id", sa.Text, unique=True),
        sa.Column("failure_message", sa.Text),
        sa.Column("response_status", sa.Integer),
        sa.Column("response_body", postgresql.JSONB),
        _now(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("amount > 0", name="refund_amount_positive"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="refund_status"),
        schema=SCHEMA,
    )
    op.create_index("refunds_payment", "refunds", ["payment_id"], schema=SCHEMA)

    op.create_table(
        "webhook_events",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("source", "event_id"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("webhook_events", "refunds", "payments", "accounts"):
        op.drop_table(table, schema=SCHEMA)
