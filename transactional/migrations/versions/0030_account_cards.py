"""What a customer's default card is, as the customer may be shown it: brand, last four
digits and expiry, copied from Stripe's PaymentMethod when it is attached (a card's last
four digits are not cardholder data that PCI DSS forbids keeping).

Revision ID: 0030_account_cards
Revises: 0025_erasure
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030_account_cards"
down_revision = "0025_erasure"
branch_labels = None
depends_on = None

COLUMNS = ("card_brand", "card_last4", "card_exp_month", "card_exp_year")


def upgrade() -> None:
    op.add_column("accounts", sa.Column("card_brand", sa.Text), schema="payment")
    op.add_column("accounts", sa.Column("card_last4", sa.String(4)), schema="payment")
    op.add_column("accounts", sa.Column("card_exp_month", sa.SmallInteger), schema="payment")
    op.add_column("accounts", sa.Column("card_exp_year", sa.SmallInteger), schema="payment")


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_column("accounts", column, schema="payment")
