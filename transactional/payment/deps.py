"""What the routes need, as FastAPI dependencies (tests override `current_settings`)."""

from __future__ import annotations

import threading

from fastapi import Depends
from sqlalchemy import Engine

from paywall.clients import stripe_client
from paywall.db import engine
from paywall.settings import Settings, get_settings
from transactional.common.customer_lookup import CustomerLookup, customer_lookup
from transactional.payment.stripe_gateway import Gateway

_gateways: dict[tuple[str | None, str | None], Gateway] = {}
_gateways_lock = threading.Lock()


def current_settings() -> Settings:
    return get_settings()


def database(settings: Settings = Depends(current_settings)) -> Engine:
    return engine(settings)


def gateway(settings: Settings = Depends(current_settings)) -> Gateway:
    """One Gateway per Stripe key and address, shared by every request.

    A StripeClient per request built a TLS context and an HTTP session each time and
    opened a new connection for every Stripe call; the shared one keeps an HTTP session
    per thread (stripe's RequestsClient is thread-local), so connections are reused.
    """
    secret = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else None
    key = (secret, settings.stripe_api_base)
    with _gateways_lock:
        found = _gateways.get(key)
        if found is None:
            found = Gateway(stripe_client(settings), local=settings.stripe_is_local)
            _gateways[key] = found
    return found


def customers(settings: Settings = Depends(current_settings)) -> CustomerLookup:
    """The customer service, asked with the payment service's own client."""
    return customer_lookup(settings, *settings.service_client("payment"))
