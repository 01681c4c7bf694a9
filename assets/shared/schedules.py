"""Whether schedules run from the start: decided here, once, from settings.

Production: RUNNING. The deploy is the source of truth; a new instance (or a wiped one)
must bill, archive and notify without anyone switching schedules on in the UI.
Anywhere else (`dagster dev` on a laptop, tests): STOPPED. Loading the code location must
not start charging cards, sending notices or calling services that may not be up; start
a schedule in the UI (Automation) or with `dagster schedule start`. Sensors are not
schedules: the run-failure alert and the lake sensor run everywhere.
"""

from __future__ import annotations

from dagster import DefaultScheduleStatus

from paywall.settings import Settings


def schedule_status(settings: Settings) -> DefaultScheduleStatus:
    return (
        DefaultScheduleStatus.RUNNING if settings.is_production else DefaultScheduleStatus.STOPPED
    )
