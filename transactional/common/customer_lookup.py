"""The customer another service's request names, checked against the caller.

Subscriptions and payment accounts name a customer that the customer service owns; no
service reads another's tables, so each asks the customer service over HTTP (one GET,
answered from its cache) with its own OAuth client, as an internal caller that may read
any customer, and then applies the tenancy rule itself.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from paywall.logs import get_logger
from paywall.service_client import ServiceClient, ServiceError, service_tokens
from paywall.settings import Settings
from transactional.common import tenancy
from transactional.common.deps import CurrentSettings
from transactional.common.errors import DEPENDENCY_UNAVAILABLE, DomainError
from transactional.common.security import Principal

log = get_logger(__name__)


@dataclass(frozen=True)
class CustomerRef:
    """A live customer as other services see it: who it is and whose it is."""

    id: str
    tenant_id: str | None


class CustomerLookup:
    def __init__(self, settings: Settings, service: str) -> None:
        self.client = ServiceClient("customer", settings, service_tokens(settings, service))

    def live(self, customer_id: str) -> CustomerRef | None:
        """The customer, or None when it does not exist or was deleted."""
        try:
            canonical = uuid.UUID(customer_id)
        except ValueError:
            return None  # customer ids are UUIDs: anything else names nobody
        try:
            status, body = self.client.call("GET", f"/v1/customers/{canonical}")
        except ServiceError as exc:
            raise _unavailable(exc.status) from None
        if status == 404:
            return None
        if status != 200:
            raise _unavailable(status)
        return CustomerRef(str(body["id"]), body.get("tenant_id"))

    def owned(
        self, principal: Principal, customer_id: str, tenant_id: str | None = None
    ) -> CustomerRef:
        """The live customer `principal` may act for, in `tenant_id` when given; else 404.

        Naming another tenant than one's own is for internal callers only (403 first).
        """
        tenancy.tenant_for(principal, tenant_id)
        customer = self.live(customer_id)
        if (
            customer is None
            or not tenancy.owns(principal, customer.id, customer.tenant_id)
            or (tenant_id is not None and tenant_id != customer.tenant_id)
        ):
            raise tenancy.not_found("customer", customer_id)
        return customer


def _unavailable(status: int) -> DomainError:
    log.warning("customer_lookup.failed", status=status)
    return DomainError(
        DEPENDENCY_UNAVAILABLE,
        "the customer service could not be asked; retry shortly",
        headers={"Retry-After": "2"},
        dependency="customer-service",
    )


_lookups: dict[tuple[str, str, str], CustomerLookup] = {}
_lookups_lock = threading.Lock()


def customer_lookup(settings: Settings, service: str) -> CustomerLookup:
    """One lookup (one HTTP client, one cached token) per process and asking service."""
    client_id, _ = settings.service_client(service)
    key = (settings.service_url("customer"), settings.service_url("auth"), client_id)
    with _lookups_lock:
        found = _lookups.get(key)
        if found is None:
            found = _lookups[key] = CustomerLookup(settings, service)
    return found


def as_service(service: str) -> Callable[[CurrentSettings], Coroutine[Any, Any, CustomerLookup]]:
    """A FastAPI dependency: the lookup, asked with `service`'s own OAuth client; async, as
    it never blocks (built once per process), so no request waits for a thread for it."""

    async def dependency(settings: CurrentSettings) -> CustomerLookup:
        return customer_lookup(settings, service)

    return dependency
