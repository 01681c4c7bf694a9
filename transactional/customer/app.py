"""The customer service as its own app (its own image entry point)."""

from __future__ import annotations

from paywall.db import engine
from paywall.settings import get_settings
from transactional.common.app import create_app
from transactional.customer import repository
from transactional.customer.routes import router


def _database() -> None:
    with engine(get_settings()).connect() as conn:
        repository.check(conn)


# Redis is not a readiness check: the service serves from Postgres without it.
READY_CHECKS = {"postgres": _database}
ROUTERS = [router]
app = create_app("customer", ROUTERS, READY_CHECKS)
