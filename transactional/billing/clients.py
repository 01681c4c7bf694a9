"""The billing service's calls to the others, with its own OAuth client: one HTTP client
and cached token per process and service asked.

The dependencies are async because they never block (a client is built once): a sync one
would cost each request a threadpool hand-off for a dictionary lookup."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends

from paywall.service_client import ServiceClient, service_tokens
from transactional.billing.collect import Collector
from transactional.common.deps import CurrentSettings, Db

_clients: dict[tuple[str, str], ServiceClient] = {}
_lock = threading.Lock()


def client(settings: CurrentSettings, service: str) -> ServiceClient:
    key = (service, settings.service_url(service))
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = ServiceClient(
                service, settings, service_tokens(settings, "billing")
            )
    return found


async def collector(settings: CurrentSettings, db: Db) -> Collector:
    return Collector(db, client(settings, "payment"))


async def subscriptions(settings: CurrentSettings) -> ServiceClient:
    return client(settings, "subscription")


async def payments(settings: CurrentSettings) -> ServiceClient:
    return client(settings, "payment")


async def customers(settings: CurrentSettings) -> ServiceClient:
    return client(settings, "customer")


Collecting = Annotated[Collector, Depends(collector)]
Subscriptions = Annotated[ServiceClient, Depends(subscriptions)]
Payments = Annotated[ServiceClient, Depends(payments)]
Customers = Annotated[ServiceClient, Depends(customers)]
