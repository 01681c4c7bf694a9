"""What each payment API call does, apart from HTTP.

Money moves in two steps so that crashes and retries can never charge twice:

1. commit a `pending` row under the client's Idempotency-Key (unique in the database);
2. under an advisory lock on that row, call Stripe with our row id in the metadata and
   record the outcome, the outbox event and the answer in one transaction.

A retry that finds the row still `pending` (its first attempt died somewhere in step 2)
first asks Stripe what became of it (the PaymentIntent it stored, or one carrying our id)
before creating one, and creates it with the same Stripe Idempotency-Key. A retry while
the first attempt is still running gets 409 and tries again later.

Keys belong to the caller, as at Stripe: the same key from two tenants (or two tenant-less
clients) is two keys. They never expire: a payment's key is its identity.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from paywall.logs import get_logger
from transactional.common import tenancy
from transactional.common.customer_lookup import CustomerLookup
from transactional.common.problems import Problem
from transactional.common.security import Principal
from transactional.payment import repository as repo
from transactional.payment.models import (
    Account,
    AccountCreate,
    Payment,
    PaymentCreate,
    PendingSweep,
    Refund,
    RefundCreate,
)
from transactional.payment.stripe_gateway import Charge, Gateway, Rejected, Unavailable

log = get_logger(__name__)

PROBLEMS = "https://paywall.dev/problems"
Answer = tuple[int, dict[str, Any]]


# -- accounts ----------------------------------------------------------------------------


def create_account(
    engine: Engine,
    gateway: Gateway,
    customers: CustomerLookup,
    principal: Principal,
    body: AccountCreate,
) -> tuple[Account, bool]:
    """The customer's account, created with its Stripe customer on the first call only.

    The customer service says who the customer is and whose: the account takes the
    customer's tenant, and `tenant_id` in the body is only a claim that must match it.
    """
    customer = customers.owned(principal, body.customer_id, body.tenant_id)
    with engine.begin() as conn:
        # Concurrent first calls queue here, so only one of them talks to Stripe. The lock
        # spans one Stripe call; that is the price of never making two Stripe customers.
        repo.wait_lock(conn, f"payment.account:{customer.id}")
        existing = repo.get_account(conn, customer.id)
        if existing is not None:
            if not tenancy.owns(principal, customer.id, existing["tenant_id"]):
                raise tenancy.not_found("customer", body.customer_id)
            return Account.model_validate(dict(existing)), False
        with _stripe_errors():
            # A crash after Stripe made the customer but before our commit left it behind.
            found = gateway.find_customer(customer.id, body.email)
            stripe_id = found or gateway.create_customer(
                customer.id, body.email, body.name, customer.tenant_id
            )
        row = repo.insert_account(conn, customer.id, customer.tenant_id, stripe_id)
    log.info("payment.account_created", customer_id=customer.id)
    return Account.model_validate(dict(row)), True


def attach_payment_method(
    engine: Engine, gateway: Gateway, principal: Principal, customer_id: str, pm_id: str
) -> Account:
    with engine.connect() as conn:
        account = _account(conn, principal, customer_id)
    with _stripe_errors():
        gateway.attach_default_payment_method(account["stripe_customer_id"], pm_id)
    with engine.begin() as conn:
        row = repo.set_default_payment_method(conn, customer_id, pm_id)
    return Account.model_validate(dict(row))


# -- payments ----------------------------------------------------------------------------


def create_payment(
    engine: Engine, gateway: Gateway, principal: Principal, key: str, body: PaymentCreate
) -> Answer:
    fingerprint = _fingerprint(body.fingerprint_fields())
    key = scoped_key(principal, key)
    with engine.begin() as conn:
        account = _account(conn, principal, body.customer_id)
        # Checked before the row exists: an unanswerable payment must not be stored.
        if not account["default_payment_method"] and repo.get_payment_by_key(conn, key) is None:
            raise Problem(
                422,
                "No payment method",
                "attach a payment method to this customer first",
                type_=f"{PROBLEMS}/no-payment-method",
            )
        row, created = repo.claim_payment(
            conn,
            customer_id=body.customer_id,
            idempotency_key=key,
            fingerprint=fingerprint,
            amount=body.amount,
            currency=body.currency,
            description=body.description,
            metadata=body.metadata,
        )
    if row["request_fingerprint"] != fingerprint:
        raise _key_reused()
    if row["response_status"] is not None:
        return row["response_status"], row["response_body"]
    return _settle_payment(engine, gateway, row["id"], account, first_attempt=created)


def _settle_payment(
    engine: Engine,
    gateway: Gateway,
    payment_id: uuid.UUID,
    account: RowMapping,
    *,
    first_attempt: bool,
) -> Answer:
    with engine.begin() as conn:
        if not repo.advisory_lock(conn, f"payment.payment:{payment_id}"):
            raise _in_progress()
        row = repo.get_payment(conn, payment_id)
        assert row is not None
        if row["response_status"] is not None:  # a concurrent retry finished it meanwhile
            return row["response_status"], row["response_body"]
        charge: Charge | None = None
        if row["status"] == "pending":
            with _stripe_errors(reject_status=None):
                try:
                    if not first_attempt:
                        charge = _earlier_charge(gateway, row, account)
                    if charge is None:
                        charge = gateway.charge(
                            str(payment_id),
                            stripe_key("charge", row["idempotency_key"]),
                            account["stripe_customer_id"],
                            account["default_payment_method"],
                            row["amount"],
                            row["currency"],
                        )
                except Rejected as exc:
                    # Stripe refused outright (payment method gone, bad parameters): no
                    # money moved, and the same request will be refused again.
                    charge = Charge(
                        "failed", None, exc.code or "payment_rejected", exc.code, exc.message
                    )
            row = repo.record_charge(
                conn,
                payment_id,
                charge.status,
                charge.payment_intent_id,
                charge.failure_code,
                charge.decline_code,
                charge.failure_message,
            )
        status, body = _payment_answer(row)
        if row["status"] != "pending":
            # Pending (Stripe still processing) is not final: a replay asks again.
            repo.store_payment_response(conn, payment_id, status, body)
    log.info("payment.settled", payment_id=str(payment_id), status=row["status"])
    return status, body


def _earlier_charge(gateway: Gateway, row: RowMapping, account: RowMapping) -> Charge | None:
    """What an earlier attempt at this payment got from Stripe, if it got that far."""
    if row["stripe_payment_intent_id"]:
        return gateway.get_charge(row["stripe_payment_intent_id"])
    return gateway.find_charge(str(row["id"]), account["stripe_customer_id"], row["created_at"])


def recover_pending(
    engine: Engine, gateway: Gateway, older_than: timedelta, limit: int = 100
) -> PendingSweep:
    """Settle payments whose request died or was never retried, as their retry would.

    Each is settled under its own lock: what Stripe made of it is recorded; if Stripe never
    saw it, it is charged now, as asked (the client was told to retry with the same key,
    so either outcome was open to it), with the same Stripe Idempotency-Key.
    """
    report = PendingSweep()
    with engine.connect() as conn:
        stale = repo.stale_pending(conn, older_than, limit)
        accounts = {r["customer_id"]: repo.get_account(conn, r["customer_id"]) for r in stale}
    for row in stale:
        report.examined += 1
        account = accounts[row["customer_id"]]
        assert account is not None, "a payment is only made on an existing account"
        try:
            status, _ = _settle_payment(engine, gateway, row["id"], account, first_attempt=False)
        except Problem as exc:
            report.busy += exc.status_code == 409
            report.unavailable += exc.status_code != 409
            continue
        report.settled += status != 202
        report.still_pending += status == 202
    if report.examined:
        log.info("payment.recovery", **report.model_dump())
    return report


def _payment_answer(row: RowMapping) -> Answer:
    payment = Payment.model_validate(dict(row)).model_dump(mode="json")
    if row["status"] == "failed":
        return 402, {
            "type": f"{PROBLEMS}/payment-declined",
            "title": "Payment declined",
            "status": 402,
            "detail": row["failure_message"] or "The payment was declined.",
            "instance": "/v1/payments",
            "payment_id": str(row["id"]),
            "decline_code": row["decline_code"] or row["failure_code"],
            "failure_code": row["failure_code"],
            "payment": payment,
        }
    return (202 if row["status"] == "pending" else 201), payment


def get_payment(engine: Engine, principal: Principal, payment_id: uuid.UUID) -> Payment:
    with engine.connect() as conn:
        row = repo.get_payment(conn, payment_id)
        if row is None or _owned_account(conn, principal, row["customer_id"]) is None:
            raise tenancy.not_found("payment", payment_id)
    return Payment.model_validate(dict(row))


# -- refunds -----------------------------------------------------------------------------


def create_refund(
    engine: Engine,
    gateway: Gateway,
    principal: Principal,
    payment_id: uuid.UUID,
    key: str,
    body: RefundCreate,
) -> Answer:
    fingerprint = _fingerprint({"payment_id": str(payment_id), "amount": body.amount})
    key = scoped_key(principal, key)
    try:
        with engine.begin() as conn:
            # The payment row lock serialises refunds of one payment: two concurrent
            # refunds cannot both fit in what is left.
            payment = repo.get_payment(conn, payment_id, lock=True)
            if payment is None or _owned_account(conn, principal, payment["customer_id"]) is None:
                raise tenancy.not_found("payment", payment_id)
            refund = repo.get_refund_by_key(conn, key)
            created = refund is None
            if refund is None:
                amount = _refundable(conn, payment, body.amount)
                refund = repo.insert_refund(conn, payment_id, key, fingerprint, amount)
    except IntegrityError:
        # The same key, used at the same moment for another payment.
        raise _key_reused() from None
    if refund["request_fingerprint"] != fingerprint:
        raise _key_reused()
    if refund["response_status"] is not None:
        return refund["response_status"], refund["response_body"]
    return _settle_refund(engine, gateway, refund["id"], first_attempt=created)


def _refundable(conn: Connection, payment: RowMapping, requested: int | None) -> int:
    if payment["status"] not in ("succeeded", "partially_refunded"):
        raise Problem(
            422,
            "Not refundable",
            f"a {payment['status']} payment cannot be refunded",
            type_=f"{PROBLEMS}/not-refundable",
        )
    remaining = payment["amount"] - repo.reserved_refunds(conn, payment["id"])
    amount = remaining if requested is None else requested
    if amount <= 0 or amount > remaining:
        raise Problem(
            422,
            "Refund exceeds payment",
            f"at most {remaining} {payment['currency']} can still be refunded",
            type_=f"{PROBLEMS}/refund-exceeds-payment",
            refundable=remaining,
        )
    return amount


def _settle_refund(
    engine: Engine, gateway: Gateway, refund_id: uuid.UUID, *, first_attempt: bool
) -> Answer:
    with engine.begin() as conn:
        if not repo.advisory_lock(conn, f"payment.refund:{refund_id}"):
            raise _in_progress()
        refund = repo.get_refund(conn, refund_id)
        assert refund is not None
        if refund["response_status"] is not None:
            return refund["response_status"], refund["response_body"]
        payment = repo.get_payment(conn, refund["payment_id"])
        assert payment is not None
        rejected: Rejected | None = None
        if refund["status"] == "pending":
            intent = payment["stripe_payment_intent_id"]
            with _stripe_errors(reject_status=None):
                try:
                    result = None if first_attempt else gateway.find_refund(str(refund_id), intent)
                    if result is None:
                        result = gateway.refund(
                            str(refund_id),
                            stripe_key("refund", refund["idempotency_key"]),
                            intent,
                            refund["amount"],
                        )
                except Rejected as exc:
                    rejected, result = exc, None
            refund, payment = repo.finish_refund(
                conn,
                refund_id,
                stripe_refund_id=result.refund_id if result else None,
                failure_message=rejected.message if rejected else None,
            )
        if refund["status"] == "failed":
            status, body = (
                422,
                {
                    "type": f"{PROBLEMS}/refund-rejected",
                    "title": "Refund rejected",
                    "status": 422,
                    "detail": refund["failure_message"] or "Stripe refused the refund.",
                    "instance": f"/v1/payments/{payment['id']}/refunds",
                    "refund_id": str(refund_id),
                },
            )
        else:
            status, body = 201, _refund_body(refund, payment)
        repo.store_refund_response(conn, refund_id, status, body)
    return status, body


def _refund_body(refund: RowMapping, payment: RowMapping) -> dict[str, Any]:
    return Refund(
        id=refund["id"],
        payment_id=refund["payment_id"],
        amount=refund["amount"],
        currency=payment["currency"],
        status=refund["status"],
        stripe_refund_id=refund["stripe_refund_id"],
        payment_status=payment["status"],
        created_at=refund["created_at"],
    ).model_dump(mode="json")


# -- helpers -----------------------------------------------------------------------------


def _owned_account(conn: Connection, principal: Principal, customer_id: str) -> RowMapping | None:
    """The customer's account when the caller may act for it, by the tenant stored on it."""
    account = repo.get_account(conn, customer_id)
    if account is None or not tenancy.owns(principal, customer_id, account["tenant_id"]):
        return None
    return account


def _account(conn: Connection, principal: Principal, customer_id: str) -> RowMapping:
    account = _owned_account(conn, principal, customer_id)
    if account is None:
        raise tenancy.not_found("payment account", customer_id)
    return account


def scoped_key(principal: Principal, key: str) -> str:
    """The client's Idempotency-Key in its owner's namespace (its tenant, else itself)."""
    owner = (
        f"tenant:{principal.tenant_id}" if principal.tenant_id else f"client:{principal.client_id}"
    )
    return f"{owner}|{key}"


def stripe_key(kind: str, scoped: str) -> str:
    """Stripe's Idempotency-Key for what a scoped key asked for (Stripe allows 255 chars)."""
    return f"paywall-{kind}-{hashlib.sha256(scoped.encode()).hexdigest()}"


def _fingerprint(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class _stripe_errors:
    """Stripe trouble as problems: unreachable → 503 (retry is safe), refused → 422."""

    def __init__(self, reject_status: int | None = 422) -> None:
        self.reject_status = reject_status

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if isinstance(exc, Unavailable):
            log.warning("stripe.unavailable", error=str(exc))
            raise Problem(
                503,
                "Payment processor unavailable",
                "Stripe could not be reached; retry with the same Idempotency-Key",
                type_=f"{PROBLEMS}/processor-unavailable",
                headers={"Retry-After": "5"},
            ) from None
        if isinstance(exc, Rejected) and exc.http_status == 402:
            # A card declined when attached is a decline, as at charge time: 402.
            raise Problem(
                402,
                "Payment declined",
                exc.message or "the card was declined",
                type_=f"{PROBLEMS}/payment-declined",
                decline_code=exc.code,
            ) from None
        if isinstance(exc, Rejected) and self.reject_status is not None:
            raise Problem(
                self.reject_status,
                "Rejected by the payment processor",
                exc.message,
                type_=f"{PROBLEMS}/processor-rejected",
                stripe_code=exc.code,
            ) from None


def _key_reused() -> Problem:
    return Problem(
        422,
        "Idempotency key reused",
        "this Idempotency-Key was used with different parameters",
        type_=f"{PROBLEMS}/idempotency-key-reused",
    )


def _in_progress() -> Problem:
    return Problem(
        409,
        "Request in progress",
        "a request with this Idempotency-Key is still running; retry shortly",
        type_=f"{PROBLEMS}/idempotency-in-progress",
        headers={"Retry-After": "1"},
    )
