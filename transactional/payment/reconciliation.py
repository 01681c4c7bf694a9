"""The daily check that Stripe's charges and the payments table tell the same story.

For one UTC day: every PaymentIntent Stripe created that day, and every payment we made
that day, matched by PaymentIntent id (or by the payment id we put in its metadata). Money
Stripe took that we have not recorded, money we recorded that Stripe did not take, and any
difference in amount or currency is a mismatch; totals are compared per currency. A
payment still pending is reported too: by the time a day is checked, the recovery sweep
should have settled it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, computed_field
from sqlalchemy import Engine, RowMapping

from transactional.payment import repository as repo
from transactional.payment.stripe_gateway import Gateway, Rejected, StripeIntent

TAKEN = ("succeeded", "partially_refunded", "refunded")
Discrepancy = Literal[
    "charged_not_recorded", "recorded_not_charged", "amount_differs", "still_pending"
]


class CurrencyTotals(BaseModel):
    currency: str
    stripe_count: int = 0
    stripe_amount: int = 0
    recorded_count: int = 0
    recorded_amount: int = 0


class Mismatch(BaseModel):
    problem: Discrepancy
    payment_id: str | None
    payment_intent_id: str | None
    currency: str
    amount: int
    stripe_status: str | None
    recorded_status: str | None


class Reconciliation(BaseModel):
    date: date
    totals: list[CurrencyTotals]
    mismatches: list[Mismatch]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def matched(self) -> bool:
        return not self.mismatches


def reconcile(engine: Engine, gateway: Gateway, day: date) -> Reconciliation:
    start = datetime.combine(day, time.min, UTC)
    end = start + timedelta(days=1)
    intents = {i.id: i for i in gateway.intents_created(start, end)}
    ours = [i.payment_id for i in intents.values() if i.payment_id]
    with engine.connect() as conn:
        rows = repo.payments_to_reconcile(conn, start, end, list(intents), _uuids(ours))
    for row in rows:  # made today, its intent made on another day (midnight, retries)
        pi = row["stripe_payment_intent_id"]
        if pi and pi not in intents:
            try:
                intents[pi] = gateway.intent(pi)
            except Rejected:
                continue  # Stripe has no such intent: the row is reported below

    by_intent = {r["stripe_payment_intent_id"]: r for r in rows if r["stripe_payment_intent_id"]}
    by_id = {str(r["id"]): r for r in rows}
    totals: dict[str, CurrencyTotals] = defaultdict(lambda: CurrencyTotals(currency=""))
    mismatches: list[Mismatch] = []
    seen_rows: set[str] = set()
    for intent in intents.values():
        match = by_intent.get(intent.id) or by_id.get(intent.payment_id or "")
        if intent.succeeded:
            _add(totals, intent.currency, stripe=intent.amount)
        if match is not None:
            seen_rows.add(str(match["id"]))
        problem = _compare(intent, match)
        if problem:
            mismatches.append(_mismatch(problem, intent, match))
    for row in rows:
        if row["status"] in TAKEN:
            _add(totals, row["currency"], recorded=row["amount"])
        if str(row["id"]) in seen_rows:
            continue
        if row["status"] in TAKEN:
            mismatches.append(_mismatch("recorded_not_charged", None, row))
        elif row["status"] == "pending":
            mismatches.append(_mismatch("still_pending", None, row))
    return Reconciliation(
        date=day,
        totals=sorted(totals.values(), key=lambda t: t.currency),
        mismatches=mismatches,
    )


def _compare(intent: StripeIntent, row: RowMapping | None) -> Discrepancy | None:
    if row is None:
        return "charged_not_recorded" if intent.succeeded else None
    if row["status"] == "pending":
        return "still_pending"
    if intent.succeeded != (row["status"] in TAKEN):
        return "charged_not_recorded" if intent.succeeded else "recorded_not_charged"
    if intent.succeeded and (intent.amount, intent.currency) != (row["amount"], row["currency"]):
        return "amount_differs"
    return None


def _add(
    totals: dict[str, CurrencyTotals], currency: str, *, stripe: int = 0, recorded: int = 0
) -> None:
    entry = totals[currency]
    entry.currency = currency
    entry.stripe_count += int(bool(stripe))
    entry.stripe_amount += stripe
    entry.recorded_count += int(bool(recorded))
    entry.recorded_amount += recorded


def _mismatch(
    problem: Discrepancy, intent: StripeIntent | None, row: RowMapping | None
) -> Mismatch:
    return Mismatch(
        problem=problem,
        payment_id=str(row["id"]) if row is not None else (intent.payment_id if intent else None),
        payment_intent_id=intent.id
        if intent
        else (row["stripe_payment_intent_id"] if row else None),
        currency=intent.currency if intent else str(row["currency"] if row else ""),
        amount=intent.amount if intent else int(row["amount"] if row else 0),
        stripe_status=intent.status if intent else None,
        recorded_status=str(row["status"]) if row is not None else None,
    )


def _uuids(values: list[str]) -> list[uuid.UUID]:
    out = []
    for value in values:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            continue  # an intent someone else made with a payment_id of another shape
    return out
