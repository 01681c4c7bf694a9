"""Who answers for an asset and how fresh an operator may expect it: owners and freshness
policies, set by each domain on its own part of the code location.

Freshness follows the schedules (UTC, assets/<domain>/definitions.py): a daily asset must
have materialized within a day by a deadline a couple of hours after its run starts, so a
failed or skipped run shows as overdue in the UI (and in Dagster's freshness alerts) the
same morning instead of when someone notices the money missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from dagster import AssetsDefinition, AssetSpec, FreshnessPolicy, map_asset_specs

DAY = timedelta(hours=24)


def daily_by(hour: int) -> FreshnessPolicy:
    """Materialized within the last day, checked every day at `hour`:00 UTC."""
    return FreshnessPolicy.cron(deadline_cron=f"0 {hour} * * *", lower_bound_delta=DAY)


def stewarded(
    assets: Sequence[AssetsDefinition],
    owner: str,
    freshness: Mapping[str, FreshnessPolicy] | None = None,
) -> list[AssetsDefinition]:
    """`assets` with `owner` on each and the freshness policy of each asset named (by its
    key, as the UI writes it: `billing_run`, `marts/mrr_monthly`)."""
    fresh = dict(freshness or {})

    def steward(spec: AssetSpec) -> AssetSpec:
        policy = fresh.pop(spec.key.to_user_string(), spec.freshness_policy)
        return spec.replace_attributes(owners=[owner], freshness_policy=policy)

    mapped = map_asset_specs(steward, assets)
    if fresh:  # a policy for an asset the domain does not define: a typo, said at load
        raise KeyError(f"freshness for unknown assets: {sorted(fresh)}")
    return list(mapped)
