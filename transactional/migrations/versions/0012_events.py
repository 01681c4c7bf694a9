"""Outbox rows by the day they were written, for the daily completeness check.

`paywall events completeness` and the event_completeness asset read one UTC day of every
service's outbox (streaming/completeness.py); without this index each run scans every
outbox from its first row. On the consumers branch: the outboxes' other reader, the
relay, is event plumbing too, and no service's own code changes.

Revision ID: 0012_events
Revises: 0007_event_consumers
"""

from __future__ import annotations

from alembic import op

revision = "0012_events"
down_revision = "0007_event_consumers"
branch_labels = None
depends_on = None

OUTBOX_SCHEMAS = ("auth", "customer", "subscription", "payment", "registration")


def upgrade() -> None:
    for schema in OUTBOX_SCHEMAS:
        op.create_index("outbox_created", "outbox", ["created_at"], schema=schema)


def downgrade() -> None:
    for schema in OUTBOX_SCHEMAS:
        op.drop_index("outbox_created", "outbox", schema=schema)
