"""Every service by name, and the all-in-one app `paywall serve` runs locally."""

from __future__ import annotations

import importlib
from types import ModuleType

from fastapi import FastAPI

from transactional.common.app import create_app

SERVICES = ("auth", "customer", "subscription", "payment", "registration")


def service_module(name: str) -> ModuleType:
    if name not in SERVICES:
        raise KeyError(name)
    return importlib.import_module(f"transactional.{name}.app")


def service_app(name: str) -> FastAPI:
    """One service's own app, as its container runs it."""
    return service_module(name).app  # type: ignore[no-any-return]


def combined_app() -> FastAPI:
    """All services in one process; their paths do not overlap, so routers simply stack."""
    routers, checks = [], {}
    for name in SERVICES:
        module = service_module(name)
        routers.extend(module.ROUTERS)
        checks.update({f"{name}:{check}": fn for check, fn in module.READY_CHECKS.items()})
    return create_app(
        "paywall", routers, checks, description="All paywall services in one process (local use)."
    )
