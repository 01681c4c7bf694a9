"""Coupons, discounts and tax rates; invoices with discount and tax lines.

- billing.coupons: a tenant's coupons (percent or fixed amount off, once / repeating /
  forever, max redemptions, redeem_by); `times_redeemed` is raised by one conditional
  UPDATE, so two redemptions racing for the last slot cannot both win.
- billing.discounts: a coupon applied to a subscription (one per subscription), from
  `start`, for `periods` invoices (NULL: forever).
- billing.discount_uses: the periods a discount was spent on, one row per (discount,
  period start): a re-run of a billing day, or a retried first charge, spends nothing
  twice, and a `repeating` coupon for N periods discounts exactly N invoices.
- billing.tax_rates: a tenant's rates by country (and optional region), exclusive or
  inclusive, in basis points (2000 = 20.00 %).
- invoices: tax_inclusive, the discount and tax rate applied; the totals rule becomes
  total = subtotal - discount + (exclusive tax). invoice_lines: kind `discount`, each
  line's tax_amount.

Revision ID: 0023_coupons_tax
Revises: 0021_billing_due_seen
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0023_coupons_tax"
down_revision = "0021_billing_due_seen"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)
OLD_LINE_KINDS = ("subscription", "proration_credit", "proration_charge")
LINE_KINDS = (*OLD_LINE_KINDS, "discount")
OLD_AMOUNTS = (
    "amount >= 0 AND subtotal >= 0 AND total >= 0 AND amount_paid >= 0 AND amount_due >= 0 "
    "AND total = subtotal - discount + tax"
)
AMOUNTS = (
    "amount >= 0 AND subtotal >= 0 AND total >= 0 AND amount_paid >= 0 AND amount_due >= 0 "
    "AND discount >= 0 AND tax >= 0 "
    "AND total = subtotal - discount + CASE WHEN tax_inclusive THEN 0 ELSE tax END"
)


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "coupons",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("percent_off_bp", sa.Integer),
        sa.Column("amount_off", sa.BigInteger),
        sa.Column("currency", sa.String(3)),
        sa.Column("duration", sa.Text, nullable=False),
        sa.Column("duration_periods", sa.Integer),
        sa.Column("max_redemptions", sa.Integer),
        sa.Column("times_redeemed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("redeem_by", sa.DateTime(timezone=True)),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        sa.Column("request_key", sa.Text, unique=True),
        sa.Column("request_fingerprint", sa.Text),
        _now("created_at"),
        sa.CheckConstraint(
            "(percent_off_bp IS NOT NULL AND amount_off IS NULL AND currency IS NULL "
            "AND percent_off_bp BETWEEN 1 AND 10000) OR (percent_off_bp IS NULL "
            "AND amount_off > 0 AND currency IS NOT NULL)",
            name="coupon_off",
        ),
        sa.CheckConstraint(
            "(duration = 'repeating' AND duration_periods > 0) OR "
            "(duration IN ('once', 'forever') AND duration_periods IS NULL)",
            name="coupon_duration",
        ),
        sa.CheckConstraint(
            "max_redemptions IS NULL OR times_redeemed <= max_redemptions",
            name="coupon_redemptions",
        ),
        schema="billing",
    )
    # A code names one coupon per tenant (archived ones too: a code is never reused).
    op.execute(
        "CREATE UNIQUE INDEX coupons_tenant_code ON billing.coupons "
        "(coalesce(tenant_id, ''), lower(code))"
    )
    op.create_index(
        "coupons_tenant_created", "coupons", ["tenant_id", "created_at", "id"], schema="billing"
    )
    op.create_table(
        "discounts",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("subscription_id", UUID, nullable=False, unique=True),
        sa.Column("coupon_id", UUID, sa.ForeignKey("billing.coupons.id"), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("periods", sa.Integer),
        sa.Column("request_key", sa.Text, unique=True),
        sa.Column("request_fingerprint", sa.Text),
        _now("created_at"),
        schema="billing",
    )
    op.create_table(
        "discount_uses",
        sa.Column("discount_id", UUID, sa.ForeignKey("billing.discounts.id"), primary_key=True),
        sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("invoice_id", UUID),
        _now("used_at"),
        schema="billing",
    )
    op.create_table(
        "tax_rates",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("region", sa.Text),
        sa.Column("percentage_bp", sa.Integer, nullable=False),
        sa.Column("inclusive", sa.Boolean, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        sa.Column("request_key", sa.Text, unique=True),
        sa.Column("request_fingerprint", sa.Text),
        _now("created_at"),
        sa.CheckConstraint("percentage_bp BETWEEN 0 AND 10000", name="tax_rate_percentage"),
        schema="billing",
    )
    # One live rate per tenant and place; a new rate replaces it after the old is archived.
    op.execute(
        "CREATE UNIQUE INDEX tax_rates_place ON billing.tax_rates "
        "(coalesce(tenant_id, ''), country, coalesce(region, '')) WHERE archived_at IS NULL"
    )
    op.add_column(
        "invoices",
        sa.Column("tax_inclusive", sa.Boolean, nullable=False, server_default=sa.false()),
        schema="billing",
    )
    op.add_column("invoices", sa.Column("discount_id", UUID), schema="billing")
    op.add_column("invoices", sa.Column("tax_rate_id", UUID), schema="billing")
    op.drop_constraint("invoice_amounts", "invoices", schema="billing")
    op.create_check_constraint("invoice_amounts", "invoices", AMOUNTS, schema="billing")
    op.add_column(
        "invoice_lines",
        sa.Column("tax_amount", sa.BigInteger, nullable=False, server_default="0"),
        schema="billing",
    )
    op.drop_constraint("invoice_line_kind", "invoice_lines", schema="billing")
    op.create_check_constraint(
        "invoice_line_kind", "invoice_lines", f"kind IN {LINE_KINDS!r}", schema="billing"
    )


def downgrade() -> None:
    op.execute("DELETE FROM billing.invoice_lines WHERE kind = 'discount'")
    op.drop_constraint("invoice_line_kind", "invoice_lines", schema="billing")
    op.create_check_constraint(
        "invoice_line_kind", "invoice_lines", f"kind IN {OLD_LINE_KINDS!r}", schema="billing"
    )
    op.drop_column("invoice_lines", "tax_amount", schema="billing")
    op.drop_constraint("invoice_amounts", "invoices", schema="billing")
    op.create_check_constraint("invoice_amounts", "invoices", OLD_AMOUNTS, schema="billing")
    for column in ("tax_rate_id", "discount_id", "tax_inclusive"):
        op.drop_column("invoices", column, schema="billing")
    for table in ("tax_rates", "discount_uses", "discounts", "coupons"):
        op.drop_table(table, schema="billing")
