"""Every service by name, and the all-in-one app `paywall serve` runs locally."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    # Not at run time: `paywall serve`'s supervisor imports this module for SERVICES and
    # must not register metrics itself (each worker does, under multiprocess mode).
    from transactional.common.app import ReadyCheck

SERVICES = (
    "auth",
    "customer",
    "subscription",
    "payment",
    "registration",
    "billing",
    "webhooks",
)


def service_module(name: str) -> ModuleType:
    if name not in SERVICES:
        raise KeyError(name)
    return importlib.import_module(f"transactional.{name}.app")


def service_app(name: str) -> FastAPI:
    """One service's own app, as its container runs it."""
    return service_module(name).app  # type: ignore[no-any-return]


def combined_app() -> FastAPI:
    """All services in one process; their paths do not overlap, so routers simply stack.

    Each service module exports ROUTERS and READY_CHECKS, and may export STARTUP: blocking
    callables its own app runs at start (auth's default clients and signing key), and
    BACKGROUND: context managers its own app keeps entered while it serves (auth's
    revocation sync).
    """
    from transactional.common.app import create_app

    routers: list[APIRouter] = []
    checks: dict[str, ReadyCheck] = {}
    startup: list[Callable[[], None]] = []
    background: list[Callable[[], AbstractContextManager[object]]] = []
    for name in SERVICES:
        module = service_module(name)
        routers.extend(module.ROUTERS)
        checks.update({f"{name}:{check}": fn for check, fn in module.READY_CHECKS.items()})
        startup.extend(getattr(module, "STARTUP", []))
        background.extend(getattr(module, "BACKGROUND", []))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for step in startup:
            await run_in_threadpool(step)
        with ExitStack() as stack:
            for task in background:
                stack.enter_context(task())
            yield

    return create_app(
        "paywall",
        routers,
        checks,
        lifespan=lifespan,
        description="All paywall services in one process (local use).",
    )
