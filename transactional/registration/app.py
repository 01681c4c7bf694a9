"""The registration service as its own app (its own image entry point)."""

from __future__ import annotations

from sqlalchemy import text

from paywall.db import engine
from paywall.settings import get_settings
from transactional.common.app import create_app
from transactional.registration.routes import router


def _database() -> None:
    with engine(get_settings()).connect() as conn:
        conn.execute(text("SELECT 1 FROM registration.registrations LIMIT 1"))


READY_CHECKS = {"postgres": _database}
ROUTERS = [router]
app = create_app("registration", ROUTERS, READY_CHECKS)
