"""One dedupe table for every notice: the batches' ledger moves into notification.sends.

The daily notification batches kept their own ledger in billing's schema
(`billing.notification_sends`, unique per customer, reason, period and channel); the
real-time consumer kept `notification.sends`. Both now record in the notification
schema's table, under one dedupe key, so a notice either path sent is not sent again by
the other. The batches' rows move with the key they were sent under
(`<customer>:<reason>:<period>:<channel>`) and `due_on`, the day a batch claimed them; a
month's receipt is the `monthly_receipt` template (the consumer's `receipt` is one
payment's). On the consumers branch (the notification schema's), after billing's table
exists.

Revision ID: 0014_notifications
Revises: 0012_events
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_notifications"
down_revision = "0012_events"
branch_labels = None
depends_on = "0008_billing"


def upgrade() -> None:
    op.add_column("sends", sa.Column("due_on", sa.Date), schema="notification")
    op.execute(
        "INSERT INTO notification.sends (dedupe_key, customer_id, channel, template, status, "
        "provider_message_id, attempts, error, values, created_at, sent_at, due_on) "
        "SELECT customer_id || ':' || reason || ':' || period || ':' || channel, customer_id, "
        "channel, CASE reason WHEN 'receipt' THEN 'monthly_receipt' ELSE reason END, status, "
        "provider_message_id, CASE WHEN status IN ('sent', 'failed') THEN 1 ELSE 0 END, "
        "error, values, created_at, sent_at, batch_date FROM billing.notification_sends "
        "ORDER BY id ON CONFLICT (dedupe_key) DO NOTHING"
    )
    op.drop_table("notification_sends", schema="billing")
    # The batch's pending notices by day; the consumer finds its rows by key.
    op.create_index(
        "sends_batch_pending",
        "sends",
        ["due_on"],
        schema="notification",
        postgresql_where=sa.text("status = 'pending' AND due_on IS NOT NULL"),
    )


def downgrade() -> None:
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
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
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
    # The period is what the key holds between its reason and its channel.
    op.execute(
        "INSERT INTO billing.notification_sends (customer_id, reason, period, channel, "
        "batch_date, status, provider_message_id, error, values, created_at, sent_at) "
        "SELECT customer_id, CASE template WHEN 'monthly_receipt' THEN 'receipt' "
        "ELSE template END, substring(dedupe_key FROM '^[^:]*:[^:]*:(.*):[^:]*$'), channel, "
        "due_on, status, provider_message_id, error, coalesce(values, '{}'::jsonb), "
        "created_at, sent_at FROM notification.sends WHERE due_on IS NOT NULL ORDER BY id"
    )
    op.execute("DELETE FROM notification.sends WHERE due_on IS NOT NULL")
    op.drop_index("sends_batch_pending", "sends", schema="notification")
    op.drop_column("sends", "due_on", schema="notification")
