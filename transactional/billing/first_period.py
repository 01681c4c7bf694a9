"""A signup's first charge as its first period's invoice (internal: the registration saga
asks, `POST /v1/first_period_invoices`, right after its charge and before it activates).

The saga charges the first period itself (the payment service, keyed by the subscription's
first period); this records that money as an invoice like any other: a subscription line at
the plan's price, the coupon's discount line and the tax, priced by the same terms as the
saga's quote (streaming/invoice_terms.py; the quote spent the discount's first period, so
asking again finds the same discount), made `paid` by the saga's payment, with its
invoice.created, invoice.finalized and invoice.paid events in the same transaction. With
it, a prorated cancellation in the first period has a paid invoice to credit, and the
signup's money is in billed and collected like a renewal's.

One per subscription, however often asked: the request key names the subscription
(`first_period:<id>`), and invoices are unique per subscription and period, so a retried
or resumed saga (or two racing) is answered the invoice the first made. Asked again for
the same subscription with another payment is a conflict: one first period, one charge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, text

from paywall import pricing
from paywall.logs import get_logger
from paywall.service_client import ServiceClient
from streaming import invoice_events, invoice_terms
from transactional.billing import repository as repo
from transactional.billing.coupons import tax_address
from transactional.billing.models import FirstPeriodCreate
from transactional.common import errors, idempotency
from transactional.common.errors import DomainError
from transactional.common.idempotency import Answer

log = get_logger(__name__)


def request_key(body: FirstPeriodCreate) -> str:
    return f"first_period:{body.subscription_id}"


def create(engine: Engine, customers: ServiceClient, body: FirstPeriodCreate) -> Answer:
    """The first period's paid invoice: 201 when made now, 200 when made before."""
    key = request_key(body)
    asked = idempotency.fingerprint(
        {
            "subscription_id": str(body.subscription_id),
            "payment_id": body.payment_id,
            "charged": body.charged,
            "currency": body.currency,
            "period_start": body.period_start,
        }
    )
    with engine.connect() as conn:
        earlier = repo.by_request_key(conn, key)
    if earlier is not None:
        return _again(engine, earlier, asked)
    # Asked before the transaction: no row lock is held while another service answers.
    address = tax_address(engine, customers, body.tenant_id, body.customer_id)
    with engine.begin() as conn:
        terms = invoice_terms.find(
            conn,
            tenant_id=body.tenant_id,
            subscription_id=body.subscription_id,
            currency=body.currency,
            period_start=body.period_start,
            address=address,
            lock=True,
        )
        terms, amounts, lines = _priced(body, terms)
        made = repo.insert_first_period(
            conn,
            request_key=key,
            fingerprint=asked,
            subscription_id=body.subscription_id,
            customer_id=body.customer_id,
            tenant_id=body.tenant_id,
            currency=body.currency,
            plan_id=body.plan_id,
            period_start=body.period_start,
            period_end=body.period_end,
            payment_id=body.payment_id,
            lines=lines,
            amounts=amounts,
            terms=terms,
        )
        if made is not None:
            made = _paid(conn, made, body, terms if amounts.discount else None)
    if made is None:
        # Made meanwhile (a racing attempt of the same saga): its invoice is the answer.
        with engine.connect() as conn:
            found = repo.by_request_key(conn, key) or repo.live_invoice_of_period(
                conn, body.subscription_id, body.period_start
            )
        if found is None:  # unreachable: the insert gave way to a row that exists
            raise DomainError(errors.DEPENDENCY_UNAVAILABLE, "retry shortly")
        return _again(engine, found, asked)
    return _answer(engine, made, 201)


def _priced(
    body: FirstPeriodCreate, terms: invoice_terms.Terms
) -> tuple[invoice_terms.Terms, pricing.Amounts, list[dict[str, Any]]]:
    """The lines as any invoice has them; if they no longer add up to what was charged (a
    tax rate or address changed between the saga's quote and now), the invoice says what
    was charged, in one line, and the difference is logged for an operator: the money taken
    is the fact an invoice must match."""
    base = [
        {
            "kind": "subscription",
            "description": body.plan_id,
            "plan_id": body.plan_id,
            "amount": body.amount,
            "period_start": body.period_start,
            "period_end": body.period_end,
        }
    ]
    amounts, lines = invoice_terms.lines(base, terms)
    if amounts.total == body.charged:
        return terms, amounts, lines
    log.error(
        "billing.first_period_price_changed",
        subscription_id=str(body.subscription_id),
        charged=body.charged,
        priced_now=amounts.total,
    )
    charged = [{**base[0], "amount": body.charged}]
    return (invoice_terms.NONE, *invoice_terms.lines(charged, invoice_terms.NONE))


def _paid(
    conn: Connection,
    invoice: RowMapping,
    body: FirstPeriodCreate,
    discounted: invoice_terms.Terms | None,
) -> RowMapping:
    """Events, the charge as the invoice's attempt, and the discount's period named."""
    free = body.payment_id.startswith("free:")
    if body.payment_key and not free:
        repo.record_paid_attempt(conn, invoice["id"], body.payment_key, body.payment_id)
        found = repo.get(conn, invoice["id"])
        assert found is not None
        invoice = found
    if discounted is not None and discounted.discount_id is not None:
        # The saga's quote spent the period (with no invoice yet); this is its invoice.
        invoice_terms.spend(conn, discounted.discount_id, body.period_start, invoice["id"])
        conn.execute(
            text(
                "UPDATE billing.discount_uses SET invoice_id = :i WHERE discount_id = :d "
                "AND period_start = :p AND invoice_id IS NULL"
            ),
            {"i": invoice["id"], "d": discounted.discount_id, "p": body.period_start},
        )
    # Each event carries the invoice as it was after its step: made and finalized open
    # with its total due, then paid.
    opened: Mapping[str, Any] = {
        **invoice,
        "status": "open",
        "amount_paid": 0,
        "amount_due": invoice["total"],
    }
    invoice_events.emit(conn, opened, "invoice.created")
    invoice_events.emit(conn, opened, "invoice.finalized")
    invoice_events.emit(conn, invoice, "invoice.paid", payment_id=None if free else body.payment_id)
    return invoice


def _again(engine: Engine, invoice: RowMapping, asked: str) -> Answer:
    """An invoice made by an earlier request: the same charge's is answered as it is."""
    if invoice["kind"] != "first_period" or invoice["request_fingerprint"] != asked:
        raise DomainError(
            errors.ALREADY_EXISTS,
            "the subscription's first period is invoiced already, for another charge",
            invoice_id=str(invoice["id"]),
        )
    return _answer(engine, invoice, 200)


def _answer(engine: Engine, invoice: RowMapping, status: int) -> Answer:
    with engine.connect() as conn:
        body = repo.full(conn, invoice).model_dump(mode="json")
    return Answer(status, body, replayed=status == 200)
