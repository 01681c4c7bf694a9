"""One schema per service, each with its outbox table.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMAS = ("auth", "customer", "subscription", "payment", "registration")


def upgrade() -> None:
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        # Debezium's outbox shape: aggregate id is the Kafka key, id travels as a header.
        op.create_table(
            "outbox",
            sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
            sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False, unique=True),
            sa.Column("aggregate_type", sa.Text, nullable=False),
            sa.Column("aggregate_id", sa.Text, nullable=False),
            sa.Column("type", sa.Text, nullable=False),
            sa.Column("payload", postgresql.JSONB, nullable=False),
            sa.Column(
                "created_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            ),
            sa.Column("published_at", sa.DateTime(timezone=True)),
            schema=schema,
        )
        op.create_index(
            "outbox_unpublished",
            "outbox",
            ["seq"],
            schema=schema,
            postgresql_where=sa.text("published_at IS NULL"),
        )


def downgrade() -> None:
    for schema in reversed(SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
