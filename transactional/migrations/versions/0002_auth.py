"""Auth service tables: signing keys, clients, users, codes, refresh tokens, revocations.

Revision ID: 0002_auth
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_auth"
down_revision = "0001"
branch_labels = ("auth",)
depends_on = None

SCHEMA = "auth"
TEXT_ARRAY = postgresql.ARRAY(sa.Text)


def _now() -> sa.Column[sa.DateTime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text, primary_key=True),
        sa.Column("alg", sa.Text, nullable=False),
        # The private JWK. Production would keep this in a KMS; the table is the local store.
        sa.Column("private_jwk", postgresql.JSONB, nullable=False),
        _now(),
        # A retired key signs nothing new but stays in the JWKS until its tokens expire.
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_table(
        "clients",
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("secret_hash", sa.Text),  # null: a public client (SPA, mobile)
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("redirect_uris", TEXT_ARRAY, nullable=False, server_default="{}"),
        sa.Column("grant_types", TEXT_ARRAY, nullable=False, server_default="{}"),
        sa.Column("scopes", TEXT_ARRAY, nullable=False, server_default="{}"),
        sa.Column("tenant_id", sa.Text),
        _now(),
        schema=SCHEMA,
    )
    op.create_table(
        "users",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text),
        sa.Column("tenant_id", sa.Text),
        _now(),
        sa.CheckConstraint("email = lower(email)", name="users_email_lower"),
        schema=SCHEMA,
    )
    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.Text, primary_key=True),
        sa.Column(
            "client_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.clients.client_id"), nullable=False
        ),
        sa.Column(
            "user_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.Text),  # S256 only; null for a confidential client
        sa.Column("scopes", TEXT_ARRAY, nullable=False),
        sa.Column("nonce", sa.Text),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        # The refresh family the code was exchanged for: a replayed code revokes it.
        sa.Column("family_id", postgresql.UUID(as_uuid=True)),
        _now(),
        schema=SCHEMA,
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column("family_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "client_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.clients.client_id"), nullable=False
        ),
        sa.Column(
            "user_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("scopes", TEXT_ARRAY, nullable=False),
        # The access token issued alongside, so revoking the family revokes it as well.
        sa.Column("access_jti", sa.Text),
        sa.Column("access_expires_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),  # set when rotated
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        _now(),
        schema=SCHEMA,
    )
    op.create_index("refresh_tokens_family", "refresh_tokens", ["family_id"], schema=SCHEMA)
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.Text, primary_key=True),
        # Rows past this are useless (the token is expired anyway) and may be purged.
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _now(),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "revoked_tokens",
        "refresh_tokens",
        "authorization_codes",
        "users",
        "clients",
        "signing_keys",
    ):
        op.drop_table(table, schema=SCHEMA)
