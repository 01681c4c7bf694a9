"""Events resent by the completeness repair: found by day, and harmless when late.

`paywall events completeness` and the event_completeness asset read one UTC day of every
service's outbox (streaming/completeness.py); without the index each run scans every
outbox from its first row. The repair resends an old event after newer ones, so the
notification consumer keeps contact details with the event time they are from, and an
older event no longer overwrites them. On the consumers branch: the outboxes' other
reader, the relay, is event plumbing too, and no service's own code changes.

Revision ID: 0012_events
Revises: 0007_event_consumers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_events"
down_revision = "0007_event_consumers"
branch_labels = None
depends_on = None

OUTBOX_SCHEMAS = ("auth", "customer", "subscription", "payment", "registration")


def upgrade() -> None:
    for schema in OUTBOX_SCHEMAS:
        op.create_index("outbox_created", "outbox", ["created_at"], schema=schema)
    op.add_column(
        "recipients", sa.Column("as_of", sa.DateTime(timezone=True)), schema="notification"
    )


def downgrade() -> None:
    op.drop_column("recipients", "as_of", schema="notification")
    for schema in OUTBOX_SCHEMAS:
        op.drop_index("outbox_created", "outbox", schema=schema)
