"""The demo's clock: a few months of history made in a couple of minutes.

Everything the services write is stamped with the wall clock. The demo plays its story in
order (a cohort's signups, a plan change, each billing day) and, after each step, moves what
that step wrote to the step's simulated moment, before anything is relayed:

* the outbox rows the step wrote (every service's, not yet published): `occurred_at`, and
  for a signup every timestamp in the event's data (all of them derive from "now": the
  first period, the trial's end); for a later step only the timestamps that were "now"
  during the step (a renewal's period comes from the simulated one and stays);
* for a signup, the new subscriptions' periods and trial ends, so billing finds them due
  on the simulated days, their coupons' discounts (start, the first period spent), and
  their first-period invoices (period, issued and paid on the signup's day).

Only the demo does this (the `paywall demo` command, on its own local stack): it is the
same time travel the tests do for one subscription (tests/integration/test_billing.py's
move_period_end), applied to a story.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text


@dataclass(frozen=True)
class Window:
    """What a step wrote: everything stamped from `started` on."""

    started: datetime

    @staticmethod
    def open() -> Window:
        return Window(datetime.now(UTC))


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 19 or value[4] != "-" or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _shifted(data: Any, delta: timedelta, since: datetime | None) -> Any:
    """`data` with its timestamps moved by `delta`: all of them, or (`since` given) those
    stamped from `since` on."""
    if isinstance(data, dict):
        return {k: _shifted(v, delta, since) for k, v in data.items()}
    if isinstance(data, list):
        return [_shifted(v, delta, since) for v in data]
    stamp = _parse(data)
    if stamp is None or (since is not None and stamp < since - timedelta(seconds=1)):
        return data
    return (stamp + delta).isoformat(timespec="microseconds")


def _schemas(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        query = "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        found: list[str] = list(conn.execute(text(query)).scalars())
        return sorted(set(found))


def move_events(engine: Engine, window: Window, to: datetime, *, signup: bool) -> int:
    """The unpublished events written since the window opened, moved so that the first
    happens at `to` (their order and spacing kept)."""
    delta = to - window.started
    moved = 0
    with engine.begin() as conn:
        for schema in _schemas(engine):
            rows = conn.execute(
                text(
                    f"SELECT seq, payload FROM {schema}.outbox "
                    "WHERE published_at IS NULL AND created_at >= :since ORDER BY seq"
                ),
                {"since": window.started},
            ).all()
            for seq, payload in rows:
                body: dict[str, Any] = json.loads(json.dumps(payload))
                body["occurred_at"] = _shifted(body["occurred_at"], delta, None)
                body["data"] = _shifted(body["data"], delta, None if signup else window.started)
                conn.execute(
                    text(
                        f"UPDATE {schema}.outbox SET payload = CAST(:p AS jsonb) WHERE seq = :seq"
                    ),
                    {"p": json.dumps(body), "seq": seq},
                )
                moved += 1
        if not signup:
            # An invoice the step wrote or changed is as of the step's moment too: the
            # warehouse check compares the invoices changed up to the newest event loaded.
            conn.execute(
                text(
                    "UPDATE billing.invoices SET updated_at = updated_at + :d "
                    "WHERE updated_at >= :since"
                ),
                {"d": delta, "since": window.started},
            )
            # and one it made was issued then (the PDF's "Issued" date).
            conn.execute(
                text(
                    "UPDATE billing.invoices SET created_at = created_at + :d, "
                    "finalized_at = finalized_at + :d WHERE created_at >= :since"
                ),
                {"d": delta, "since": window.started},
            )
    return moved


def move_signups(engine: Engine, window: Window, to: datetime) -> None:
    """The subscriptions signed up since the window opened, as if made at `to`."""
    delta = to - window.started
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE subscription.subscriptions SET "
                "current_period_start = current_period_start + :d, "
                "current_period_end = current_period_end + :d, "
                "trial_end = trial_end + :d, created_at = created_at + :d "
                "WHERE created_at >= :since"
            ),
            {"d": delta, "since": window.started},
        )
        # A coupon redeemed at signup starts (and spent its first period) with it: billing
        # discounts only periods from the discount's start on.
        conn.execute(
            text(
                "UPDATE billing.discount_uses SET period_start = period_start + :d, "
                "used_at = used_at + :d WHERE discount_id IN "
                "(SELECT id FROM billing.discounts WHERE created_at >= :since)"
            ),
            {"d": delta, "since": window.started},
        )
        conn.execute(
            text(
                "UPDATE billing.discounts SET start = start + :d, created_at = created_at + :d "
                "WHERE created_at >= :since"
            ),
            {"d": delta, "since": window.started},
        )
        _move_first_periods(conn, delta, window.started)
    move_events(engine, window, to, signup=True)


def _move_first_periods(conn: Connection, delta: timedelta, since: datetime) -> None:
    """A paid signup's first-period invoice goes with its subscription: its period and
    lines, issued, paid and charged on the signup's day (billing's day checks and the
    warehouse's watermark read those dates)."""
    made = "SELECT id FROM billing.invoices WHERE kind = 'first_period' AND created_at >= :since"
    day = "CAST((created_at + :d) AT TIME ZONE 'UTC' AS date)"
    conn.execute(
        text(
            "UPDATE billing.invoice_lines SET period_start = period_start + :d, "
            f"period_end = period_end + :d WHERE invoice_id IN ({made})"
        ),
        {"d": delta, "since": since},
    )
    conn.execute(
        text(
            f"UPDATE billing.attempts SET attempted_on = {day}, created_at = created_at + :d, "
            f"finished_at = finished_at + :d WHERE invoice_id IN ({made})"
        ),
        {"d": delta, "since": since},
    )
    conn.execute(
        text(
            "UPDATE billing.invoices SET period_start = period_start + :d, "
            "period_end = period_end + :d, created_at = created_at + :d, "
            "finalized_at = finalized_at + :d, updated_at = updated_at + :d, "
            f"billing_date = {day}, paid_on = {day} WHERE id IN ({made})"
        ),
        {"d": delta, "since": since},
    )


def next_billing_day(engine: Engine, after: date | None, before: date) -> date | None:
    """The first day after `after` and before `before` on which billing has something to
    do: a period that ends (renewal, trial conversion, cancellation) or a dunning retry."""
    with engine.connect() as conn:
        day: date | None = conn.execute(
            text(
                "SELECT min(d) FROM ("
                "SELECT CAST(current_period_end AT TIME ZONE 'UTC' AS date) AS d "
                "FROM subscription.subscriptions WHERE status IN ('active', 'trialing') "
                "UNION ALL SELECT next_attempt_on FROM billing.dunning "
                "WHERE status = 'retrying') AS due "
                "WHERE d < :before AND (CAST(:after AS date) IS NULL OR d > :after)"
            ),
            {"after": after, "before": before},
        ).scalar_one()
    return day


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
