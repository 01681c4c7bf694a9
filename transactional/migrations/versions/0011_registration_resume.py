"""Registration: keep what a signup asked for (never the password) and its tenant; keys
belong to their owner (the tenant, else the client), as every service's keys do.

A signup that stopped between steps is resumed, by the client's retry or by the recovery
sweep, from its row alone; the sweep has no request to read them from.

Revision ID: 0011_registration_resume
Revises: 0006_registration
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011_registration_resume"
down_revision = "0006_registration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("registrations", sa.Column("request", postgresql.JSONB), schema="registration")
    op.add_column("registrations", sa.Column("tenant_id", sa.Text), schema="registration")
    op.alter_column("registrations", "client_id", new_column_name="owner", schema="registration")
    # The recovery sweep looks for unfinished signups nobody touched for a while.
    op.create_index(
        "registrations_unfinished",
        "registrations",
        ["updated_at"],
        schema="registration",
        postgresql_where=sa.text("status = 'in_progress'"),
    )


def downgrade() -> None:
    op.drop_index("registrations_unfinished", table_name="registrations", schema="registration")
    op.alter_column("registrations", "owner", new_column_name="client_id", schema="registration")
    op.drop_column("registrations", "tenant_id", schema="registration")
    op.drop_column("registrations", "request", schema="registration")
