"""Subscription service tables and the starter plan catalogue.

Revision ID: 0005_subscription
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_subscription"
down_revision = "0001"
branch_labels = ("subscription",)
depends_on = None

STATES = ("incomplete", "trialing", "active", "past_due", "paused", "canceled")


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),  # minor units per interval
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("interval", sa.Text, nullable=False),
        sa.Column("trial_days", sa.Integer, nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.CheckConstraint("amount >= 0", name="plan_amount"),
        sa.CheckConstraint("interval IN ('month', 'year')", name="plan_interval"),
        schema="subscription",
    )
    op.bulk_insert(
        plans,
        [
            {
                "id": "basic-monthly",
                "name": "Basic",
                "amount": 900,
                "currency": "usd",
                "interval": "month",
                "trial_days": 14,
            },
            {
                "id": "pro-monthly",
                "name": "Pro",
                "amount": 2900,
                "currency": "usd",
                "interval": "month",
                "trial_days": 14,
            },
            {
                "id": "pro-yearly",
                "name": "Pro (yearly)",
                "amount": 29000,
                "currency": "usd",
                "interval": "year",
                "trial_days": 14,
            },
            {
                "id": "team-monthly",
                "name": "Team",
                "amount": 9900,
                "currency": "usd",
                "interval": "month",
                "trial_days": 0,
            },
        ],
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("tenant_id", sa.Text),
        sa.Column("plan_id", sa.Text, sa.ForeignKey("subscription.plans.id"), nullable=False),
        sa.Column("pending_plan_id", sa.Text, sa.ForeignKey("subscription.plans.id")),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trial_end", sa.DateTime(timezone=True)),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("canceled_at", sa.DateTime(timezone=True)),
        sa.Column("paused_at", sa.DateTime(timezone=True)),
        sa.Column("request_key", sa.Text, unique=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(f"status IN {STATES!r}", name="subscription_status"),
        schema="subscription",
    )
    # One live subscription per customer: a retried create cannot make a second.
    op.create_index(
        "subscriptions_one_live",
        "subscriptions",
        ["customer_id"],
        unique=True,
        schema="subscription",
        postgresql_where=sa.text("status <> 'canceled'"),
    )
    op.create_index(
        "subscriptions_renewal",
        "subscriptions",
        ["status", "current_period_end"],
        schema="subscription",
    )


def downgrade() -> None:
    op.drop_table("subscriptions", schema="subscription")
    op.drop_table("plans", schema="subscription")
