"""An upgrade's proration invoice, charged at once (Stripe's `pending_if_incomplete`).

The subscription service asks (`POST /v1/prorations`, internal) while it holds the
subscription's row lock, and changes the plan only when this answers 201 (paid):

1. the invoice is made open with two lines, a credit for the old plan's unused seconds
   and a charge for the new plan's (paywall/pricing.py, one rounding rule), under the
   request's Idempotency-Key (unique) and committed;
2. it is charged through the payment service (collect.py); paid, it keeps
   `pending_action = apply_upgrade` until the subscription service is known to have
   applied it; declined, it is voided and the answer is 402.

A retry with the same key answers from the invoice made under it (asking the payment
service again while its charge is unknown), so an upgrade is charged once however often
it is asked. At most one proration per subscription is in flight (a partial unique
index): a second upgrade waits (409) until the first is settled and applied. Money moved
with no plan change is finished by whoever comes first: the client's retry (the
subscription service asks again and applies what this answers), the next upgrade of the
subscription (the one in flight is answered or found applied), or the recovery sweep
(`POST /v1/operations/invoice-recovery`), which settles stale charges and tells the
subscription service to apply paid upgrades (`POST /v1/subscriptions/{id}/apply-upgrade`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Connection, Engine, RowMapping

from paywall import pricing
from paywall.logs import get_logger
from paywall.service_client import ServiceClient, ServiceError
from streaming import invoice_events, invoice_terms
from streaming.invoice_terms import Terms
from transactional.billing import repository as repo
from transactional.billing.collect import Collector
from transactional.billing.coupons import tax_address
from transactional.billing.models import InvoiceSweep, ProrationCreate
from transactional.common import errors, idempotency
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer
from transactional.common.security import Principal

log = get_logger(__name__)


def lines(body: ProrationCreate) -> list[dict[str, object]]:
    p = pricing.prorate(body.from_amount, body.amount, body.period_start, body.period_end, body.at)
    span = {"period_start": body.at, "period_end": body.period_end}
    return [
        {
            "kind": "proration_credit",
            "description": f"Unused time on {body.from_plan_id}",
            "plan_id": body.from_plan_id,
            "amount": -p.credit,
            **span,
        },
        {
            "kind": "proration_charge",
            "description": f"Remaining time on {body.plan_id}",
            "plan_id": body.plan_id,
            "amount": p.charge,
            **span,
        },
    ]


def create(
    engine: Engine,
    collector: Collector,
    customers: ServiceClient,
    principal: Principal,
    key: str,
    body: ProrationCreate,
) -> Answer:
    scoped = idempotency.scoped(principal, key)
    asked = idempotency.fingerprint(
        {"subscription_id": str(body.subscription_id), "plan_id": body.plan_id}
    )
    # Held to the end: a second request with the key waits (409) instead of asking too.
    with idempotency.held(engine, scoped):
        with engine.begin() as conn:
            invoice = repo.by_request_key(conn, scoped)
            if invoice is not None:
                idempotency.check_same(invoice["request_fingerprint"], asked)
            elif body.from_plan_id == body.plan_id:
                # The subscription service looking up a retried upgrade it already applied.
                raise DomainError(errors.NOT_FOUND, "no plan change was made under this key")
            else:
                invoice = _new(conn, scoped, asked, body, customers)
        if invoice["status"] == "open":
            invoice = collector.collect(invoice["id"])
        return answer(engine, invoice)


def _new(
    conn: Connection, scoped: str, asked: str, body: ProrationCreate, customers: ServiceClient
) -> RowMapping:
    earlier = repo.proration_in_flight(conn, body.subscription_id)
    if earlier is not None:
        if earlier["status"] == "paid" and earlier["plan_id"] == body.from_plan_id:
            # The subscription is on the plan that one paid for: it was applied.
            repo.update(conn, earlier["id"], pending_action=None)
        elif earlier["status"] == "paid" and (earlier["previous_plan_id"], earlier["plan_id"]) == (
            body.from_plan_id,
            body.plan_id,
        ):
            return earlier  # paid, never applied: the same change, asked again with a new key
        else:
            raise DomainError(
                errors.PRORATION_IN_PROGRESS,
                "another plan change of this subscription is being charged; retry shortly",
                headers={"Retry-After": "2"},
            )
    terms = _terms(conn, body, customers)
    amounts, priced = invoice_terms.lines(lines(body), terms)
    made = repo.insert_proration(
        conn,
        request_key=scoped,
        fingerprint=asked,
        subscription_id=body.subscription_id,
        customer_id=body.customer_id,
        tenant_id=body.tenant_id,
        currency=body.currency,
        plan_id=body.plan_id,
        previous_plan_id=body.from_plan_id,
        period_start=body.period_start,
        period_end=body.period_end,
        lines=priced,
        amounts=amounts,
        terms=terms,
    )
    if made is None:  # raced by another request between our lookup and insert
        raise DomainError(
            errors.PRORATION_IN_PROGRESS,
            "another plan change of this subscription is being charged; retry shortly",
            headers={"Retry-After": "2"},
        )
    invoice_events.emit(conn, made, "invoice.created")
    invoice_events.emit(conn, made, "invoice.finalized")
    return made


def _terms(conn: Connection, body: ProrationCreate, customers: ServiceClient) -> Terms:
    """Tax as on every invoice; a percent-off discount running at `at` (an amount off is
    per period, and a proration spends no period of it)."""
    found = invoice_terms.find(
        conn,
        tenant_id=body.tenant_id,
        subscription_id=body.subscription_id,
        currency=body.currency,
        period_start=body.at,
        address=tax_address(conn.engine, customers, body.tenant_id, body.customer_id),
    )
    if found.discount is not None and found.discount.percent_off_bp is None:
        return replace(found, discount=None, discount_id=None)
    return found


def answer(engine: Engine, invoice: RowMapping) -> Answer:
    """Paid: 201 with the invoice. Declined (void): 402. Charge unknown: 503, retry."""
    with engine.connect() as conn:
        body = repo.full(conn, invoice).model_dump(mode="json")
    if invoice["status"] == "paid":
        return Answer(201, body)
    if invoice["status"] == "void":
        declined = DomainError(
            errors.PAYMENT_DECLINED,
            "the upgrade's charge was declined; the subscription keeps its plan",
            decline_code=invoice["decline_code"],
            invoice=body,
        )
        return Answer(402, declined.body("/v1/prorations"))
    unknown = DomainError(
        errors.DEPENDENCY_UNAVAILABLE,
        "the charge's outcome is not known yet; retry with the same Idempotency-Key",
        headers={"Retry-After": "2"},
        dependency="payment-service",
        invoice_id=str(invoice["id"]),
    )
    raise unknown


# -- the recovery sweep ----------------------------------------------------------------------


def recover(
    engine: Engine,
    collector: Collector,
    subscriptions: ServiceClient,
    older_than: timedelta,
    limit: int,
) -> InvoiceSweep:
    """Finish proration invoices nobody came back for: settle an unknown charge (asking
    with its key), then tell the subscription service to apply a paid upgrade."""
    report = InvoiceSweep()
    with engine.connect() as conn:
        stale = repo.stale_prorations(conn, older_than, limit)
    for invoice in stale:
        report.examined += 1
        if invoice["status"] == "open":
            invoice = collector.collect(invoice["id"])
            report.paid += invoice["status"] == "paid"
            report.voided += invoice["status"] == "void"
            report.still_open += invoice["status"] == "open"
        if invoice["pending_action"] == "apply_upgrade":
            _apply(engine, subscriptions, invoice, report)
    if report.examined:
        log.info("billing.invoice_recovery", **report.model_dump())
    return report


def _apply(
    engine: Engine, subscriptions: ServiceClient, invoice: RowMapping, report: InvoiceSweep
) -> None:
    body = {
        "invoice_id": str(invoice["id"]),
        "from_plan_id": invoice["previous_plan_id"],
        "plan_id": invoice["plan_id"],
        "period_start": invoice["period_start"].isoformat(),
    }
    try:
        status, answer_ = subscriptions.call(
            "POST", f"/v1/subscriptions/{invoice['subscription_id']}/apply-upgrade", json=body
        )
    except ServiceError:
        status, answer_ = 503, {}
    if status not in (200, 409):
        report.errors += 1
        return
    if status == 409:
        # The subscription moved on (canceled, another period): paid for a change it can no
        # longer take. Kept visible for an operator (a refund) rather than retried forever.
        report.refused += 1
        log.error(
            "billing.upgrade_refused",
            invoice_id=str(invoice["id"]),
            detail=str(answer_.get("detail")),
        )
    else:
        report.applied += 1
    with engine.begin() as conn:
        repo.update(conn, invoice["id"], pending_action=None)
