"""The billing service as its own app (its own image entry point)."""

from __future__ import annotations

from sqlalchemy import text

from paywall.db import engine
from paywall.settings import get_settings
from transactional.billing import credit_routes
from transactional.billing.coupon_routes import router as coupon_router
from transactional.billing.routes import router
from transactional.common.app import create_app


def _database() -> None:
    with engine(get_settings()).connect() as conn:
        conn.execute(text("SELECT 1 FROM billing.invoices LIMIT 1"))


READY_CHECKS = {"postgres": _database}
ROUTERS = [router, credit_routes.router, coupon_router]
app = create_app("billing", ROUTERS, READY_CHECKS)
