"""The payment service as its own app (its own image entry point)."""

from __future__ import annotations

from sqlalchemy import text

from paywall.db import engine
from paywall.settings import get_settings
from transactional.common.app import create_app
from transactional.payment.routes import router
from transactional.payment.webhooks import webhook_router


def _database() -> None:
    with engine(get_settings()).connect() as conn:
        conn.execute(text("SELECT 1 FROM payment.payments LIMIT 1"))


# Stripe is not a readiness check: during a Stripe outage reads and webhooks still work,
# and payments answer 503 with a safe retry, which beats taking every pod out of service.
READY_CHECKS = {"postgres": _database}
ROUTERS = [router, webhook_router]
app = create_app(
    "payment",
    ROUTERS,
    READY_CHECKS,
    description="Stripe customers, off-session charges, refunds and Stripe webhooks.",
)
