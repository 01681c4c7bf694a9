"""Every resource the code location's assets, checks and sensors name, built once for the
environment that `settings` describe. The classes live beside the assets that use them
(shared ones in assets/shared/resources.py)."""

from __future__ import annotations

from typing import Any

from assets.shared.resources import Database, Lake, Services
from assets.warehouse.dbt import dbt_resource
from assets.warehouse.resources import WarehouseResource
from paywall.settings import Settings
from streaming.notifications.senders import Senders


def build_resources(settings: Settings) -> dict[str, Any]:
    return {
        "database": Database(settings),
        "lake": Lake(settings),
        "services": Services(settings),
        "senders": Senders(settings),
        "warehouse": WarehouseResource(settings),
        "dbt": dbt_resource(settings),
    }
