"""The signup saga: customer → (login ‖ Stripe customer + card) → subscription → first charge.

Each step is idempotent on the service that performs it, so a retried signup resumes
where the last attempt stopped. A declined card is compensated: the incomplete
subscription is canceled, nothing stays active, and the customer may try again.
"""

from __future__ import annotations

import contextvars
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from paywall.db import engine
from paywall.logs import get_logger
from paywall.settings import Settings
from transactional.common.security import Principal
from transactional.common.service_client import ServiceClient, ServiceError, TokenSource
from transactional.registration import keys
from transactional.registration.models import (
    PaymentSummary,
    Registration,
    RegistrationRequest,
)

log = get_logger(__name__)
SCOPES = (
    "customers:write customers:read users:write payments:write subscriptions:write "
    "subscriptions:read internal"
)


class Declined(Exception):
    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail", "card declined"))
        self.problem = problem


class AlreadyRegistered(Exception):
    pass


class Rejected(Exception):
    """A downstream service refused the caller's input: pass its problem on as is."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail", "rejected"))
        self.status = status
        self.problem = problem


CLIENT_ERRORS = {400, 404, 409, 422}
# Calls a saga makes beside its own thread; each waits only on another service, never on
# this pool, so a full pool delays a signup but cannot deadlock it.
_SIDE_CALLS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="saga-side")


def _check(service: str, status: int, body: dict[str, Any], ok: set[int]) -> dict[str, Any]:
    if status in ok:
        return body
    if status == 402:
        raise Declined(body)
    if status in CLIENT_ERRORS:
        raise Rejected(status, body)
    raise ServiceError(service, status, body)


@dataclass
class Services:
    customer: ServiceClient
    auth: ServiceClient
    payment: ServiceClient
    subscription: ServiceClient

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        tokens = TokenSource(
            settings, SCOPES, settings.registration_client_id, settings.registration_client_secret
        )
        return cls(
            *(
                ServiceClient(name, settings, tokens)
                for name in ("customer", "auth", "payment", "subscription")
            )
        )


def run(
    services: Services,
    settings: Settings,
    reg_id: uuid.UUID,
    body: RegistrationRequest,
    principal: Principal,
) -> Registration:
    tenant = principal.tenant_id
    plans = services.subscription.expect({200}, "GET", "/v1/plans")["data"]
    price = next((p for p in plans if p["id"] == body.plan_id), None)
    if price is None:
        raise Rejected(422, {"title": "Unknown Plan", "detail": f"no plan {body.plan_id!r}"})
    customer_id = _customer(services, body, tenant)
    _step(settings, reg_id, "customer", customer_id=customer_id)

    # The login and the payment account do not depend on each other: the login's password
    # hash (CPU, off the GIL) overlaps the Stripe round trips. Both finish before the
    # subscription exists, as when they ran one after the other.
    login = _SIDE_CALLS.submit(
        contextvars.copy_context().run, _login, services, body, customer_id, tenant
    )
    try:
        _payment_method(services, body, customer_id, tenant)
    except BaseException:
        login.result()  # a failed login is reported first, as when it ran first
        raise
    login.result()
    _step(settings, reg_id, "payment_method")

    sub = _subscription(services, reg_id, customer_id, body, tenant)
    _step(settings, reg_id, "subscription", subscription_id=sub["id"])
    if sub["status"] == "trialing":
        return _registration(reg_id, sub, None)

    status, payment = services.payment.call(
        "POST",
        "/v1/payments",
        idempotency_key=f"registration:{reg_id}:first-charge",
        json={
            "customer_id": str(customer_id),
            "amount": price["amount"],
            "currency": price["currency"],
            "description": f"First charge, {price['name']}",
            "metadata": {"subscription_id": sub["id"], "registration_id": str(reg_id)},
        },
    )
    if status == 402:
        # Compensation: nothing may stay active after a declined first charge.
        services.subscription.expect(
            {200}, "POST", f"/v1/subscriptions/{sub['id']}/cancel", json={"at_period_end": False}
        )
        raise Declined(payment)
    _check("payment", status, payment, {200, 201})
    _step(settings, reg_id, "charged", payment_id=str(payment["id"]))
    sub = services.subscription.expect(
        {200},
        "POST",
        f"/v1/subscriptions/{sub['id']}/activate",
        json={"payment_id": str(payment["id"])},
    )
    return _registration(reg_id, sub, payment)


def _login(
    services: Services, body: RegistrationRequest, customer_id: uuid.UUID, tenant: str | None
) -> None:
    status, problem = services.auth.call(
        "POST",
        "/v1/users",
        json={
            "email": body.email,
            "password": body.password.get_secret_value(),
            "customer_id": str(customer_id),
            "tenant_id": tenant,
        },
    )
    if status not in (200, 201, 409):  # 409: the login exists from an earlier attempt
        raise ServiceError("auth", status, problem)


def _payment_method(
    services: Services, body: RegistrationRequest, customer_id: uuid.UUID, tenant: str | None
) -> None:
    services.payment.expect(
        {200, 201},
        "POST",
        "/v1/accounts",
        json={
            "customer_id": str(customer_id),
            "email": body.email,
            "name": body.name,
            "tenant_id": tenant,
        },
    )
    status, problem = services.payment.call(
        "POST",
        f"/v1/accounts/{customer_id}/payment-methods",
        json={"payment_method_id": body.payment_method_id},
    )
    _check("payment", status, problem, {200, 201})


def _customer(services: Services, body: RegistrationRequest, tenant: str | None) -> uuid.UUID:
    status, data = services.customer.call(
        "POST",
        "/v1/customers",
        json={
            "email": body.email,
            "name": body.name,
            "phone": body.phone,
            "marketing_opt_in": body.marketing_opt_in,
            "tenant_id": tenant,
        },
    )
    if status == 201:
        return uuid.UUID(data["id"])
    if status == 409 and data.get("customer_id"):
        # The email is known: fine after a declined attempt, not when already subscribed.
        existing = uuid.UUID(data["customer_id"])
        subs = services.subscription.expect({200}, "GET", f"/v1/customers/{existing}/subscriptions")
        if any(s["status"] in ("trialing", "active", "past_due", "paused") for s in subs["data"]):
            raise AlreadyRegistered(str(existing))
        return existing
    _check("customer", status, data, set())
    raise AssertionError("unreachable")


def _subscription(
    services: Services,
    reg_id: uuid.UUID,
    customer_id: uuid.UUID,
    body: RegistrationRequest,
    tenant: str | None,
) -> dict[str, Any]:
    status, data = services.subscription.call(
        "POST",
        "/v1/subscriptions",
        idempotency_key=f"registration:{reg_id}",
        json={
            "customer_id": str(customer_id),
            "plan_id": body.plan_id,
            "trial": body.trial,
            "tenant_id": tenant,
        },
    )
    if status in (200, 201):
        return data
    if status == 409 and data.get("subscription_id"):
        # An incomplete subscription left by an interrupted attempt is ours to finish.
        existing = services.subscription.expect(
            {200}, "GET", f"/v1/subscriptions/{data['subscription_id']}"
        )
        if existing["status"] == "incomplete":
            return existing
        raise AlreadyRegistered(str(customer_id))
    return _check("subscription", status, data, set())


def _registration(
    reg_id: uuid.UUID, sub: dict[str, Any], payment: dict[str, Any] | None
) -> Registration:
    return Registration(
        registration_id=reg_id,
        status="completed",
        customer_id=sub["customer_id"],
        subscription_id=sub["id"],
        subscription_status=sub["status"],
        plan_id=sub["plan_id"],
        payment=PaymentSummary(
            id=str(payment["id"]),
            status=payment["status"],
            amount=payment["amount"],
            currency=payment["currency"],
        )
        if payment
        else None,
    )


def _step(settings: Settings, reg_id: uuid.UUID, step: str, **ids: Any) -> None:
    with engine(settings).begin() as conn:
        keys.record_step(conn, reg_id, step, **ids)
