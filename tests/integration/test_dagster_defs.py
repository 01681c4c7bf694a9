"""The code location loads (in process and through `dagster definitions validate`), lists
every asset, check, job, schedule and sensor, and a failed run emails the ops address."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
    asset,
    build_run_status_sensor_context,
    materialize,
)

from assets.billing.checks import billing_invoiced_once, billing_paid_matches_charges
from assets.notifications.sensors import ops_alert_on_run_failure
from paywall.settings import Settings
from paywall.stack.process import free_port
from pipelines.definitions import build_defs
from streaming.notifications.senders import Senders
from tests.conftest import REPO, Api

# daily partitioned
ASSETS = {
    "billing_run",
    "billing_report",
    "audit_archive",
    "notification_batch",
    "stripe_reconciliation",
    "event_completeness",
}
UNPARTITIONED = {"payment_recovery"}
SHARDED = {"billing_shard"}  # day by shard (paywall/shards.py)
WAREHOUSE_ASSETS = {"raw_events"}  # one dynamic partition per lake (event_type, day) folder
DBT_ASSETS = {
    "reference/plan_catalog",
    "staging/stg_customers",
    "staging/stg_payment_accounts",
    "staging/stg_payments",
    "staging/stg_registrations",
    "staging/stg_subscription_events",
    "staging/stg_invoice_events",
    "staging/stg_credit_note_events",
    "staging/stg_users",
    "intermediate/int_subscription_states",
    "intermediate/int_customer_mrr_monthly",
    "marts/dim_plans",
    "marts/dim_customers",
    "marts/fct_subscriptions",
    "marts/fct_payments",
    "marts/fct_invoices",
    "marts/fct_credit_notes",
    "marts/mrr_monthly",
    "marts/time_spine_daily",
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
    "billing_invoiced_once",
    "billing_paid_matches_charges",
    "notification_batch_settled",
    "billing_report_mrr_bridges",
}
JOBS = {  # scheduled
    "event_completeness_job": "0 1 * * *",
    "billing_shards_job": "0 2 * * *",
    "audit_archive_job": "0 3 * * *",
    "notification_job": "0 9 * * *",
    "reconciliation_job": "0 4 * * *",
    "recovery_job": "*/10 * * * *",
}
SENSOR_JOBS = {  # requested by sensors
    "warehouse_job": "lake_partitions_sensor",
    "billing_job": "billing_day_sensor",
}


def test_definitions_list_every_asset_check_job_schedule_and_sensor() -> None:
    defs = build_defs(Settings())  # type: ignore[call-arg]
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()

    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS | UNPARTITIONED | SHARDED | WAREHOUSE_ASSETS | DBT_ASSETS
    checks = {c.name for c in graph.asset_check_keys}
    assert checks >= CHECKS
    dbt_tests = checks - CHECKS  # dbt's data tests, as asset checks of their models
    assert len(dbt_tests) >= 40
    assert "assert_no_overlapping_subscription_intervals" in dbt_tests
    for key in ASSETS:
        partitions = graph.get(AssetKey(key)).partitions_def
        assert isinstance(partitions, DailyPartitionsDefinition)
        assert partitions.timezone == "UTC"
    shards = graph.get(AssetKey("billing_shard")).partitions_def
    assert isinstance(shards, MultiPartitionsDefinition)
    assert {d.name for d in shards.partitions_defs} == {"day", "shard"}
    assert shards.time_window_dimension.partitions_def.timezone == "UTC"
    # The day's close follows every shard of its day.
    assert graph.get(AssetKey("billing_run")).parent_keys == {AssetKey("billing_shard")}

    # Every asset has an owner; every one an operator waits on says how fresh it must be.
    assert all(graph.get(AssetKey.from_user_string(k)).owners for k in keys)
    marts = {k for k in DBT_ASSETS if "marts/" in k}
    operated = ASSETS | UNPARTITIONED | SHARDED | WAREHOUSE_ASSETS | marts
    stale = [
        k for k in operated if graph.get(AssetKey.from_user_string(k)).freshness_policy is None
    ]
    assert not stale, f"no freshness policy: {sorted(stale)}"

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
    # Billing's reconciliation blocks what reads the day after the billing run.
    for check in (billing_invoiced_once, billing_paid_matches_charges):
        assert all(spec.blocking for spec in check.check_specs)

    repo = defs.get_repository_def()
    assert set(JOBS) | set(SENSOR_JOBS) <= {j.name for j in repo.get_all_jobs()}
    assert {s.job_name: s.cron_schedule for s in repo.schedule_defs} == JOBS
    assert {s.execution_timezone for s in repo.schedule_defs} == {"UTC"}
    sensors = {s.name: s for s in repo.sensor_defs}
    assert set(sensors) == {"ops_alert_on_run_failure", *SENSOR_JOBS.values()}
    for job, sensor in SENSOR_JOBS.items():
        assert sensors[sensor].job_name == job
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
    # The report follows the day's billing run and the MRR mart, in billing's job.
    report = graph.get(AssetKey("billing_report"))
    assert report.parent_keys == {AssetKey("billing_run"), AssetKey(["marts", "mrr_monthly"])}
    billing_job = defs.resolve_job_def("billing_job")
    selected = {k.to_user_string() for k in billing_job.asset_layer.selected_asset_keys}
    assert selected == {"billing_run", "billing_report"}
    warehouse_job = defs.resolve_job_def("warehouse_job")
    selected = {k.to_user_string() for k in warehouse_job.asset_layer.selected_asset_keys}
    assert selected == WAREHOUSE_ASSETS | DBT_ASSETS


@pytest.mark.parametrize(
    ("env", "status"),
    [("local", DefaultScheduleStatus.STOPPED), ("production", DefaultScheduleStatus.RUNNING)],
)
def test_schedules_run_from_the_start_in_production_only(
    env: str, status: DefaultScheduleStatus
) -> None:
    settings = Settings(_env_file=None, PAYWALL_ENV=env)  # type: ignore[call-arg]
    repo = build_defs(settings).get_repository_def()
    assert {s.default_status for s in repo.schedule_defs} == {status}
    assert {s.default_status for s in repo.sensor_defs} == {DefaultSensorStatus.RUNNING}


@pytest.mark.parametrize("folder", [REPO, REPO / "deploy" / "k8s" / "base" / "dagster"])
def test_instance_configs_hold_one_billing_run_and_one_warehouse_step(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dagster dev`'s dagster.yaml and the Kubernetes one are valid instance configs (Dagster
    refuses queue limits in two places), with the same limits."""
    from dagster._core.instance.config import dagster_instance_config

    for name in ("DAGSTER_PG_URL", "DAGSTER_K8S_JOB_NAMESPACE", "LAKE_BUCKET"):
        monkeypatch.setenv(name, "set-by-the-deployment")
    config, _ = dagster_instance_config(str(folder))
    assert config["concurrency"]["pools"] == {"granularity": "op", "default_limit": 1}
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limits == [
        {"key": "paywall/billing", "value": "day", "limit": 1},
        {"key": "paywall/billing", "value": "shard", "limit": 4},
    ]


def test_production_refuses_the_local_client_secret_when_billing_uses_it() -> None:
    from assets.shared.resources import Services
    from paywall.errors import ConfigError

    production = Settings(_env_file=None, PAYWALL_ENV="production")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="BILLING_CLIENT_SECRET"):
        _ = Services(production).tokens


def fresh_clone_env(tmp_path: Path) -> dict[str, str]:
    """A fresh clone's shell: the venv not activated (its bin/ not on PATH, so no `dbt` on
    PATH either) and a dbt project never parsed (a copy of dbt/ without target/)."""
    venv_bin = Path(sys.executable).parent.resolve()
    path = os.pathsep.join(
        p
        for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != venv_bin
    )
    assert shutil.which("dbt", path=path) is None, "a dbt outside the venv is on PATH"
    dbt = tmp_path / "dbt"
    skip = shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml")
    shutil.copytree(REPO / "dbt", dbt, ignore=skip)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "DAGSTER_HOME")}
    return {**env, "PATH": path, "DBT_PROJECT_DIR": str(dbt)}


def test_importing_the_code_location_runs_no_dbt(tmp_path: Path) -> None:
    """A fresh interpreter imports pipelines.definitions with every subprocess recorded: dbt
    is never started and no manifest is written (Dagster itself runs `file` at import)."""
    env = fresh_clone_env(tmp_path)
    spy = (
        "import json, subprocess\n"
        "started = []\n"
        "real = subprocess.Popen.__init__\n"
        "def record(self, args, *a, **k):\n"
        "    started.append(args if isinstance(args, str) else [str(x) for x in args])\n"
        "    return real(self, args, *a, **k)\n"
        "subprocess.Popen.__init__ = record\n"
        "import pipelines.definitions\n"
        "print(json.dumps(started))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", spy], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    started = json.loads(done.stdout.strip().splitlines()[-1])
    assert not [argv for argv in started if "dbt" in " ".join(argv)], started
    assert not (tmp_path / "dbt" / "target").exists()


def test_workspace_validates_with_the_dagster_cli_without_the_venv_on_path(
    tmp_path: Path,
) -> None:
    """The README's `.venv/bin/dagster definitions validate -w workspace.yaml`, from a shell
    that never activated the venv: the dbt manifest is parsed with the venv's own dbt."""
    dagster = Path(sys.executable).with_name("dagster")
    env = {**fresh_clone_env(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout
    assert (tmp_path / "dbt" / "target" / "manifest.json").is_file()


LOCATION_STATUS = """{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}"""


def test_dagster_dev_loads_the_code_location_without_the_venv_on_path(tmp_path: Path) -> None:
    """The README's `.venv/bin/dagster dev -w workspace.yaml`, as a fresh clone's shell runs
    it: the location loads (asked through the webserver's GraphQL), and the instance is the
    repo's dagster.yaml, keeping runs under .paywall/dagster (here in a copy of the repo's
    top-level files, so the test leaves the developer's own state alone)."""
    for name in ("workspace.yaml", "dagster.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    port = free_port()
    dagster = Path(sys.executable).with_name("dagster")
    log = (tmp_path / "dagster-dev.log").open("wb")
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path,
        env=fresh_clone_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its webserver, daemon and code server stop with it
    )
    try:
        entry = _loaded_location(proc, f"http://127.0.0.1:{port}/graphql", tmp_path)
        assert entry["name"] == "paywall"
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        assert (tmp_path / ".paywall" / "dagster" / "storage").is_dir()
    finally:
        _stop_group(proc)
        log.close()


def _loaded_location(proc: subprocess.Popen[bytes], url: str, cwd: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, (cwd / "dagster-dev.log").read_text()[-3000:]
        try:
            answer = httpx.post(url, json={"query": LOCATION_STATUS}, timeout=5).json()
        except httpx.HTTPError:
            answer = {}
        entries = answer.get("data", {}).get("workspaceOrError", {}).get("locationEntries", [])
        if entries and entries[0]["loadStatus"] == "LOADED":
            return dict(entries[0])
        time.sleep(1)
    raise AssertionError(
        "dagster dev never loaded the location\n" + (cwd / "dagster-dev.log").read_text()[-3000:]
    )


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a developer stops it (dagster dev then stops its children); killed if it
    has not ended in 60 s."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.integration
def test_a_failed_run_emails_the_ops_address(api: Api) -> None:
    ops = f"ops-{uuid.uuid4().hex[:8]}@paywall.dev"

    @asset
    def broken() -> None:
        raise RuntimeError("the warehouse is on fire")

    instance = DagsterInstance.ephemeral()
    result = materialize([broken], instance=instance, raise_on_error=False)
    assert not result.success
    senders = Senders(api.settings.model_copy(update={"ops_alert_email": ops}))
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
