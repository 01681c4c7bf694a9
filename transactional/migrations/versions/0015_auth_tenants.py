"""Tenants as auth's objects, and clients an operator manages: disabled, created by key.

A tenant is the partner every client, user and customer of it belongs to; auth owns the
list (the other services keep the tenant id on their rows). Clients keep the
Idempotency-Key they were created under and what that request asked for, and the time
they were disabled: a disabled client gets no token and its live ones are revoked.
Client-credentials access tokens are recorded (jti and expiry) so that disabling a
client can revoke the ones still live; rows past their expiry are purged with the rest.

Revision ID: 0015_auth_tenants
Revises: 0009_auth_tenant_emails
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_auth_tenants"
down_revision = "0009_auth_tenant_emails"
branch_labels = None
depends_on = None

SCHEMA = "auth"


def _created() -> sa.Column[sa.DateTime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("request_key", sa.Text, unique=True),
        sa.Column("request_fingerprint", sa.Text),
        _created(),
        sa.CheckConstraint("id ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="tenants_id_slug"),
        schema=SCHEMA,
    )
    op.add_column("clients", sa.Column("disabled_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column("clients", sa.Column("request_key", sa.Text), schema=SCHEMA)
    op.add_column("clients", sa.Column("request_fingerprint", sa.Text), schema=SCHEMA)
    op.create_unique_constraint("clients_request_key", "clients", ["request_key"], schema=SCHEMA)
    op.create_index("clients_tenant", "clients", ["tenant_id"], schema=SCHEMA)
    op.create_table(
        "client_tokens",
        sa.Column("jti", sa.Text, primary_key=True),
        sa.Column(
            "client_id",
            sa.Text,
            sa.ForeignKey(f"{SCHEMA}.clients.client_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _created(),
        schema=SCHEMA,
    )
    op.create_index("client_tokens_client", "client_tokens", ["client_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("client_tokens", schema=SCHEMA)
    op.drop_index("clients_tenant", "clients", schema=SCHEMA)
    op.drop_constraint("clients_request_key", "clients", schema=SCHEMA, type_="unique")
    for column in ("request_fingerprint", "request_key", "disabled_at"):
        op.drop_column("clients", column, schema=SCHEMA)
    op.drop_table("tenants", schema=SCHEMA)
