"""The demo's Dagster: a persistent instance in the demo's state dir, and the code
location's assets materialized through it, so `dagster dev -w workspace.yaml` shows
afterwards what the demo did (runs, partitions, metadata, checks).

The instance is the repo's dagster.yaml with its folders under `<state dir>/dagster`: with
the default state dir (.paywall) that is the very instance `dagster dev` opens from the
repo's root.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from dagster import DagsterInstance, materialize

from paywall.settings import Settings, state_dir

REPO = Path(__file__).resolve().parents[2]
DEMO_TAG = {"paywall/demo": "true"}
# The run's events still go to the instance (the UI shows them); the terminal shows tables.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def demo_instance() -> DagsterInstance:
    home = state_dir() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = yaml.safe_load((REPO / "dagster.yaml").read_text(encoding="utf-8"))
    config["storage"]["sqlite"]["base_dir"] = str(home / "storage")
    config["local_artifact_storage"]["config"]["base_dir"] = str(home)
    config["compute_logs"]["config"]["base_dir"] = str(home / "logs")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return DagsterInstance.from_config(str(home))


class DemoDagster:
    """Materializes the code location's assets, each run recorded in the demo's instance."""

    def __init__(self, settings: Settings, instance: DagsterInstance) -> None:
        from pipelines.resources import build_resources

        # Dagster's own log lines (dbt's progress, step events) would drown the tables.
        logging.getLogger("dagster").setLevel(logging.ERROR)
        self.instance = instance
        self.resources = build_resources(settings)
        self.failed: list[str] = []
        self.invoices_match = "not run"

    def _run(
        self,
        what: str,
        assets: Sequence[Any],
        partition_key: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Any:
        result = materialize(
            assets,
            instance=self.instance,
            resources=self.resources,
            partition_key=partition_key,
            tags={**DEMO_TAG, **(tags or {})},
            run_config=QUIET,
            raise_on_error=False,
        )
        if not result.success:
            self.failed.append(f"{what} (run {result.run_id[:8]})")
        return result

    def billing_day(self, day: date) -> bool:
        """The day as the schedule and the sensor bill it: every shard of the day, then
        the close the billing-day sensor asks for (billing_run and its blocking checks),
        then the day's notification batch."""
        from dagster import build_sensor_context

        from assets.billing.assets import billing_run, billing_shard, shard_keys
        from assets.billing.checks import billing_invoiced_once, billing_paid_matches_charges
        from assets.billing.sensors import billing_day_sensor
        from assets.notifications.assets import notification_batch
        from assets.notifications.checks import notification_batch_settled

        shards = [
            self._run(f"billing {day} shard {key.keys_by_dimension['shard']}", [billing_shard], key)
            for key in shard_keys(day.isoformat())
        ]
        if not all(result.success for result in shards):
            return False
        asked = billing_day_sensor(build_sensor_context(instance=self.instance))
        if day.isoformat() not in {r.partition_key for r in getattr(asked, "run_requests", [])}:
            self.failed.append(f"billing {day}: the billing-day sensor did not close the day")
            return False
        assets = [
            billing_run,
            billing_invoiced_once,
            billing_paid_matches_charges,
            notification_batch,
            notification_batch_settled,
        ]
        return bool(self._run(f"billing {day} close", assets, day.isoformat()).success)

    def warehouse(self) -> tuple[int, str]:
        """Each new lake partition into raw_events (its contract check first), then dbt
        build with the marts' checks: the warehouse_job's assets. Partitions loaded, and
        what dbt built."""
        from assets.warehouse.assets import lake_partitions, partition_key, raw_events
        from assets.warehouse.checks import (
            RANGE_END,
            RANGE_START,
            billing_match_check,
            mart_checks,
            raw_events_unique_event_ids,
        )
        from assets.warehouse.dbt import paywall_dbt
        from assets.warehouse.loader import partitions_to_load

        todo = [partition_key(p) for p in partitions_to_load(self.resources["warehouse"].warehouse)]
        name = lake_partitions.name or ""
        self.instance.add_dynamic_partitions(name, todo)
        known = self.instance.get_dynamic_partitions(name)
        at = sorted(known.index(key) for key in todo)
        assets = [raw_events, raw_events_unique_event_ids]
        if at and at == list(range(at[0], at[-1] + 1)):
            # One run for the whole catch-up (raw_events' single-run backfill policy): a
            # run per partition would spend seconds each on starting up.
            first, last = known[at[0]], known[at[-1]]
            tags = {RANGE_START: first, RANGE_END: last}
            loaded = (
                len(todo)
                if self._run(f"raw_events {first} … {last}", assets, None, tags).success
                else 0
            )
        else:  # partitions of earlier demos reloaded between new ones: one run each
            loaded = sum(bool(self._run(f"raw_events {key}", assets, key).success) for key in todo)
        # The warehouse_job's checks, the blocking fct_invoices_match_billing among them.
        built = self._run("dbt build", [paywall_dbt(), *mart_checks(), billing_match_check()])
        checks = built.get_asset_check_evaluations()
        failed = sum(not c.passed for c in checks)
        for check in checks:
            if check.check_name == "fct_invoices_match_billing":
                compared = check.metadata.get("invoices_compared")
                self.invoices_match = f"{'PASS' if check.passed else 'FAIL'} " + (
                    f"({compared.value} invoices compared)" if compared is not None else ""
                )
        models = len(built.get_asset_materialization_events())
        return (
            loaded,
            f"{models} models, {len(checks)} checks: PASS={len(checks) - failed} ERROR={failed}",
        )

    def billing_report(self, day: date) -> bool:
        from assets.billing.report_asset import billing_report

        return bool(self._run(f"billing_report {day}", [billing_report], day.isoformat()).success)
