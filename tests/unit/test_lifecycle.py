from __future__ import annotations

from datetime import UTC, datetime

import pytest

from transactional.subscription import lifecycle


def test_allowed_transitions_only() -> None:
    assert lifecycle.transition("incomplete", "active") == "active"
    assert lifecycle.transition("past_due", "canceled") == "canceled"
    for current, target in [
        ("canceled", "active"),
        ("incomplete", "paused"),
        ("active", "trialing"),
        ("paused", "past_due"),
    ]:
        with pytest.raises(lifecycle.TransitionRefused):
            lifecycle.transition(current, target)


def test_canceled_is_terminal() -> None:
    assert lifecycle.ALLOWED["canceled"] == frozenset()


def test_upgrade_halfway_through_a_30_day_period_costs_half_the_difference() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    p = lifecycle.prorate(900, 2900, start, end, datetime(2026, 11, 16, 12, tzinfo=UTC))
    assert (p.days_left, p.days_in_period) == (15, 30)
    assert (p.credit, p.charge, p.amount_due) == (450, 1450, 1000)


def test_proration_is_bounded_by_the_period() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    after = lifecycle.prorate(900, 2900, start, end, datetime(2027, 1, 1, tzinfo=UTC))
    assert after.amount_due == 0
    before = lifecycle.prorate(900, 2900, start, end, datetime(2026, 10, 1, tzinfo=UTC))
    assert (before.credit, before.charge) == (900, 2900)


def test_periods() -> None:
    start = datetime(2026, 1, 31, tzinfo=UTC)
    assert lifecycle.period_end(start, "month") == datetime(2026, 2, 28, tzinfo=UTC)
    assert lifecycle.period_end(start, "year") == datetime(2027, 1, 31, tzinfo=UTC)
