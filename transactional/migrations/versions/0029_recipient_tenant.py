"""Recipients know their tenant: a notice's link into the customer portal opens the
sign-in of the customer's tenant (a login finds only its client's tenant's users).

Revision ID: 0029_recipient_tenant
Revises: 0020_audit_forwarding
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029_recipient_tenant"
down_revision = "0020_audit_forwarding"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by the next customer.created/updated event; until then a link opens the
    # platform's own sign-in, where the customer can pick nothing wrong: it finds no one.
    op.add_column("recipients", sa.Column("tenant_id", sa.Text), schema="notification")


def downgrade() -> None:
    op.drop_column("recipients", "tenant_id", schema="notification")
