"""customer.customers gains an optional billing address (country and region): what billing
chooses a tax rate by.

Revision ID: 0023a_customer_address
Revises: 0004_customer
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023a_customer_address"
down_revision = "0004_customer"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("address_country", sa.String(2)), schema="customer")
    op.add_column("customers", sa.Column("address_region", sa.Text), schema="customer")


def downgrade() -> None:
    op.drop_column("customers", "address_region", schema="customer")
    op.drop_column("customers", "address_country", schema="customer")
