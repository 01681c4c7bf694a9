"""When a failed delivery is tried again: exponential backoff with full jitter, 3 days.

Like Stripe's (and Svix's) schedules: quick retries first for a blip, then hours apart
for an outage, for up to three days after the event. Full jitter (a uniform draw below
the exponential ceiling, AWS's "Exponential Backoff And Jitter") spreads the retries of
many deliveries that failed together, so a recovering receiver is not hit all at once.
`scale` shrinks the whole schedule (WEBHOOK_SCHEDULE_SCALE): tests run it in seconds.
"""

from __future__ import annotations

import random
from datetime import timedelta

BASE = timedelta(seconds=30)
CEILING = timedelta(hours=8)
WINDOW = timedelta(days=3)


def window(scale: float) -> timedelta:
    """How long after its first try a delivery is given up."""
    return WINDOW * scale


def retry_delay(attempts: int, scale: float, rng: random.Random | None = None) -> timedelta:
    """The wait after the `attempts`-th failed try (1-based): uniform in [0, ceiling)."""
    ceiling = min(BASE * 2 ** min(attempts - 1, 20), CEILING) * scale
    return ceiling * (rng or random).random()
