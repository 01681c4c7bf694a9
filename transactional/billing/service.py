"""What each invoice API call does, apart from HTTP: reads under the tenancy rule, and the
operators' void and pay-now."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, RowMapping

from transactional.billing import repository as repo
from transactional.billing.collect import CHARGEABLE, Collector, void
from transactional.billing.models import Invoice, InvoicePage
from transactional.common import errors, idempotency, pagination, tenancy
from transactional.common.errors import DomainError
from transactional.common.security import Principal


def get(engine: Engine, principal: Principal, invoice_id: uuid.UUID) -> Invoice:
    with engine.connect() as conn:
        row = _visible(repo.get(conn, invoice_id), principal, invoice_id)
        return repo.full(conn, row)


def listed(
    engine: Engine, principal: Principal, filters: repo.Filters, limit: int, cursor: str | None
) -> InvoicePage:
    """The caller's invoices, newest first: a user's own customer's, a partner's tenant's,
    an internal caller's any (it may act for every tenant)."""
    scope = tenancy.list_scope(principal)
    after = pagination.decode_cursor(cursor)
    with engine.connect() as conn:
        rows = repo.page(conn, scope, filters, after, limit + 1)
        data = repo.many(conn, rows[:limit])
    cursor_row = rows[limit - 1] if len(rows) > limit else None
    return InvoicePage(
        data=data,
        next_cursor=pagination.encode_cursor(cursor_row["created_at"], cursor_row["id"])
        if cursor_row is not None
        else None,
    )


def void_invoice(engine: Engine, principal: Principal, invoice_id: uuid.UUID, key: str) -> Invoice:
    """Nothing is owed on it any more. A paid invoice cannot be voided (409; a refund or a
    credit note is the way back), nor one whose charge is in flight. Voiding a void invoice
    answers it as it is.

    A period's invoice voided during dunning forgives that period: its subscription, past
    due because of it, is reactivated into the period by the next billing run (as when an
    operator's pay-now collects it), rather than left past due with nothing owed."""
    with idempotency.held(engine, idempotency.scoped(principal, key)), engine.begin() as conn:
        row = _visible(repo.get(conn, invoice_id, lock=True), principal, invoice_id)
        if row["status"] == "paid":
            raise _refused(row, "a paid invoice cannot be voided; refund it instead")
        if row["status"] != "void":
            if repo.charge_in_flight(conn, invoice_id):
                raise _refused(row, "a charge of this invoice is in flight; retry shortly")
            retrying = repo.dunning_status(conn, invoice_id) == "retrying"
            forgiven = retrying and row["kind"] != "proration"
            row = void(conn, row, "voided_by_operator")
            if forgiven:
                row = repo.update(conn, invoice_id, pending_action="reactivate")
        return repo.full(conn, row)


def pay(
    engine: Engine, collector: Collector, principal: Principal, invoice_id: uuid.UUID, key: str
) -> Invoice:
    """Charge the amount due now (an operator's retry, outside the dunning schedule).
    A retry with the same key asks about the same attempt; a paid invoice answers as is."""
    scoped = idempotency.scoped(principal, key)
    with idempotency.held(engine, scoped):
        with engine.connect() as conn:
            row = _visible(repo.get(conn, invoice_id), principal, invoice_id)
            earlier = repo.attempt_by_request_key(conn, scoped)
        if earlier is not None and earlier["invoice_id"] != invoice_id:
            raise idempotency.reused()
        if earlier is not None:
            row = _ask_again(engine, collector, row, earlier)
        elif row["status"] in CHARGEABLE:
            row = collector.collect(invoice_id, request_key=scoped)
        elif row["status"] != "paid":
            raise _refused(row, f"a {row['status']} invoice cannot be paid")
        with engine.connect() as conn:
            return repo.full(conn, row)


def _ask_again(
    engine: Engine, collector: Collector, row: RowMapping, earlier: RowMapping
) -> RowMapping:
    if earlier["status"] != "pending":
        return row
    with engine.connect() as conn:
        key = repo.attempt_key(conn, row["id"], earlier["attempt"])
    return collector.settle(row, earlier["attempt"], key)


def _visible(row: RowMapping | None, principal: Principal, invoice_id: uuid.UUID) -> RowMapping:
    if row is None or not tenancy.owns(principal, row["customer_id"], row["tenant_id"]):
        raise tenancy.not_found("invoice", invoice_id)
    return row


def _refused(row: RowMapping, detail: str) -> DomainError:
    return DomainError(errors.INVOICE_STATE, detail, status_now=row["status"])
