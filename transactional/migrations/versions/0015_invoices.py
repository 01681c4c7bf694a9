"""Billing becomes a service: invoices with totals, lines and a tenant; proration invoices.

- Invoices gain tenant_id, subtotal, discount, tax, total, amount_paid and amount_due, and
  a request key (the Idempotency-Key of the request that made a proration invoice, unique).
- Statuses are Stripe's: draft → open → paid | uncollectible | void. What was `past_due`
  (a failed charge in dunning) is `open` with its dunning row.
- Kind `proration`: an upgrade's invoice, one per plan change; `pending_action` gains
  `apply_upgrade` (the subscription service still to be told; the recovery sweep does).
  At most one proration in flight per subscription (a partial unique index): two racing
  upgrades cannot both be charged.
- invoice_lines: what an invoice is made of (kind, description, amount, period).
- billing.outbox: invoice events, like every service's.
Existing invoices get one line and totals equal to their amount.

Revision ID: 0015_invoices
Revises: 0008_billing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015_invoices"
down_revision = "0008_billing"
branch_labels = None
depends_on = None

STATUSES = ("draft", "open", "paid", "uncollectible", "void")
KINDS = ("renewal", "trial_conversion", "proration")
ACTIONS = ("renew", "mark_past_due", "reactivate", "expire", "apply_upgrade")
LINE_KINDS = ("subscription", "proration_credit", "proration_charge")
IN_FLIGHT = "kind = 'proration' AND (status IN ('draft', 'open') OR pending_action IS NOT NULL)"


def _money(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade() -> None:
    for name in ("invoice_status", "invoice_kind", "invoice_pending_action", "invoice_amount"):
        op.drop_constraint(name, "invoices", schema="billing")
    op.add_column("invoices", sa.Column("tenant_id", sa.Text), schema="billing")
    for name in ("subtotal", "discount", "tax", "total", "amount_paid", "amount_due"):
        op.add_column("invoices", _money(name), schema="billing")
    op.add_column("invoices", sa.Column("request_key", sa.Text), schema="billing")
    op.add_column("invoices", sa.Column("request_fingerprint", sa.Text), schema="billing")
    op.add_column("invoices", sa.Column("previous_plan_id", sa.Text), schema="billing")
    op.add_column(
        "invoices", sa.Column("finalized_at", sa.DateTime(timezone=True)), schema="billing"
    )
    op.add_column("invoices", sa.Column("voided_at", sa.DateTime(timezone=True)), schema="billing")
    # An operator's "pay now" under its Idempotency-Key: a retry re-asks the same attempt.
    op.add_column("attempts", sa.Column("request_key", sa.Text, unique=True), schema="billing")
    op.execute("UPDATE billing.invoices SET status = 'open' WHERE status = 'past_due'")
    op.execute(
        "UPDATE billing.invoices SET subtotal = amount, total = amount, "
        "amount_paid = CASE WHEN status = 'paid' THEN amount ELSE 0 END, "
        "amount_due = CASE WHEN status IN ('paid', 'void') THEN 0 ELSE amount END, "
        "finalized_at = created_at"
    )
    op.create_check_constraint(
        "invoice_status", "invoices", f"status IN {STATUSES!r}", schema="billing"
    )
    op.create_check_constraint("invoice_kind", "invoices", f"kind IN {KINDS!r}", schema="billing")
    op.create_check_constraint(
        "invoice_pending_action", "invoices", f"pending_action IN {ACTIONS!r}", schema="billing"
    )
    op.create_check_constraint(
        "invoice_amounts",
        "invoices",
        "amount >= 0 AND subtotal >= 0 AND total >= 0 AND amount_paid >= 0 AND amount_due >= 0 "
        "AND total = subtotal - discount + tax",
        schema="billing",
    )
    op.create_unique_constraint(
        "invoice_request_key", "invoices", ["request_key"], schema="billing"
    )
    op.create_index(
        "invoice_proration_in_flight",
        "invoices",
        ["subscription_id"],
        unique=True,
        schema="billing",
        postgresql_where=sa.text(IN_FLIGHT),
    )
    # Keyset pages of a tenant's invoices, newest first.
    op.create_index(
        "invoices_tenant_created", "invoices", ["tenant_id", "created_at", "id"], schema="billing"
    )
    op.create_index("invoices_customer", "invoices", ["customer_id"], schema="billing")
    op.create_table(
        "invoice_lines",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "invoice_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("billing.invoices.id"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("plan_id", sa.Text),
        # Signed: a credit line is negative; the invoice's total never is.
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN {LINE_KINDS!r}", name="invoice_line_kind"),
        sa.UniqueConstraint("invoice_id", "position", name="invoice_line_position"),
        schema="billing",
    )
    op.execute(
        "INSERT INTO billing.invoice_lines (id, invoice_id, position, kind, description, "
        "plan_id, amount, period_start, period_end) SELECT gen_random_uuid(), id, 1, "
        "'subscription', plan_id, plan_id, amount, period_start, period_end FROM billing.invoices"
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("aggregate_type", sa.Text, nullable=False),
        sa.Column("aggregate_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        schema="billing",
    )
    op.create_index(
        "outbox_unpublished",
        "outbox",
        ["seq"],
        schema="billing",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_index("outbox_created", "outbox", ["created_at"], schema="billing")


def downgrade() -> None:
    op.drop_table("outbox", schema="billing")
    op.drop_column("attempts", "request_key", schema="billing")
    op.drop_table("invoice_lines", schema="billing")
    for name in ("invoices_customer", "invoices_tenant_created", "invoice_proration_in_flight"):
        op.drop_index(name, "invoices", schema="billing")
    op.drop_constraint("invoice_request_key", "invoices", schema="billing")
    for name in ("invoice_amounts", "invoice_pending_action", "invoice_kind", "invoice_status"):
        op.drop_constraint(name, "invoices", schema="billing")
    op.execute(
        "UPDATE billing.invoices SET status = 'past_due' WHERE status = 'open' AND attempts > 0"
    )
    proration = "SELECT id FROM billing.invoices WHERE kind = 'proration'"
    for table in ("attempts", "dunning"):
        op.execute(f"DELETE FROM billing.{table} WHERE invoice_id IN ({proration})")
    op.execute("DELETE FROM billing.invoices WHERE kind = 'proration'")
    for name in ("voided_at", "finalized_at", "previous_plan_id", "request_fingerprint"):
        op.drop_column("invoices", name, schema="billing")
    for name in ("request_key", "amount_due", "amount_paid", "total", "tax", "discount"):
        op.drop_column("invoices", name, schema="billing")
    op.drop_column("invoices", "subtotal", schema="billing")
    op.drop_column("invoices", "tenant_id", schema="billing")
    op.create_check_constraint(
        "invoice_status",
        "invoices",
        "status IN ('open', 'paid', 'past_due', 'uncollectible', 'void')",
        schema="billing",
    )
    op.create_check_constraint(
        "invoice_kind", "invoices", "kind IN ('renewal', 'trial_conversion')", schema="billing"
    )
    op.create_check_constraint(
        "invoice_pending_action",
        "invoices",
        "pending_action IN ('renew', 'mark_past_due', 'reactivate', 'expire')",
        schema="billing",
    )
    op.create_check_constraint("invoice_amount", "invoices", "amount >= 0", schema="billing")
