"""The code location loads (in process and through `dagster definitions validate`), lists
every asset, check, job, schedule and sensor, and a failed run emails the ops address."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    DynamicPartitionsDefinition,
    asset,
    build_run_status_sensor_context,
    materialize,
)

from paywall.settings import Settings
from pipelines.definitions import build_defs
from pipelines.resources import Senders
from pipelines.sensors import ops_alert_on_run_failure
from tests.conftest import REPO, Api

# daily partitioned
ASSETS = {
    "billing_run",
    "audit_archive",
    "notification_batch",
    "stripe_reconciliation",
    "event_completeness",
}
UNPARTITIONED = {"payment_recovery"}
WAREHOUSE_ASSETS = {"raw_events"}  # one dynamic partition per lake (event_type, day) folder
DBT_ASSETS = {
    "reference/plan_catalog",
    "staging/stg_customers",
    "staging/stg_payment_accounts",
    "staging/stg_payments",
    "staging/stg_registrations",
    "staging/stg_subscription_events",
    "staging/stg_users",
    "intermediate/int_subscription_states",
    "intermediate/int_customer_mrr_monthly",
    "marts/dim_plans",
    "marts/dim_customers",
    "marts/fct_subscriptions",
    "marts/fct_payments",
    "marts/fct_invoices",
    "marts/mrr_monthly",
    "marts/churn_monthly",
    "marts/cohort_retention",
}
CHECKS = {
    "audit_archive_verified",
    "event_completeness_no_gaps",
    "raw_events_contract",
    "raw_events_unique_event_ids",
    "mrr_monthly_quality",
    "fct_subscriptions_quality",
    "stripe_matches_payments",
}
JOBS = {  # scheduled
    "event_completeness_job": "0 1 * * *",
    "billing_job": "0 2 * * *",
    "audit_archive_job": "0 3 * * *",
    "notification_job": "0 9 * * *",
    "reconciliation_job": "0 4 * * *",
    "recovery_job": "*/10 * * * *",
}
SENSOR_JOBS = {"warehouse_job"}  # requested by lake_partitions_sensor


def test_definitions_list_every_asset_check_job_schedule_and_sensor() -> None:
    defs = build_defs(Settings())  # type: ignore[call-arg]
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()

    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS | UNPARTITIONED | WAREHOUSE_ASSETS | DBT_ASSETS
    checks = {c.name for c in graph.asset_check_keys}
    assert checks >= CHECKS
    dbt_tests = checks - CHECKS  # dbt's data tests, as asset checks of their models
    assert len(dbt_tests) >= 40
    assert "assert_no_overlapping_subscription_intervals" in dbt_tests
    for key in ASSETS:
        partitions = graph.get(AssetKey(key)).partitions_def
        assert isinstance(partitions, DailyPartitionsDefinition)
        assert partitions.timezone == "UTC"

    raw = graph.get(AssetKey("raw_events"))
    assert isinstance(raw.partitions_def, DynamicPartitionsDefinition)
    assert raw.partitions_def.name == "lake_partitions"
    # dbt's lake.events source is raw_events: every staging model reads it.
    for key in DBT_ASSETS:
        if key.startswith("staging/"):
            assert AssetKey("raw_events") in graph.get(AssetKey.from_user_string(key)).parent_keys
    # The contract check runs in raw_events before the load, and blocks what follows.
    specs = {s.name: s for s in defs.resolve_assets_def("raw_events").check_specs}
    assert specs["raw_events_contract"].blocking

    repo = defs.get_repository_def()
    assert set(JOBS) | SENSOR_JOBS <= {j.name for j in repo.get_all_jobs()}
    assert {s.job_name: s.cron_schedule for s in repo.schedule_defs} == JOBS
    assert {s.execution_timezone for s in repo.schedule_defs} == {"UTC"}
    sensors = {s.name: s for s in repo.sensor_defs}
    assert set(sensors) == {"ops_alert_on_run_failure", "lake_partitions_sensor"}
    assert sensors["lake_partitions_sensor"].job_name == "warehouse_job"
    assert set(defs.resources or {}) == {
        "database",
        "lake",
        "services",
        "senders",
        "warehouse",
        "dbt",
    }
    for job in [*JOBS, *SENSOR_JOBS]:
        partitioned = defs.resolve_job_def(job).partitions_def is not None
        assert partitioned == (job != "recovery_job"), job
    warehouse_job = defs.resolve_job_def("warehouse_job")
    selected = {k.to_user_string() for k in warehouse_job.asset_layer.selected_asset_keys}
    assert selected == WAREHOUSE_ASSETS | DBT_ASSETS


def test_production_refuses_the_local_client_secret_when_billing_uses_it() -> None:
    from paywall.errors import ConfigError
    from pipelines.resources import Services

    production = Settings(_env_file=None, PAYWALL_ENV="production")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="BILLING_CLIENT_SECRET"):
        _ = Services(production).tokens


def test_workspace_validates_with_the_dagster_cli(tmp_path: Path) -> None:
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


@pytest.mark.integration
def test_a_failed_run_emails_the_ops_address(api: Api) -> None:
    ops = f"ops-{uuid.uuid4().hex[:8]}@paywall.dev"

    @asset
    def broken() -> None:
        raise RuntimeError("the warehouse is on fire")

    instance = DagsterInstance.ephemeral()
    result = materialize([broken], instance=instance, raise_on_error=False)
    assert not result.success
    senders = Senders(api.settings, ops)
    context = build_run_status_sensor_context(
        sensor_name="ops_alert_on_run_failure",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"senders": senders},
    ).for_run_failure()
    ops_alert_on_run_failure(context)

    sent = httpx.get(f"{api.settings.sendgrid_api_host}/_sink/messages", params={"to": ops}).json()
    assert len(sent) == 1
    assert sent[0]["subject"].startswith("[paywall] __ephemeral_asset_job__ failed")
