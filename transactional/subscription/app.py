"""The subscription service as its own app (its own image entry point)."""

from __future__ import annotations

from sqlalchemy import text

from paywall.db import engine
from paywall.settings import get_settings
from transactional.common.app import create_app
from transactional.portal.routes import router as portal
from transactional.subscription.routes import router


def _database() -> None:
    with engine(get_settings()).connect() as conn:
        conn.execute(text("SELECT 1 FROM subscription.plans LIMIT 1"))


READY_CHECKS = {"postgres": _database}
# The customer portal's pages are served here: a customer's subscription is what they show.
ROUTERS = [router, portal]
app = create_app("subscription", ROUTERS, READY_CHECKS)
