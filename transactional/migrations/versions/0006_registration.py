"""Registration service: signup sagas and their idempotency keys.

Revision ID: 0006_registration
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_registration"
down_revision = "0001"
branch_labels = ("registration",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="in_progress"),
        sa.Column("step", sa.Text, nullable=False, server_default="started"),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("customer_id", postgresql.UUID(as_uuid=True)),
        sa.Column("subscription_id", postgresql.UUID(as_uuid=True)),
        sa.Column("payment_id", sa.Text),
        sa.Column("response_status", sa.Integer),
        sa.Column("response_body", postgresql.JSONB),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('in_progress', 'completed', 'failed')", name="registration_status"
        ),
        # Stripe's rule: a key belongs to one client; the same key from two clients is two keys.
        sa.UniqueConstraint("client_id", "idempotency_key", name="registration_key"),
        schema="registration",
    )


def downgrade() -> None:
    op.drop_table("registrations", schema="registration")
