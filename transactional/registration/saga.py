"""The signup saga: customer → (login ‖ Stripe customer + card) → subscription → first charge
→ first period's invoice → activation.

Every step is idempotent on the service that performs it and recorded once done, so a
retry (or the recovery sweep) resumes where the last attempt stopped. The first charge is
keyed by what was asked for, the subscription's first period, never by the attempt: however
often a signup is resumed, the payment service sees one payment, and before charging again
it asks Stripe what became of a payment left pending. Billing records the charge as the
first period's paid invoice, keyed by the subscription, so a resume finds the one invoice.
A declined card is compensated: the incomplete subscription is canceled, nothing stays
active, and the customer may try again with a new key. A subscription canceled while its
first charge was running is refunded (a credit note on its invoice).
"""

from __future__ import annotations

import contextvars
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from paywall.logs import get_logger
from paywall.service_client import ServiceClient, ServiceError, service_tokens
from paywall.settings import Settings
from transactional.common import errors
from transactional.registration import discounts
from transactional.registration.models import PaymentSummary, Registration, SignupDetails
from transactional.registration.refusals import AlreadyRegistered, Declined, Rejected
from transactional.registration.refusals import check as _check
from transactional.registration.repository import Claim, Run

log = get_logger(__name__)
LIVE = ("trialing", "active", "past_due", "paused")
# Once a step here is recorded, a charge may exist: it is settled, never skipped.
CHARGE_ASKED = ("charging", "charged")
CANCELED_UNPAID = "the subscription was canceled before its first charge"
CANCELED_WHILE_CHARGING = "Canceled while its first charge ran: all of it refunded"


# Calls a saga makes beside its own thread; each waits only on another service, never on
# this pool, so a full pool delays a signup but cannot deadlock it.
_SIDE_CALLS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="saga-side")


def first_charge_key(subscription_id: uuid.UUID | str) -> str:
    """The first period's charge: one per subscription, whoever asks and however often."""
    return f"subscription:{subscription_id}:first-period"


@dataclass
class Services:
    customer: ServiceClient
    auth: ServiceClient
    payment: ServiceClient
    subscription: ServiceClient
    billing: ServiceClient

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        tokens = service_tokens(settings, "registration")
        return cls(
            *(
                ServiceClient(name, settings, tokens)
                for name in ("customer", "auth", "payment", "subscription", "billing")
            )
        )


def run(
    services: Services,
    run_: Run,
    state: Claim,
    signup: SignupDetails,
    password: SecretStr | None,
    tenant: str | None,
) -> Registration:
    """Take the signup from its recorded `state` to the end; `password` only before login."""
    plan_path = f"/v1/plans/{quote(signup.plan_id, safe='')}"
    if tenant is not None:  # the tenant's price list: another tenant's plan is absent
        plan_path += f"?tenant_id={quote(tenant, safe='')}"
    status, price = services.subscription.call("GET", plan_path)
    if status == 404:
        raise Rejected(
            422, {"type": errors.UNKNOWN_PLAN.uri, "detail": f"no plan {signup.plan_id!r}"}
        )
    if status != 200:
        raise ServiceError("subscription", status, price)
    if signup.coupon and state.subscription_id is None:
        # Refused before anything is made or charged; the redemption below takes the slot.
        discounts.check_coupon(services.billing, signup.coupon, tenant)
    customer_id = state.customer_id
    if customer_id is None:
        customer_id = _customer(services, signup, tenant)
        run_.step("customer", customer_id=customer_id)

    if not state.past_login:
        if password is None:
            raise AssertionError("a signup before its login step needs the password")
        # The login and the payment account do not depend on each other: the login's
        # password hash (CPU, off the GIL) overlaps the Stripe round trips.
        login = _SIDE_CALLS.submit(
            contextvars.copy_context().run, _login, services, signup, password, customer_id, tenant
        )
        try:
            _payment_method(services, signup, customer_id, tenant)
        except BaseException:
            login.result()  # a failed login is reported first, as when it ran first
            raise
        login.result()
        run_.step("payment_method")

    sub = _subscription(services, run_.id, state.subscription_id, customer_id, signup, tenant)
    if state.subscription_id is None:
        run_.step("subscription", subscription_id=sub["id"])
    if sub["price_version"] != price["price_version"]:
        # Charged at the price version the subscription was made at: one added since (this
        # signup resumed later) is what new subscribers pay; and a resumed charge must ask
        # for what its first attempt did.
        versioned = f"price_version={sub['price_version']}"
        price = services.subscription.expect(
            {200}, "GET", f"{plan_path}{'&' if '?' in plan_path else '?'}{versioned}"
        )
    if signup.coupon and state.step not in CHARGE_ASKED:
        try:
            discounts.redeem(services.billing, run_.id, sub["id"], signup.coupon)
        except Rejected:
            _cancel(services, sub["id"])  # raced out of the coupon's last redemption
            raise
    if sub["status"] == "trialing":
        return _registration(run_.id, sub, None)
    if state.step not in CHARGE_ASKED:
        if sub["status"] == "canceled":
            # Canceled (by its customer) before its first charge was ever asked for.
            raise Rejected(409, {"title": "Subscription Canceled", "detail": CANCELED_UNPAID})
        run_.step("charging")

    # With a coupon or an address, billing prices the first period (discount, tax): the
    # same answer on every resume, the discount's period spent once.
    amount = price["amount"]
    if signup.coupon or signup.address:
        amount = discounts.first_charge(services.billing, sub, price, tenant)
    if amount == 0:  # a 100 % coupon: nothing to charge, the subscription starts at once
        # Its first period is still invoiced (the discount shown, nothing paid by card).
        _first_period_invoice(services, sub, price, tenant, f"free:{sub['id']}", 0)
        activated = services.subscription.expect(
            {200},
            "POST",
            f"/v1/subscriptions/{sub['id']}/activate",
            json={"payment_id": f"free:{sub['id']}"},
        )
        return _registration(run_.id, activated, None)
    # Asked again on every resume: the payment service answers a settled payment from what
    # it stored, and settles a pending one by asking Stripe before it would charge anew.
    status, payment = services.payment.call(
        "POST",
        "/v1/payments",
        idempotency_key=first_charge_key(sub["id"]),
        json={
            "customer_id": str(customer_id),
            "amount": amount,
            "currency": price["currency"],
            "description": f"First charge, {price['name']}",
            "metadata": {"subscription_id": sub["id"], "registration_id": str(run_.id)},
        },
    )
    if status == 402:
        # Compensation: nothing may stay active after a declined first charge.
        _cancel(services, sub["id"])
        raise Declined(payment)
    _check("payment", status, payment, {201})
    run_.step("charged", payment_id=str(payment["id"]))
    # Before the activation: an active subscription always has its paid first period's
    # invoice (a prorated cancellation credits it), and a resume asks for it again.
    invoice = _first_period_invoice(
        services, sub, price, tenant, str(payment["id"]), int(payment["amount"])
    )
    status, activated = services.subscription.call(
        "POST",
        f"/v1/subscriptions/{sub['id']}/activate",
        json={"payment_id": str(payment["id"])},
    )
    if status == 409:
        # Canceled while its first charge ran: the money goes back.
        _refund(services, sub["id"], payment, invoice)
        raise Rejected(409, activated)
    return _registration(run_.id, _check("subscription", status, activated, {200}), payment)


def _login(
    services: Services,
    signup: SignupDetails,
    password: SecretStr,
    customer_id: uuid.UUID,
    tenant: str | None,
) -> None:
    status, problem = services.auth.call(
        "POST",
        "/v1/users",
        json={
            "email": signup.email,
            "password": password.get_secret_value(),
            "customer_id": str(customer_id),
            "tenant_id": tenant,
        },
    )
    if status in (200, 201):
        return
    if status == 409 and problem.get("user_id"):
        return  # this customer's login, made by an earlier attempt
    if status == 409:
        # The email logs in as another customer of this tenant: not this signup's to take.
        raise AlreadyRegistered(str(customer_id))
    _check("auth", status, problem, set())


def _payment_method(
    services: Services, signup: SignupDetails, customer_id: uuid.UUID, tenant: str | None
) -> None:
    # One call: the account (made once) and its default card (attached unless it already is).
    status, problem = services.payment.call(
        "POST",
        "/v1/accounts",
        json={
            "customer_id": str(customer_id),
            "email": signup.email,
            "name": signup.name,
            "tenant_id": tenant,
            "payment_method_id": signup.payment_method_id,
        },
    )
    if status == 404:  # the customer this saga just made: never the signup's fault
        raise ServiceError("payment", status, problem)
    _check("payment", status, problem, {200, 201})


def _customer(services: Services, signup: SignupDetails, tenant: str | None) -> uuid.UUID:
    status, data = services.customer.call(
        "POST",
        "/v1/customers",
        json={
            "email": signup.email,
            "name": signup.name,
            "phone": signup.phone,
            "marketing_opt_in": signup.marketing_opt_in,
            "tenant_id": tenant,
            **({"address": signup.address.model_dump()} if signup.address else {}),
        },
    )
    if status == 201:
        return uuid.UUID(data["id"])
    if status == 409 and data.get("customer_id"):
        # The email is known: fine after a declined attempt, not when already subscribed.
        existing = uuid.UUID(data["customer_id"])
        subs = services.subscription.expect({200}, "GET", f"/v1/customers/{existing}/subscriptions")
        if any(s["status"] in LIVE for s in subs["data"]):
            raise AlreadyRegistered(str(existing))
        return existing
    _check("customer", status, data, set())
    raise AssertionError("unreachable")


def _subscription(
    services: Services,
    reg_id: uuid.UUID,
    known: uuid.UUID | None,
    customer_id: uuid.UUID,
    signup: SignupDetails,
    tenant: str | None,
) -> dict[str, Any]:
    if known is not None:
        return services.subscription.expect({200}, "GET", f"/v1/subscriptions/{known}")
    status, data = services.subscription.call(
        "POST",
        "/v1/subscriptions",
        idempotency_key=f"registration:{reg_id}",
        json={
            "customer_id": str(customer_id),
            "plan_id": signup.plan_id,
            "trial": signup.trial,
            "tenant_id": tenant,
        },
    )
    if status in (200, 201):
        return data
    if status == 409 and data.get("subscription_id"):
        # An incomplete subscription left by an earlier, declined signup is ours to finish.
        existing = services.subscription.expect(
            {200}, "GET", f"/v1/subscriptions/{data['subscription_id']}"
        )
        if existing["status"] == "incomplete":
            return existing
        raise AlreadyRegistered(str(customer_id))
    return _check("subscription", status, data, set())


def _cancel(services: Services, sub_id: str) -> None:
    status, body = services.subscription.call(
        "POST", f"/v1/subscriptions/{sub_id}/cancel", json={"at_period_end": False}
    )
    if status == 409 and body.get("status_now") == "canceled":
        return  # canceled by an earlier attempt
    _check("subscription", status, body, {200})


def _first_period_invoice(
    services: Services,
    sub: dict[str, Any],
    price: dict[str, Any],
    tenant: str | None,
    payment_id: str,
    charged: int,
) -> dict[str, Any] | None:
    """The first period's paid invoice for the charge just made; billing keys it by the
    subscription, so every resume of this signup is answered the one invoice. None when
    billing holds another charge's invoice for the period: logged, and the signup goes on
    (the customer paid; holding the subscription back would not give the money back)."""
    status, invoice = services.billing.call(
        "POST",
        "/v1/first_period_invoices",
        json={
            "subscription_id": sub["id"],
            "customer_id": str(sub["customer_id"]),
            "tenant_id": tenant,
            "plan_id": price["id"],
            "amount": price["amount"],
            "currency": price["currency"],
            "period_start": sub["current_period_start"],
            "period_end": sub["current_period_end"],
            "payment_id": payment_id,
            "charged": charged,
            **({} if charged == 0 else {"payment_key": first_charge_key(sub["id"])}),
        },
    )
    if status == 409:
        log.error(
            "registration.first_period_invoiced_otherwise",
            subscription_id=sub["id"],
            payment_id=payment_id,
            invoice_id=str(invoice.get("invoice_id")),
        )
        return None
    if status not in (200, 201):
        # Never a final refusal once the money is taken: the signup stays unfinished (503)
        # and its retry or the recovery sweep asks again.
        raise ServiceError("billing", status, invoice)
    return invoice


def _refund(
    services: Services, sub_id: str, payment: dict[str, Any], invoice: dict[str, Any] | None
) -> None:
    """All of the first charge back: a credit note on its invoice (refunded to the card, so
    billing's figures and the payment's refund agree), or without an invoice a refund."""
    key = f"{first_charge_key(sub_id)}:refund"
    if invoice is not None:
        status, body = services.billing.call(
            "POST",
            f"/v1/invoices/{invoice['id']}/credit_notes",
            idempotency_key=key,
            json={"settlement": "refund", "memo": CANCELED_WHILE_CHARGING},
        )
    else:
        status, body = services.payment.call(
            "POST", f"/v1/payments/{payment['id']}/refunds", idempotency_key=key, json={}
        )
    _check("billing" if invoice is not None else "payment", status, body, {201})
    log.warning("registration.refunded", subscription_id=sub_id, payment_id=str(payment["id"]))


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
