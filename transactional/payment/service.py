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
import uuid
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import Connection, Engine, RowMapping

from paywall.logs import get_logger
from transactional.common import errors, idempotency, pagination, tenancy
from transactional.common.customer_lookup import CustomerLookup
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer
from transactional.common.pagination import Page
from transactional.common.security import Principal
from transactional.payment import repository as repo
from transactional.payment.models import (
    Account,
    AccountCreate,
    Payment,
    PaymentCreate,
    PendingSweep,
)
from transactional.payment.stripe_gateway import Charge, Gateway, Rejected
from transactional.payment.stripe_problems import stripe_problems

# One per payment whose charge this call made or found (a replay is not counted again), by
# the charge's outcome: succeeded, failed (declined or refused) or pending (Stripe's own).
PAYMENTS = Counter("paywall_payments_total", "Charges made by outcome", ["outcome"])

log = get_logger(__name__)


# -- accounts ----------------------------------------------------------------------------


def create_account(
    engine: Engine,
    gateway: Gateway,
    customers: CustomerLookup,
    principal: Principal,
    body: AccountCreate,
) -> tuple[Account, bool]:
    """The customer's account, created with its Stripe customer on the first call only, and
    with `payment_method_id` its default card (unless it already is: a retry asks again).

    The customer service says who the customer is and whose: the account takes the
    customer's tenant, and `tenant_id` in the body is only a claim that must match it.
    """
    account, created = _account(engine, gateway, customers, principal, body)
    method = body.payment_method_id
    if method is not None and account.default_payment_method != method:
        account = _make_default(
            engine, gateway, account.customer_id, account.stripe_customer_id, method
        )
    return account, created


def _account(
    engine: Engine,
    gateway: Gateway,
    customers: CustomerLookup,
    principal: Principal,
    body: AccountCreate,
) -> tuple[Account, bool]:
    customer = customers.owned(principal, body.customer_id, body.tenant_id)
    with engine.begin() as conn:
        # Concurrent first calls queue here, so only one of them talks to Stripe. The lock
        # spans one Stripe call; that is the price of never making two Stripe customers.
        repo.wait_lock(conn, f"payment.account:{customer.id}")
        existing = repo.get_account(conn, customer.id)
        if existing is not None:
            if not tenancy.owns(principal, customer.id, existing["tenant_id"]):
                raise tenancy.not_found("customer", body.customer_id)
            return Account.from_row(dict(existing)), False
        with stripe_problems():
            # A crash after Stripe made the customer but before our commit left it behind.
            found = gateway.find_customer(customer.id, body.email)
            stripe_id = found or gateway.create_customer(
                customer.id, body.email, body.name, customer.tenant_id
            )
        row = repo.insert_account(conn, customer.id, customer.tenant_id, stripe_id)
    log.info("payment.account_created", customer_id=customer.id)
    return Account.from_row(dict(row)), True


def get_account(engine: Engine, principal: Principal, customer_id: str) -> Account:
    with engine.connect() as conn:
        return Account.from_row(dict(account_of(conn, principal, customer_id)))


def attach_payment_method(
    engine: Engine, gateway: Gateway, principal: Principal, customer_id: str, pm_id: str
) -> Account:
    with engine.connect() as conn:
        account = account_of(conn, principal, customer_id)
    return _make_default(engine, gateway, customer_id, account["stripe_customer_id"], pm_id)


def _make_default(
    engine: Engine, gateway: Gateway, customer_id: str, stripe_customer_id: str, pm_id: str
) -> Account:
    with stripe_problems():
        card = gateway.attach_default_payment_method(stripe_customer_id, pm_id)
    with engine.begin() as conn:
        row = repo.set_default_payment_method(conn, customer_id, pm_id, card)
    return Account.from_row(dict(row))


# -- payments ----------------------------------------------------------------------------


def create_payment(
    engine: Engine, gateway: Gateway, principal: Principal, key: str, body: PaymentCreate
) -> Answer:
    fingerprint = idempotency.fingerprint(body.fingerprint_fields())
    key = idempotency.scoped(principal, key)
    with engine.begin() as conn:
        account = account_of(conn, principal, body.customer_id)
        # Checked before the row exists: an unanswerable payment must not be stored.
        if not account["default_payment_method"] and repo.get_payment_by_key(conn, key) is None:
            raise DomainError(
                errors.NO_PAYMENT_METHOD, "attach a payment method to this customer first"
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
    idempotency.check_same(row["request_fingerprint"], fingerprint)
    if row["response_status"] is not None:
        return Answer(row["response_status"], row["response_body"], replayed=True)
    return _settle_payment(engine, gateway, row["id"], key, account, first_attempt=created)


def _settle_payment(
    engine: Engine,
    gateway: Gateway,
    payment_id: uuid.UUID,
    scoped_key: str,
    account: RowMapping,
    *,
    first_attempt: bool,
) -> Answer:
    with engine.begin() as conn:
        idempotency.hold(conn, scoped_key)
        row = repo.get_payment(conn, payment_id)
        assert row is not None
        if row["response_status"] is not None:  # a concurrent retry finished it meanwhile
            return Answer(row["response_status"], row["response_body"], replayed=True)
        charge: Charge | None = None
        if row["status"] == "pending":
            with stripe_problems(refusal_is_outcome=True):
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
        answer = _payment_answer(row)
        if row["status"] != "pending":
            # Pending (Stripe still processing) is not final: a replay asks again.
            repo.store_payment_response(conn, payment_id, answer.status, answer.body)
    if charge is not None:
        PAYMENTS.labels(row["status"]).inc()
    log.info("payment.settled", payment_id=str(payment_id), status=row["status"])
    return answer


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
            answer = _settle_payment(
                engine, gateway, row["id"], row["idempotency_key"], account, first_attempt=False
            )
        except DomainError as exc:
            report.busy += exc.problem is errors.IDEMPOTENCY_IN_PROGRESS
            report.unavailable += exc.problem is not errors.IDEMPOTENCY_IN_PROGRESS
            continue
        report.settled += answer.status != 202
        report.still_pending += answer.status == 202
    if report.examined:
        log.info("payment.recovery", **report.model_dump())
    return report


def _payment_answer(row: RowMapping) -> Answer:
    payment = Payment.model_validate(dict(row)).model_dump(mode="json")
    if row["status"] == "failed":
        declined = DomainError(
            errors.PAYMENT_DECLINED,
            row["failure_message"] or "The payment was declined.",
            payment_id=str(row["id"]),
            decline_code=row["decline_code"] or row["failure_code"],
            failure_code=row["failure_code"],
            payment=payment,
        )
        return Answer(402, declined.body("/v1/payments"))
    return Answer(202 if row["status"] == "pending" else 201, payment)


def get_payment(engine: Engine, principal: Principal, payment_id: uuid.UUID) -> Payment:
    with engine.connect() as conn:
        row = repo.get_payment(conn, payment_id)
        if row is None or owned_account(conn, principal, row["customer_id"]) is None:
            raise tenancy.not_found("payment", payment_id)
    return Payment.model_validate(dict(row))


def list_payments(
    engine: Engine,
    principal: Principal,
    filters: dict[str, str | None],
    limit: int,
    cursor: str | None,
) -> Page[Payment]:
    """The caller's payments, newest first: a user's own, a partner's tenant's."""
    after = pagination.decode_cursor(cursor)
    with engine.connect() as conn:
        rows = repo.payments_page(conn, tenancy.list_scope(principal), filters, after, limit + 1)
    payments = [Payment.model_validate(dict(row)) for row in rows]
    return pagination.page_of(payments, limit, lambda p: (p.created_at, p.id))


# -- helpers -----------------------------------------------------------------------------


def owned_account(conn: Connection, principal: Principal, customer_id: str) -> RowMapping | None:
    """The customer's account when the caller may act for it, by the tenant stored on it."""
    account = repo.get_account(conn, customer_id)
    if account is None or not tenancy.owns(principal, customer_id, account["tenant_id"]):
        return None
    return account


def account_of(conn: Connection, principal: Principal, customer_id: str) -> RowMapping:
    """The customer's account, or 404 when absent or not the caller's."""
    account = owned_account(conn, principal, customer_id)
    if account is None:
        raise tenancy.not_found("payment account", customer_id)
    return account


def stripe_key(kind: str, scoped: str) -> str:
    """Stripe's Idempotency-Key for what a scoped key asked for (Stripe allows 255 chars)."""
    return f"paywall-{kind}-{hashlib.sha256(scoped.encode()).hexdigest()}"
