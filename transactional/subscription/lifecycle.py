"""The subscription state machine and proration: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

# Every state change goes through `transition`; anything not listed is refused.
ALLOWED: dict[str, frozenset[str]] = {
    "incomplete": frozenset({"active", "canceled"}),
    "trialing": frozenset({"active", "past_due", "paused", "canceled"}),
    "active": frozenset({"past_due", "paused", "canceled"}),
    "past_due": frozenset({"active", "canceled"}),
    "paused": frozenset({"active", "canceled"}),
    "canceled": frozenset(),
}


class TransitionRefused(ValueError):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a {current} subscription cannot become {target}")
        self.current = current
        self.target = target


def transition(current: str, target: str) -> str:
    if target not in ALLOWED.get(current, frozenset()):
        raise TransitionRefused(current, target)
    return target


def period_end(start: datetime, interval: str) -> datetime:
    return start + (relativedelta(months=1) if interval == "month" else relativedelta(years=1))


def trial_period(start: datetime, trial_days: int) -> datetime:
    return start + timedelta(days=trial_days)


@dataclass(frozen=True)
class Proration:
    """What an immediate plan change costs for the rest of the period, by day."""

    days_left: int
    days_in_period: int
    credit: int  # unused part of the old plan, minor units
    charge: int  # remaining part of the new plan, minor units

    @property
    def amount_due(self) -> int:
        return self.charge - self.credit


def prorate(
    old_amount: int,
    new_amount: int,
    period_start: datetime,
    period_end_: datetime,
    now: datetime,
) -> Proration:
    total = max((period_end_.date() - period_start.date()).days, 1)
    left = min(max((period_end_.date() - now.date()).days, 0), total)
    # Round each side half-up on its own so credit + charge reconcile with invoices.
    credit = (old_amount * left * 2 + total) // (2 * total)
    charge = (new_amount * left * 2 + total) // (2 * total)
    return Proration(left, total, credit, charge)
