"""What an immediate plan change costs: proration by the second, with one rounding rule.

The rule, written once: each side is the plan's price times the seconds left in the
period over the seconds in the period, rounded half up to a whole minor unit on its own
(a credit for the old plan, a charge for the new). Rounded separately, each is within
half a cent of its exact share, so credit and charge together are within one cent of
what the two plans cost for their shares of the period; and the invoice shows the same
two amounts the customer can check. Pure: no I/O, no clock (the moment is passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Proration:
    """What an immediate plan change credits and charges for the rest of the period."""

    seconds_left: int
    seconds_in_period: int
    credit: int  # unused part of the old plan, minor units
    charge: int  # remaining part of the new plan, minor units

    @property
    def amount_due(self) -> int:
        return self.charge - self.credit


def share(amount: int, part: int, whole: int) -> int:
    """`amount * part / whole`, rounded half up (the one rounding rule); whole > 0."""
    return (2 * amount * part + whole) // (2 * whole)


def prorate(
    old_amount: int, new_amount: int, period_start: datetime, period_end: datetime, at: datetime
) -> Proration:
    """Credit for `old_amount`'s unused seconds, charge for `new_amount`'s, from `at`."""
    whole = max(int((period_end - period_start).total_seconds()), 1)
    left = min(max(int((period_end - at).total_seconds()), 0), whole)
    return Proration(left, whole, share(old_amount, left, whole), share(new_amount, left, whole))
