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
    asset,
    build_run_status_sensor_context,
    materialize,
)

from paywall.settings import Settings
from pipelines.definitions import build_defs
from pipelines.resources import Senders
from pipelines.sensors import ops_alert_on_run_failure
from tests.conftest import REPO, Api

ASSETS = {"billing_run", "audit_archive", "notification_batch"}
JOBS = {
    "billing_job": "0 2 * * *",
    "audit_archive_job": "0 3 * * *",
    "notification_job": "0 9 * * *",
}


def test_definitions_list_every_asset_check_job_schedule_and_sensor() -> None:
    defs = build_defs(Settings())  # type: ignore[call-arg]
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()

    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {c.name for c in graph.asset_check_keys} == {"audit_archive_verified"}
    for key in ASSETS:
        partitions = graph.get(AssetKey(key)).partitions_def
        assert isinstance(partitions, DailyPartitionsDefinition)
        assert partitions.timezone == "UTC"

    repo = defs.get_repository_def()
    assert set(JOBS) <= {j.name for j in repo.get_all_jobs()}
    assert {s.job_name: s.cron_schedule for s in repo.schedule_defs} == JOBS
    assert {s.execution_timezone for s in repo.schedule_defs} == {"UTC"}
    assert {s.name for s in repo.sensor_defs} == {"ops_alert_on_run_failure"}
    assert set(defs.resources or {}) == {"database", "lake", "services", "senders"}
    for job in JOBS:
        assert defs.resolve_job_def(job).partitions_def is not None


def test_production_refuses_the_local_client_secrets() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="REGISTRATION_CLIENT_SECRET"):
        Settings(_env_file=None, PAYWALL_ENV="production", LAKE_PII_SALT="s")  # type: ignore[call-arg]


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
