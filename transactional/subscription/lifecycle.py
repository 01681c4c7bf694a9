"""The subscription state machine and its periods: pure functions, no I/O. (What a plan
change costs is paywall/pricing.py: billing charges it.)"""

from __future__ import annotations

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
