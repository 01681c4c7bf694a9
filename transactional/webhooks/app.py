"""The webhooks service as its own app (its own image entry point)."""

from __future__ import annotations

from paywall.db import engine
from paywall.settings import get_settings
from transactional.common.app import create_app
from transactional.webhooks import repository
from transactional.webhooks.routes import events_router, router


def _database() -> None:
    with engine(get_settings()).connect() as conn:
        repository.check(conn)


READY_CHECKS = {"postgres": _database}
ROUTERS = [router, events_router]
app = create_app("webhooks", ROUTERS, READY_CHECKS)
