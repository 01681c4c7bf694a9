"""Auth users are unique by email within a tenant, not across all tenants.

The same person signing up under two tenants is two users, each logging in through its
own tenant's clients. Tenant-less users are unique among themselves: NULLS NOT DISTINCT
(PostgreSQL 15+) makes one index say both. Emails are stored lower-cased (the
users_email_lower check), so the index on `email` is on the lower-cased address.

Downgrading fails while an email exists under two tenants, as it should: the old rule
cannot hold those rows.

Revision ID: 0009_auth_tenant_emails
Revises: 0002_auth
"""

from __future__ import annotations

from alembic import op

revision = "0009_auth_tenant_emails"
down_revision = "0002_auth"
branch_labels = None
depends_on = None

SCHEMA = "auth"


def upgrade() -> None:
    op.create_index(
        "users_tenant_email",
        "users",
        ["tenant_id", "email"],
        unique=True,
        schema=SCHEMA,
        postgresql_nulls_not_distinct=True,
    )
    op.drop_constraint("users_email_key", "users", schema=SCHEMA, type_="unique")
    # Logins look a user up by email, then keep the one of the client's tenant (`tenant_id
    # IS NOT DISTINCT FROM :t`, which no index serves): the email narrows it to a few rows.
    op.create_index("users_email", "users", ["email"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("users_email", "users", schema=SCHEMA)
    op.create_unique_constraint("users_email_key", "users", ["email"], schema=SCHEMA)
    op.drop_index("users_tenant_email", "users", schema=SCHEMA)
