"""The code location: each domain's assets, checks, jobs, schedules and sensors
(`assets/<domain>/definitions.py`), with the resources for the environment that
`paywall.settings` describes, chosen once, here.

`defs` is lazy (Dagster's `@definitions`): importing this module builds nothing and runs
nothing; Dagster calls it when it loads the location, and only then is the dbt manifest
read (or parsed, see assets/warehouse/dbt_project.py).
"""

from __future__ import annotations

from dagster import Definitions, definitions

from assets.audit_archive import definitions as audit_archive
from assets.billing import definitions as billing
from assets.events import definitions as events
from assets.notifications import definitions as notifications
from assets.payments import definitions as payments
from assets.warehouse import definitions as warehouse
from paywall.settings import Settings, get_settings
from pipelines.resources import build_resources

DOMAINS = (billing, audit_archive, notifications, payments, events, warehouse)


def build_defs(settings: Settings) -> Definitions:
    return Definitions.merge(
        *(domain.defs(settings) for domain in DOMAINS),
        Definitions(resources=build_resources(settings)),
    )


@definitions
def defs() -> Definitions:
    return build_defs(get_settings())
