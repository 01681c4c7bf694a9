"""Audit forwarding cursor: how far along the audit log each destination (Datadog) has got.

The audit log is append-only (a trigger refuses updates), so it cannot carry a
forwarded flag; one row per destination holds the last `seq` the destination accepted.
Forwarding sends the rows after it in `seq` order and moves it in the same transaction,
so a failure leaves them behind the cursor for the next attempt: none lost, in order.

Revision ID: 0020_audit_forwarding
Revises: 0014_notifications
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_audit_forwarding"
down_revision = "0014_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forwarded",
        sa.Column("destination", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("forwarded_at", sa.DateTime(timezone=True)),
        schema="audit",
    )
    op.execute("INSERT INTO audit.forwarded (destination) VALUES ('datadog')")


def downgrade() -> None:
    op.drop_table("forwarded", schema="audit")
