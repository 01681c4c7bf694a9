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


def test_periods() -> None:
    start = datetime(2026, 1, 31, tzinfo=UTC)
    assert lifecycle.period_end(start, "month") == datetime(2026, 2, 28, tzinfo=UTC)
    assert lifecycle.period_end(start, "year") == datetime(2027, 1, 31, tzinfo=UTC)
