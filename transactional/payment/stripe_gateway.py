"""Every call the payment service makes to Stripe, and nothing else.

Stripe errors become two exceptions of ours: `Rejected` (Stripe said no to this request;
retrying the same thing will not help) and `Unavailable` (we do not know what happened;
retrying with the same idempotency key is safe). Declines are not errors here: they are
an outcome, `Charge(status="failed")`.

Every create is sent with Stripe's Idempotency-Key, derived from what was asked for (the
client's own key for a charge): a retry within Stripe's 24 hours gets the first answer.
It also carries our id in its metadata, and the callers look for that id (or retrieve the
object they stored) before creating again after a crash, which covers retries beyond the
24 hours, and Stripe stand-ins that keep no keys.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import stripe
from fastapi import Depends

from paywall.clients import stripe_client
from paywall.logs import get_logger
from transactional.common.deps import CurrentSettings
from transactional.payment.models import CardSummary

ChargeStatus = Literal["succeeded", "failed", "pending"]
log = get_logger(__name__)


class Rejected(Exception):
    """Stripe refused the request (bad id, invalid parameters, declined card on attach)."""

    def __init__(self, message: str, code: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class Unavailable(Exception):
    """Stripe unreachable, failing or rate limiting us: outcome unknown; retry after that."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Charge:
    status: ChargeStatus
    payment_intent_id: str | None
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class StripeIntent:
    """A PaymentIntent as reconciliation compares it."""

    id: str
    payment_id: str | None  # ours, from its metadata
    amount: int
    currency: str
    succeeded: bool
    status: str


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    status: str


class Gateway:
    """A thin wrapper over `stripe.StripeClient` that speaks in our terms."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    # -- customers ---------------------------------------------------------------------

    def create_customer(
        self, customer_id: str, email: str, name: str | None, tenant_id: str | None
    ) -> str:
        params: dict[str, Any] = {
            "email": email,
            "metadata": _metadata(paywall_customer_id=customer_id, tenant_id=tenant_id),
        }
        if name:
            params["name"] = name
        with _translated():
            customer = self.client.v1.customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"paywall-account-{customer_id}"},
            )
        return str(customer.id)

    def find_customer(self, customer_id: str, email: str) -> str | None:
        """The Stripe customer an earlier, interrupted attempt created for `customer_id`."""
        with _translated():
            page = self.client.v1.customers.list(params={"email": email, "limit": 100})
            for customer in page.auto_paging_iter():
                if _meta(_plain(customer), "paywall_customer_id") == customer_id:
                    return str(customer.id)
        return None

    def delete_customer(self, stripe_customer_id: str) -> None:
        """Erasure: Stripe drops the customer (its email, name, phone, cards). A delete
        moves no money and a retry after it finds the customer gone (404): done."""
        try:
            with _translated():
                self.client.v1.customers.delete(stripe_customer_id)
        except Rejected as exc:
            if exc.http_status != 404:
                raise

    def attach_default_payment_method(
        self, stripe_customer_id: str, payment_method: str
    ) -> CardSummary | None:
        """Attach the method and make it the default; what card it is (None: not a card)."""
        with _translated():
            attached = _plain(
                self.client.v1.payment_methods.attach(
                    payment_method, params={"customer": stripe_customer_id}
                )
            )
            self.client.v1.customers.update(
                stripe_customer_id,
                params={"invoice_settings": {"default_payment_method": payment_method}},
            )
        card = attached.get("card") or {}
        if not card.get("last4"):
            return None
        return CardSummary(
            brand=str(card.get("brand") or "card"),
            last4=str(card["last4"])[-4:],
            exp_month=_small(card.get("exp_month")),
            exp_year=_small(card.get("exp_year")),
        )

    def default_payment_method(self, stripe_customer_id: str) -> str | None:
        with _translated():
            customer = _plain(self.client.v1.customers.retrieve(stripe_customer_id))
        settings = customer.get("invoice_settings") or {}
        method = settings.get("default_payment_method")
        return str(method) if method else None

    # -- payment intents ---------------------------------------------------------------

    def charge(
        self,
        payment_id: str,
        idempotency_key: str,
        stripe_customer_id: str,
        payment_method: str,
        amount: int,
        currency: str,
    ) -> Charge:
        """Create and confirm an off-session PaymentIntent; a decline is an outcome."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "customer": stripe_customer_id,
            "payment_method": payment_method,
            # Cards only: other methods would need a return_url we do not have off session.
            "payment_method_types": ["card"],
            "confirm": True,
            "off_session": True,
            "metadata": {"payment_id": payment_id},
        }
        try:
            with _translated(declines=True):
                # Every charge of a billing day passes here: its answer is read as the JSON
                # it is, not built into StripeObjects and flattened back (~10 % of the
                # payment service's CPU per charge). Same request, retries and errors.
                answer = self.client.raw_request(
                    "post", "/v1/payment_intents", **params, idempotency_key=idempotency_key
                )
        except _Declined as declined:
            return declined.charge
        return _charge_of(dict(answer.data))

    def get_charge(self, payment_intent_id: str) -> Charge:
        """What became of a PaymentIntent we know the id of."""
        with _translated():
            return _charge_of(_plain(self.client.v1.payment_intents.retrieve(payment_intent_id)))

    def find_charge(
        self, payment_id: str, stripe_customer_id: str, since: datetime
    ) -> Charge | None:
        """The PaymentIntent an interrupted attempt for `payment_id` created, if any."""
        for intent in self._intents(stripe_customer_id, since):
            if (
                _meta(intent, "payment_id") == payment_id
                and intent.get("customer") == stripe_customer_id
            ):
                return _charge_of(intent)
        return None

    def _intents(self, stripe_customer_id: str, since: datetime) -> Iterator[dict[str, Any]]:
        # A minute of clock skew between us and Stripe must not hide the intent.
        created = {"gte": int(since.timestamp()) - 60}
        yield from self._list_intents(
            {"limit": 100, "customer": stripe_customer_id, "created": created}
        )

    def intents_created(self, start: datetime, end: datetime) -> Iterator[StripeIntent]:
        """Every PaymentIntent created in [start, end): what reconciliation checks."""
        lo, hi = int(start.timestamp()), int(end.timestamp())
        for intent in self._list_intents({"limit": 100, "created": {"gte": lo, "lt": hi}}):
            yield _intent_of(intent)

    def intent(self, payment_intent_id: str) -> StripeIntent:
        with _translated():
            return _intent_of(_plain(self.client.v1.payment_intents.retrieve(payment_intent_id)))

    def _list_intents(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with _translated():
            page = self.client.v1.payment_intents.list(params=params)  # type: ignore[arg-type]
            for intent in page.auto_paging_iter():
                yield _plain(intent)

    # -- refunds -----------------------------------------------------------------------

    def refund(
        self, refund_id: str, idempotency_key: str, payment_intent_id: str, amount: int
    ) -> RefundResult:
        with _translated():
            refund = self.client.v1.refunds.create(
                params={
                    "payment_intent": payment_intent_id,
                    "amount": amount,
                    "metadata": {"refund_id": refund_id},
                },
                options={"idempotency_key": idempotency_key},
            )
        return RefundResult(str(refund.id), str(_plain(refund).get("status") or "succeeded"))

    def find_refund(self, refund_id: str, payment_intent_id: str) -> RefundResult | None:
        with _translated():
            page = self.client.v1.refunds.list(
                params={"payment_intent": payment_intent_id, "limit": 100}
            )
            for refund in page.auto_paging_iter():
                found = _plain(refund)
                if _meta(found, "refund_id") == refund_id:
                    return RefundResult(str(found["id"]), str(found.get("status") or "succeeded"))
        return None


def verify_webhook(payload: bytes, signature: str, secret: str) -> None:
    """Raise `stripe.SignatureVerificationError` unless Stripe signed `payload` < 300 s ago."""
    stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)


# -- helpers ---------------------------------------------------------------------------


class _Declined(Exception):
    def __init__(self, charge: Charge) -> None:
        self.charge = charge


class _translated:
    """Turn stripe's exceptions into ours; with `declines`, a CardError is a failed Charge."""

    def __init__(self, declines: bool = False) -> None:
        self.declines = declines

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is None:
            return
        if isinstance(exc, stripe.CardError):
            charge = _declined(exc)
            if self.declines:
                raise _Declined(charge) from exc
            raise Rejected(charge.failure_message or "", charge.failure_code, 402) from exc
        if isinstance(exc, stripe.RateLimitError):
            # Nothing done; stripe-python already retried what was Stripe-Should-Retry.
            raise Unavailable("RateLimitError", _retry_after(exc) or 1) from exc
        if isinstance(exc, stripe.APIConnectionError):
            raise Unavailable(type(exc).__name__) from exc
        if isinstance(exc, stripe.IdempotencyError) and exc.http_status == 409:
            # The same key still running at Stripe: its outcome is not known yet.
            raise Unavailable("IdempotencyError: key in use") from exc
        if isinstance(exc, stripe.StripeError):
            status = exc.http_status
            if status is None or status >= 500 or _should_retry(exc):
                raise Unavailable(f"Stripe answered {status}", _retry_after(exc) or 5) from exc
            message = exc.user_message or _first_line(str(exc)) or "Stripe refused the request"
            raise Rejected(message, exc.code, status) from exc


def _declined(exc: stripe.CardError) -> Charge:
    error = exc.error
    intent = getattr(error, "payment_intent", None) if error else None
    decline_code = getattr(error, "decline_code", None) if error else None
    return Charge(
        status="failed",
        payment_intent_id=str(intent["id"]) if intent else None,
        failure_code=exc.code or "card_declined",
        decline_code=decline_code or exc.code or "card_declined",
        failure_message=exc.user_message or _first_line(str(exc)) or "Your card was declined.",
    )


def _charge_of(intent: dict[str, Any]) -> Charge:
    status = intent.get("status")
    if status == "succeeded":
        return Charge("succeeded", str(intent["id"]))
    if status in ("processing", "requires_capture"):
        return Charge("pending", str(intent["id"]))
    error = intent.get("last_payment_error") or {}
    if status == "requires_action":
        # Off session nobody can complete 3-D Secure; Stripe itself reports it this way.
        code = "authentication_required"
        message = "The card requires authentication."
    else:
        code = error.get("code") or "payment_failed"
        message = error.get("message") or "The payment failed."
    return Charge(
        status="failed",
        payment_intent_id=str(intent["id"]),
        failure_code=code,
        decline_code=error.get("decline_code") or code,
        failure_message=message,
    )


def _intent_of(intent: dict[str, Any]) -> StripeIntent:
    status = str(intent.get("status") or "unknown")
    return StripeIntent(
        id=str(intent["id"]),
        payment_id=_meta(intent, "payment_id"),
        amount=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or "").lower(),
        succeeded=status == "succeeded",
        status=status,
    )


def _small(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and 0 < value < 10000 else None


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object as plain dicts and lists (StripeObject is not a dict since v8)."""
    return dict(obj.to_dict())


def _meta(obj: dict[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata") or {}
    value = metadata.get(key)
    return str(value) if value is not None else None


def _metadata(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


def _should_retry(exc: stripe.StripeError) -> bool:
    """Stripe said the same request may yet succeed (a lock timeout, say): not a refusal."""
    return (exc.headers or {}).get("stripe-should-retry") == "true"


def _retry_after(exc: stripe.StripeError) -> int | None:
    value = (exc.headers or {}).get("retry-after")  # case-insensitive, or lower-cased
    try:
        return max(1, math.ceil(float(value))) if value else None
    except ValueError:
        return None


def _first_line(text: str) -> str:
    return text.splitlines()[0].strip() if text else ""


_gateways: dict[tuple[str | None, str | None], Gateway] = {}
_gateways_lock = threading.Lock()


def stripe_gateway(settings: CurrentSettings) -> Gateway:
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
            found = Gateway(stripe_client(settings))
            _gateways[key] = found
    return found


async def _shared_gateway(settings: CurrentSettings) -> Gateway:
    # Async: the gateway is built once, so a request need not wait for a thread to get it.
    return stripe_gateway(settings)


StripeGateway = Annotated[Gateway, Depends(_shared_gateway)]
