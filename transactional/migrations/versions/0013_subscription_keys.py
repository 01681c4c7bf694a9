"""Subscription: keep what a keyed create asked for, so a reused key is refused (422).

Revision ID: 0013_subscription_keys
Revises: 0005_subscription
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_subscription_keys"
down_revision = "0005_subscription"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("request_fingerprint", sa.Text), schema="subscription")


def downgrade() -> None:
    op.drop_column("subscriptions", "request_fingerprint", schema="subscription")
