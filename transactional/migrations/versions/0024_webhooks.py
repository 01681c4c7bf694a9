"""Outbound webhooks: partners' endpoints, the events they may see, deliveries and attempts.

`events` holds every partner-facing event once (by event id) with its tenant: the
webhook consumer writes it, `GET /v1/events` pages it, and deliveries point at it. A
payment event names no tenant; it waits (tenant NULL) until a customer event says whose
customer it is (`customer_tenants`). `deliveries` is one row per event and endpoint (a
replay adds another); the worker orders them per `ordering_key` (the subscription, else
the customer). `attempts` is the delivery log: one row per POST, never the secret.

Its own branch from the service schemas: no other service's tables are touched.

Revision ID: 0024_webhooks
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024_webhooks"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "webhooks"


def _now(name: str) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.create_table(
        "endpoints",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        # Empty: every partner event; else exact types or `prefix.*`.
        sa.Column("event_types", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("contact_email", sa.Text),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("disabled_reason", sa.Text),
        # The streak of failed attempts since the last success: what disables an endpoint.
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("request_key", sa.Text, unique=True),
        sa.Column("request_fingerprint", sa.Text),
        _now("created_at"),
        _now("updated_at"),
        schema=SCHEMA,
    )
    op.create_index("endpoints_tenant", "endpoints", ["tenant_id", "created_at"], schema=SCHEMA)
    op.create_table(
        "customer_tenants",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "events",
        sa.Column("event_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("customer_id", sa.Text),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("envelope", postgresql.JSONB, nullable=False),
        _now("received_at"),
        schema=SCHEMA,
    )
    op.create_index(
        "events_tenant", "events", ["tenant_id", "occurred_at", "event_id"], schema=SCHEMA
    )
    op.create_index(
        "events_unrouted",
        "events",
        ["customer_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("tenant_id IS NULL"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column(
            "endpoint_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "event_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.events.event_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ordering_key", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replay", sa.Boolean, nullable=False, server_default=sa.false()),
        # pending -> delivered | failed (gave up after the schedule)
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        _now("created_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="deliveries_status"
        ),
        schema=SCHEMA,
    )
    # One first delivery per event and endpoint, whatever the redeliveries; replays add rows.
    op.create_index(
        "deliveries_once",
        "deliveries",
        ["endpoint_id", "event_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("NOT replay"),
    )
    op.create_index(
        "deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "deliveries_order",
        "deliveries",
        ["endpoint_id", "ordering_key", "occurred_at", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column(
            "delivery_id",
            sa.BigInteger,
            sa.ForeignKey(f"{SCHEMA}.deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("endpoint_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        _now("attempted_at"),
        schema=SCHEMA,
    )
    op.create_index("attempts_endpoint", "attempts", ["endpoint_id", "attempted_at"], schema=SCHEMA)


def downgrade() -> None:
    op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
