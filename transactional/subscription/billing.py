"""The subscription service's calls to billing: an upgrade's proration invoice, charged.

With its own OAuth client (invoices:write internal); billing answers 201 with the paid
invoice, or a problem that this turns into the client's answer (the plan unchanged).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from paywall.logs import get_logger
from paywall.service_client import ServiceClient, ServiceError, service_tokens
from paywall.settings import Settings
from transactional.common import errors
from transactional.common.deps import CurrentSettings
from transactional.common.errors import DomainError
from transactional.subscription.models import Plan, Subscription

log = get_logger(__name__)


class Billing:
    def __init__(self, settings: Settings) -> None:
        self.client = ServiceClient("billing", settings, service_tokens(settings, "subscription"))

    def charge_upgrade(
        self, key: str, sub: Subscription, old: Plan, new: Plan, at: datetime
    ) -> dict[str, Any] | None:
        """The paid proration invoice made under `key`; None when billing made none under
        it and none is asked (old is new: a lookup). Declined: 402, the plan stays."""
        body = {
            "subscription_id": str(sub.id),
            "customer_id": str(sub.customer_id),
            "tenant_id": sub.tenant_id,
            "currency": new.currency,
            "from_plan_id": old.id,
            "from_amount": old.amount,
            "plan_id": new.id,
            "amount": new.amount,
            "period_start": sub.current_period_start.isoformat(),
            "period_end": sub.current_period_end.isoformat(),
            "at": at.isoformat(),
        }
        try:
            status, answer = self.client.call(
                "POST", "/v1/prorations", json=body, idempotency_key=key
            )
        except ServiceError as exc:
            raise _unavailable() from exc
        if status == 201:
            return answer
        if status == 404 and old.id == new.id:
            return None
        kind = str(answer.get("type", ""))
        if status == 402:
            raise DomainError(
                errors.PAYMENT_DECLINED,
                "the upgrade's charge was declined; the subscription keeps its plan",
                decline_code=answer.get("decline_code"),
                invoice_id=(answer.get("invoice") or {}).get("id"),
            )
        if kind == errors.PRORATION_IN_PROGRESS.uri:
            raise DomainError(
                errors.PRORATION_IN_PROGRESS,
                str(answer.get("detail")),
                headers={"Retry-After": "2"},
            )
        if kind == errors.IDEMPOTENCY_KEY_REUSED.uri:
            raise DomainError(
                errors.IDEMPOTENCY_KEY_REUSED, "this Idempotency-Key asked for another plan"
            )
        raise _unavailable()

    def credit_cancellation(self, sub: Subscription, at: datetime) -> dict[str, Any] | None:
        """The credit note refunding the unused time of `sub`'s paid period (billing keys
        it by subscription and period: asked again, it answers the same note); None when
        billing has no paid invoice of the period or nothing is left of it."""
        body = {
            "subscription_id": str(sub.id),
            "period_start": sub.current_period_start.isoformat(),
            "period_end": sub.current_period_end.isoformat(),
            "at": min(max(at, sub.current_period_start), sub.current_period_end).isoformat(),
        }
        try:
            status, answer = self.client.call("POST", "/v1/cancellation_credits", json=body)
        except ServiceError as exc:
            raise _unavailable("the cancellation's refund") from exc
        if status == 201:
            return answer
        if status == 404:
            return None
        if status == 422:  # the refund was refused for good: the note is void, billing logs it
            log.error("subscription.cancel_refund_refused", subscription_id=str(sub.id))
            return None
        raise _unavailable("the cancellation's refund")


def _unavailable(what: str = "the upgrade's charge") -> DomainError:
    return DomainError(
        errors.DEPENDENCY_UNAVAILABLE,
        f"{what} could not be settled yet; retry with the same Idempotency-Key",
        headers={"Retry-After": "2"},
        dependency="billing-service",
    )


_clients: dict[tuple[str, str], Billing] = {}
_lock = threading.Lock()


def billing(settings: CurrentSettings) -> Billing:
    """A FastAPI dependency: one client (one cached token) per process."""
    key = (settings.service_url("billing"), settings.service_url("auth"))
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = Billing(settings)
    return found
