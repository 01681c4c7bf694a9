"""The auth service as its own ASGI app: `uvicorn transactional.auth.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from paywall.db import engine
from paywall.health import check_postgres
from paywall.logs import get_logger
from paywall.settings import get_settings
from transactional.auth import keys, revocation_sync
from transactional.auth.clients import ensure_default_clients
from transactional.auth.routes import router
from transactional.common.app import create_app

__all__ = ["app", "bootstrap", "router"]
log = get_logger(__name__)


def bootstrap() -> None:
    """Default clients and a signing key; idempotent, for app startup or `paywall` ops."""
    settings = get_settings()
    with engine(settings).begin() as conn:
        ensure_default_clients(conn, settings)
        keys.active_key(conn)


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    try:
        await run_in_threadpool(bootstrap)
    except Exception as exc:
        # Not fatal: readiness reports the database, and every path creates what it
        # needs on first use except the default clients, which the next start adds.
        log.warning("auth.bootstrap_failed", error=str(exc).splitlines()[0][:200])
    with revocation_sync.running():
        yield


def _postgres() -> None:
    check_postgres(get_settings())


ready_checks = {"postgres": _postgres}
app = create_app(
    "auth",
    [router],
    ready_checks,
    description="OAuth 2.0 / OpenID Connect provider",
    lifespan=_lifespan,
)

# What `transactional.services.combined_app` mounts when every service shares a process.
ROUTERS = [router]
READY_CHECKS = ready_checks
STARTUP = [bootstrap]
BACKGROUND = [revocation_sync.running]
