"""What the routes need, as FastAPI dependencies (tests override `current_settings`)."""

from __future__ import annotations

from fastapi import Depends
from sqlalchemy import Engine

from paywall.clients import stripe_client
from paywall.db import engine
from paywall.settings import Settings, get_settings
from transactional.payment.stripe_gateway import Gateway


def current_settings() -> Settings:
    return get_settings()


def database(settings: Settings = Depends(current_settings)) -> Engine:
    return engine(settings)


def gateway(settings: Settings = Depends(current_settings)) -> Gateway:
    return Gateway(stripe_client(settings), local=settings.stripe_is_local)
