"""Tables of the event consumers: notification (recipients, sends) and audit (hash chain).

Revision ID: 0007_event_consumers
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_event_consumers"
down_revision = "0001"
branch_labels = ("consumers",)
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS notification")
    op.execute("CREATE SCHEMA IF NOT EXISTS audit")
    # The notification service's own copy of contact details, fed by customer events.
    op.create_table(
        "recipients",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("email", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("sms_opt_in", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("erased", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema="notification",
    )
    op.create_table(
        "sends",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("dedupe_key", sa.Text, nullable=False, unique=True),
        sa.Column("event_id", sa.Text),
        sa.Column("customer_id", sa.Text),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("template", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("provider_message_id", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        # What a send waiting for its recipient's details needs to be rendered later.
        sa.Column("values", postgresql.JSONB),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("channel IN ('email', 'sms')", name="send_channel"),
        sa.CheckConstraint(
            "status IN ('waiting', 'pending', 'sent', 'skipped', 'failed')", name="send_status"
        ),
        schema="notification",
    )
    op.create_table(
        "log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("envelope", postgresql.JSONB, nullable=False),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
        schema="audit",
    )
    op.create_index("log_occurred", "log", ["occurred_at"], schema="audit")
    # Append-only: the database itself refuses edits and deletes of audit rows.
    op.execute(
        "CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit.log is append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON audit.log "
        "FOR EACH ROW EXECUTE FUNCTION audit.refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS audit CASCADE")
    op.execute("DROP SCHEMA IF EXISTS notification CASCADE")
