"""Customer service tables.

Revision ID: 0004_customer
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_customer"
down_revision = "0001"
branch_labels = ("customer",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("marketing_opt_in", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('active', 'deleted')", name="customer_status"),
        schema="customer",
    )
    # One live customer per email and tenant: concurrent signups cannot make two.
    op.create_index(
        "customers_live_email",
        "customers",
        [sa.text("coalesce(tenant_id, '')"), sa.text("lower(email)")],
        unique=True,
        schema="customer",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "customers_tenant_page", "customers", ["tenant_id", "created_at", "id"], schema="customer"
    )


def downgrade() -> None:
    op.drop_table("customers", schema="customer")
