"""Subscription: plans per tenant, versioned prices, subscriptions pinned to a version.

- `plans.tenant_id`: the owning tenant; NULL is the platform's starter catalog, which
  every tenant sells. `archived_at` records when `active` (on sale) went false.
- `plan_prices`: every price a plan has had, by version. `plans.amount` and
  `plans.price_version` stay the current one (what a new subscriber pays).
- `subscriptions.price_version`: the version the subscription was sold at; renewals and
  prorations bill it. `next_price_version` is a migration to a newer one, taking effect at
  the next renewal; `pending_price_version` is the price of a scheduled downgrade.
- `catalog_requests`: the catalog POSTs' Idempotency-Keys with the answer they gave.

Every existing plan gets version 1 at its amount, and every existing subscription is
pinned to version 1: nothing any subscriber pays changes.

Revision ID: 0027_plan_catalog
Revises: 0013_subscription_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0027_plan_catalog"
down_revision = "0013_subscription_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("plans", sa.Column("tenant_id", sa.Text), schema="subscription")
    op.add_column(
        "plans",
        sa.Column("price_version", sa.Integer, nullable=False, server_default="1"),
        schema="subscription",
    )
    op.add_column(
        "plans", sa.Column("archived_at", sa.DateTime(timezone=True)), schema="subscription"
    )
    op.add_column(
        "plans",
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema="subscription",
    )
    op.create_index("plans_tenant", "plans", ["tenant_id"], schema="subscription")
    op.create_table(
        "plan_prices",
        sa.Column("plan_id", sa.Text, sa.ForeignKey("subscription.plans.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("plan_id", "version"),
        sa.CheckConstraint("amount >= 0", name="plan_price_amount"),
        sa.CheckConstraint("version >= 1", name="plan_price_version"),
        schema="subscription",
    )
    op.execute(
        "INSERT INTO subscription.plan_prices (plan_id, version, amount) "
        "SELECT id, price_version, amount FROM subscription.plans"
    )
    # The current version always exists: a plan cannot point at a price it does not have.
    op.create_foreign_key(
        "plan_current_price",
        "plans",
        "plan_prices",
        ["id", "price_version"],
        ["plan_id", "version"],
        source_schema="subscription",
        referent_schema="subscription",
        deferrable=True,
        initially="DEFERRED",
    )
    for column, default in (
        ("price_version", "1"),
        ("next_price_version", None),
        ("pending_price_version", None),
    ):
        op.add_column(
            "subscriptions",
            sa.Column(column, sa.Integer, nullable=default is None, server_default=default),
            schema="subscription",
        )
    for name, plan, version in (
        ("subscription_price", "plan_id", "price_version"),
        ("subscription_next_price", "plan_id", "next_price_version"),
        ("subscription_pending_price", "pending_plan_id", "pending_price_version"),
    ):
        op.create_foreign_key(
            name,
            "subscriptions",
            "plan_prices",
            [plan, version],
            ["plan_id", "version"],
            source_schema="subscription",
            referent_schema="subscription",
        )
    op.create_table(
        "catalog_requests",
        sa.Column("request_key", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema="subscription",
    )


def downgrade() -> None:
    op.drop_table("catalog_requests", schema="subscription")
    for name in ("subscription_price", "subscription_next_price", "subscription_pending_price"):
        op.drop_constraint(name, "subscriptions", schema="subscription")
    for column in ("price_version", "next_price_version", "pending_price_version"):
        op.drop_column("subscriptions", column, schema="subscription")
    op.drop_constraint("plan_current_price", "plans", schema="subscription")
    op.drop_table("plan_prices", schema="subscription")
    op.drop_index("plans_tenant", "plans", schema="subscription")
    for column in ("created_at", "archived_at", "price_version", "tenant_id"):
        op.drop_column("plans", column, schema="subscription")
