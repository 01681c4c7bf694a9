"""Credit notes and the customer credit balance.

- credit_notes: money given back on a paid invoice, refunded to the card (through the
  payment service, under the key `credit_note:<id>`) or kept as customer credit. A refund
  whose outcome is not known yet stays `pending` (and counts against what may still be
  credited) until a retry or the recovery sweep finishes it; a refund the processor
  refused makes the note `void`. `request_key` (unique) is the Idempotency-Key of the
  request that made it, or the cancellation's own key (`cancel:<subscription>:<period>`).
- credit_note_lines: which invoice lines a note credits, and how much of each.
- customer_balance: a ledger, one row per movement (credit granted by a note is positive,
  credit an invoice consumed is negative); the balance is the sum per customer and
  currency. One consumption per invoice (a unique index): a retried collection cannot
  take the credit twice.
- invoices.credit_applied: the customer credit the invoice consumed at collection
  (amount_due = total - credit_applied until paid).

Revision ID: 0022_credit_notes
Revises: 0021_billing_due_seen
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022_credit_notes"
down_revision = "0021_billing_due_seen"
branch_labels = None
depends_on = None

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
STATUSES = ("pending", "issued", "void")
SETTLEMENTS = ("refund", "customer_balance")


def _uuid(name: str, *args: object, **kw: object) -> sa.Column:
    return sa.Column(name, postgresql.UUID(as_uuid=True), *args, **kw)  # type: ignore[arg-type]


def _when(name: str, nullable: bool = False) -> sa.Column:
    default = None if nullable else sa.func.now()
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def upgrade() -> None:
    op.add_column(
        "invoices",
        sa.Column("credit_applied", sa.BigInteger, nullable=False, server_default="0"),
        schema="billing",
    )
    op.create_check_constraint(
        "invoice_credit_applied",
        "invoices",
        "credit_applied >= 0 AND credit_applied <= total",
        schema="billing",
    )
    op.create_table(
        "credit_notes",
        _uuid("id", primary_key=True),
        _uuid("invoice_id", sa.ForeignKey("billing.invoices.id"), nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("memo", sa.Text),
        sa.Column("settlement", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False, server_default="api"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("refund_key", sa.Text),
        sa.Column("refund_id", sa.Text),
        sa.Column("failure", sa.Text),
        # A prorated cancellation's note until the subscription is known canceled: the
        # recovery sweep cancels it if the subscription service's commit never happened.
        sa.Column("pending_action", sa.Text),
        sa.Column("request_key", sa.Text, nullable=False, unique=True),
        sa.Column("request_fingerprint", sa.Text, nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("issued_at", nullable=True),
        sa.CheckConstraint("amount > 0", name="credit_note_amount"),
        sa.CheckConstraint(f"reason IN {REASONS!r}", name="credit_note_reason"),
        sa.CheckConstraint(f"status IN {STATUSES!r}", name="credit_note_status"),
        sa.CheckConstraint(f"settlement IN {SETTLEMENTS!r}", name="credit_note_settlement"),
        sa.CheckConstraint(
            "pending_action IN ('cancel_subscription')", name="credit_note_pending_action"
        ),
        schema="billing",
    )
    op.create_index("credit_notes_invoice", "credit_notes", ["invoice_id"], schema="billing")
    op.create_index(
        "credit_notes_customer_created",
        "credit_notes",
        ["customer_id", "created_at"],
        schema="billing",
    )
    op.create_index(
        "credit_notes_pending",
        "credit_notes",
        ["updated_at"],
        schema="billing",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "credit_note_lines",
        _uuid("credit_note_id", sa.ForeignKey("billing.credit_notes.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        _uuid("invoice_line_id", sa.ForeignKey("billing.invoice_lines.id")),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount > 0", name="credit_note_line_amount"),
        schema="billing",
    )
    op.create_table(
        "customer_balance",
        _uuid("id", primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        _uuid("credit_note_id", sa.ForeignKey("billing.credit_notes.id"), unique=True),
        _uuid("invoice_id", sa.ForeignKey("billing.invoices.id"), unique=True),
        _when("created_at"),
        sa.CheckConstraint(
            "(amount > 0 AND credit_note_id IS NOT NULL AND invoice_id IS NULL) OR "
            "(amount < 0 AND invoice_id IS NOT NULL AND credit_note_id IS NULL)",
            name="customer_balance_movement",
        ),
        schema="billing",
    )
    op.create_index(
        "customer_balance_customer",
        "customer_balance",
        ["customer_id", "currency"],
        schema="billing",
    )


def downgrade() -> None:
    op.drop_table("customer_balance", schema="billing")
    op.drop_table("credit_note_lines", schema="billing")
    op.drop_table("credit_notes", schema="billing")
    op.drop_constraint("invoice_credit_applied", "invoices", schema="billing")
    op.drop_column("invoices", "credit_applied", schema="billing")
