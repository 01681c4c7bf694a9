"""Proration by the second, one rounding rule: checked for any plans, period and moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from paywall import pricing

START = datetime(2026, 1, 1, tzinfo=UTC)
amounts = st.integers(min_value=0, max_value=10_000_000)


def test_upgrade_halfway_through_a_30_day_period_costs_half_the_difference() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    p = pricing.prorate(900, 2900, start, end, datetime(2026, 11, 16, tzinfo=UTC))
    assert (p.seconds_left, p.seconds_in_period) == (15 * 86400, 30 * 86400)
    assert (p.credit, p.charge, p.amount_due) == (450, 1450, 1000)


def test_half_a_cent_rounds_up_on_each_side() -> None:
    # 1 cent over a period, half of it left: 0.5 → 1, on the credit and on the charge.
    p = pricing.prorate(1, 3, START, START + timedelta(seconds=2), START + timedelta(seconds=1))
    assert (p.credit, p.charge) == (1, 2)  # 0.5 → 1, 1.5 → 2


def test_proration_is_bounded_by_the_period() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    after = pricing.prorate(900, 2900, start, end, datetime(2027, 1, 1, tzinfo=UTC))
    assert after.amount_due == 0
    before = pricing.prorate(900, 2900, start, end, datetime(2026, 10, 1, tzinfo=UTC))
    assert (before.credit, before.charge) == (900, 2900)


@given(
    old=amounts,
    new=amounts,
    seconds=st.integers(min_value=1, max_value=400 * 86400),
    moment=st.floats(min_value=0, max_value=1, allow_nan=False),
)
def test_credit_and_charge_add_up_to_each_plans_share_within_a_cent(
    old: int, new: int, seconds: int, moment: float
) -> None:
    end = START + timedelta(seconds=seconds)
    at = START + timedelta(seconds=int(seconds * moment))
    p = pricing.prorate(old, new, START, end, at)
    used, left = Fraction(seconds - p.seconds_left, seconds), Fraction(p.seconds_left, seconds)
    assert p.seconds_in_period == seconds and 0 <= p.seconds_left <= seconds
    # What the period costs, paid as: the old plan in full, less its credit, plus the charge.
    paid = old - p.credit + p.charge
    exact = old * used + new * left
    assert abs(paid - exact) <= 1
    # And each side on its own is within half a cent of its exact share.
    assert abs(p.credit - old * left) <= Fraction(1, 2)
    assert abs(p.charge - new * left) <= Fraction(1, 2)
