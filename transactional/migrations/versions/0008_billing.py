"""Billing service tables: invoices (one per subscription and period), charge attempts,
dunning, and the batch-notification ledger.

Revision ID: 0008_billing
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_billing"
down_revision = "0001"
branch_labels = ("billing",)
depends_on = None

INVOICE_STATUSES = ("open", "paid", "past_due", "uncollectible", "void")
SUB_ACTIONS = ("renew", "mark_past_due", "reactivate", "expire")


def _ts(name: str, nullable: bool = True, now: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if now else None,
    )


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS billing")
    op.create_table(
        "invoices",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("subscription_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("plan_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _ts("period_start", nullable=False),
        _ts("period_end", nullable=False),
        # The billing day (the partition) that created it: "today" for that run.
        sa.Column("billing_date", sa.Date, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("payment_id", sa.Text),
        sa.Column("decline_code", sa.Text),
        sa.Column("paid_on", sa.Date),
        # A subscription-service call still owed for this invoice (done when NULL); kept
        # with the money outcome in one transaction so a crash between them is resumable.
        sa.Column("pending_action", sa.Text),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        sa.CheckConstraint(f"status IN {INVOICE_STATUSES!r}", name="invoice_status"),
        sa.CheckConstraint("kind IN ('renewal', 'trial_conversion')", name="invoice_kind"),
        sa.CheckConstraint(f"pending_action IN {SUB_ACTIONS!r}", name="invoice_pending_action"),
        sa.CheckConstraint("amount >= 0", name="invoice_amount"),
        # Lago's billing-day duplicates came from lacking exactly this key.
        sa.UniqueConstraint("subscription_id", "period_start", name="invoice_once_per_period"),
        schema="billing",
    )
    op.create_index("invoices_billing_date", "invoices", ["billing_date"], schema="billing")
    op.create_index(
        "invoices_pending_action",
        "invoices",
        ["billing_date"],
        schema="billing",
        postgresql_where=sa.text("pending_action IS NOT NULL"),
    )
    op.create_table(
        "attempts",
        sa.Column(
            "invoice_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("billing.invoices.id"),
            primary_key=True,
        ),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("attempted_on", sa.Date, nullable=False),
        # Sent as the payment service's Idempotency-Key: a re-run asks, never charges again.
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("payment_id", sa.Text),
        sa.Column("decline_code", sa.Text),
        _ts("created_at", nullable=False, now=True),
        _ts("finished_at"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="attempt_status"),
        schema="billing",
    )
    op.create_table(
        "dunning",
        sa.Column(
            "invoice_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("billing.invoices.id"),
            primary_key=True,
        ),
        sa.Column("subscription_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("first_failed_on", sa.Date, nullable=False),
        sa.Column("last_attempt_on", sa.Date, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("next_attempt_on", sa.Date),
        sa.Column("status", sa.Text, nullable=False, server_default="retrying"),
        sa.Column("last_decline_code", sa.Text),
        _ts("updated_at", nullable=False, now=True),
        sa.CheckConstraint(
            "status IN ('retrying', 'recovered', 'exhausted', 'abandoned')", name="dunning_status"
        ),
        schema="billing",
    )
    op.create_index(
        "dunning_due",
        "dunning",
        ["next_attempt_on"],
        schema="billing",
        postgresql_where=sa.text("status = 'retrying'"),
    )
    op.create_index("dunning_last_attempt", "dunning", ["last_attempt_on"], schema="billing")
    # One notice per customer, reason, period and channel: a re-run sends nothing new.
    op.create_table(
        "notification_sends",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("batch_date", sa.Date, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("provider_message_id", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("values", postgresql.JSONB, nullable=False),
        _ts("created_at", nullable=False, now=True),
        _ts("sent_at"),
        sa.CheckConstraint("channel IN ('email', 'sms')", name="notification_channel"),
        sa.CheckConstraint(
            "reason IN ('trial_ending', 'dunning', 'receipt')", name="notification_reason"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'skipped', 'failed')", name="notification_status"
        ),
        sa.UniqueConstraint("customer_id", "reason", "period", "channel", name="notification_once"),
        schema="billing",
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS billing CASCADE")
