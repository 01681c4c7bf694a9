"""Lake → warehouse as Dagster assets: `raw_events` (one dynamic partition per lake
(event_type, event_date) folder, loaded by `load_partition`) and the dbt project as assets
downstream of it (dbt's `lake.events` source *is* `raw_events`).

The dbt manifest is made at load time when missing or older than the project's files
(`dbt parse` in a subprocess, no warehouse connection, a few seconds); `dagster dev`
re-parses on every load; a deployed image ships one from `dagster-dbt project prepare-and-package`.
"""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DbtCliResource,
    DbtProject,
    dbt_assets,
    get_asset_key_for_model,
)

from assets.quality.suites import lake_contract_suite, validate
from assets.shared import RETRIES
from assets.warehouse.lake import LakePartition, partition_files, read_files
from assets.warehouse.loader import load_partition
from paywall.settings import state_dir
from pipelines.resources import WarehouseResource

REPO = Path(__file__).resolve().parents[2]


def dbt_project_dir() -> Path:
    """The dbt project: $DBT_PROJECT_DIR, else the repo's dbt/ (a checkout), else ./dbt (the
    image installs the code as a wheel and copies dbt/ next to workspace.yaml)."""
    given = os.environ.get("DBT_PROJECT_DIR")
    for candidate in [Path(given)] if given else [REPO / "dbt", Path.cwd() / "dbt"]:
        if (candidate / "dbt_project.yml").is_file():
            return candidate.resolve()
    raise FileNotFoundError("no dbt project: set DBT_PROJECT_DIR to the directory of dbt/")


def dbt_target_dir(project_dir: Path) -> Path:
    """dbt's artifacts: the project's target/ when writable, else under the state dir (a
    read-only image)."""
    if os.access(project_dir, os.W_OK):
        return project_dir / "target"
    return state_dir() / "dbt-target"


DBT_DIR = dbt_project_dir()
DBT_TARGET_DIR = dbt_target_dir(DBT_DIR)
KEY_SEPARATOR = "|"
# One writer at a time: DuckDB allows one writing process per file, and a load racing a
# dbt build would read half a partition. Limit the pool to 1 in the instance (dagster.yaml).
WAREHOUSE_POOL = "warehouse"

# The venv's dbt, found without PATH (`dagster dev` from the venv need not activate it).
_VENV_DBT = Path(sys.executable).with_name("dbt")
DBT_EXECUTABLE = str(_VENV_DBT) if _VENV_DBT.exists() else "dbt"

lake_partitions = DynamicPartitionsDefinition(name="lake_partitions")


def partition_key(partition: LakePartition) -> str:
    """`<event_type>|<YYYY-MM-DD>`, the dynamic partition key of a lake partition."""
    return f"{partition.event_type}{KEY_SEPARATOR}{partition.event_date.isoformat()}"


def lake_partition(key: str) -> LakePartition:
    event_type, sep, day = key.partition(KEY_SEPARATOR)
    if not sep:
        raise ValueError(f"not a lake partition key: {key!r}")
    return LakePartition.of(event_type, day)


CONTRACT_CHECK = "raw_events_contract"


@asset(
    partitions_def=lake_partitions,
    group_name="warehouse",
    kinds={"s3", "duckdb"},
    retry_policy=RETRIES,
    pool=WAREHOUSE_POOL,
    check_specs=[
        AssetCheckSpec(
            CONTRACT_CHECK,
            asset="raw_events",
            blocking=True,
            description=(
                "Great Expectations on the lake partition, before it is loaded: event_id, "
                "event_type and occurred_at not null, event types with a contract, no "
                "clear-text email in data. A failure loads nothing and stops the run."
            ),
        )
    ],
    description=(
        "raw.events: one lake partition (event_type x UTC day of Parquet in S3) replaced in "
        "the warehouse (delete + insert in one transaction, booked in raw.loaded_partitions)."
    ),
)
def raw_events(
    context: AssetExecutionContext, warehouse: ResourceParam[WarehouseResource]
) -> Iterator[AssetCheckResult | MaterializeResult]:
    """Validate, then load. The contract check runs before the load: a partition that fails
    it never reaches raw.events, so no later dbt build picks it up either."""
    from assets.quality.checks import validation_result

    part = lake_partition(context.partition_key)
    settings = warehouse.settings
    incoming = read_files(settings, partition_files(settings, part)).to_pandas()
    contract = validate(lake_contract_suite(), incoming)
    yield validation_result(contract, AssetCheckSeverity.ERROR, CONTRACT_CHECK)
    if not contract.success:
        raise Failure(
            f"{context.partition_key}: not loaded, the lake partition breaks the event "
            f"contract\n{contract.summary()}",
            allow_retries=False,
        )
    # The load lists the partition again: a file landing in between changes the partition's
    # fingerprint, and the sensor requests (and validates) it again.
    result = load_partition(warehouse.warehouse, part.event_type, part.event_date)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "event_type": part.event_type,
            "event_date": part.event_date.isoformat(),
            "lake_files": result.files,
            "lake_bytes": result.bytes,
            "warehouse": warehouse.config.kind,
            "loaded_at": MetadataValue.timestamp(result.loaded_at),
        }
    )


# --- dbt ------------------------------------------------------------------------------

_PROJECT_FILES = ("dbt_project.yml", "models", "macros", "seeds", "tests", "snapshots")


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _PROJECT_FILES:
        path = project_dir / name
        if path.is_file():
            newest = max(newest, path.stat().st_mtime)
        elif path.is_dir():
            for f in path.rglob("*"):
                if f.is_file():
                    newest = max(newest, f.stat().st_mtime)
    return newest


def ensure_manifest(project: DbtProject) -> Path:
    """`target/manifest.json`, parsed now if missing or older than the project's files.

    `dbt parse` needs no connection; it runs in a subprocess (dbt's in-process state is not
    ours to keep) into a temporary target, then the manifest is renamed into place, so
    concurrent loads never read half a file.
    """
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(project.project_dir):
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=manifest.parent, prefix=".parse-") as tmp:
        done = subprocess.run(
            [
                DBT_EXECUTABLE,
                "parse",
                "--quiet",
                "--project-dir",
                str(project.project_dir),
                "--profiles-dir",
                str(project.profiles_dir),
                "--target",
                "duckdb",  # parsing connects to nothing; the graph is the same on every target
                "--target-path",
                tmp,
                "--log-path",
                tmp,
            ],
            cwd=project.project_dir,
            env={
                **os.environ,
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "WAREHOUSE_PATH": str(Path(tmp) / "parse.duckdb"),
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"dbt parse failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        os.replace(Path(tmp) / "manifest.json", manifest)
    return manifest


dbt_project = DbtProject(
    project_dir=DBT_DIR, profiles_dir=DBT_DIR, target_path=DBT_TARGET_DIR, target="duckdb"
)
dbt_project.prepare_if_dev()  # `dagster dev`: re-parse on every reload
DBT_MANIFEST = ensure_manifest(dbt_project)

LAKE_SOURCE = ("lake", "events")


class PaywallDbtTranslator(DagsterDbtTranslator):
    """dbt's `lake.events` source is the `raw_events` asset, so models are downstream of
    the loads; models and seeds are grouped by their folder (staging, intermediate, marts)."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            if (props["source_name"], props["name"]) == LAKE_SOURCE:
                return spec.replace_attributes(key=raw_events.key)
            return spec
        fqn = props.get("fqn", [])
        group = fqn[1] if props["resource_type"] == "model" and len(fqn) > 2 else "warehouse"
        if props["resource_type"] == "seed":
            group = "reference"
        return spec.replace_attributes(group_name=f"dbt_{group}")


@contextmanager
def _dbt_environment(env: Mapping[str, str]) -> Iterator[None]:
    """dagster-dbt hands dbt a copy of os.environ; the warehouse settings go in for the
    moment the dbt process is started (and the adapter handle made), then come out."""
    with mock.patch.dict(os.environ, env):
        yield


@dbt_assets(
    manifest=DBT_MANIFEST,
    project=dbt_project,
    dagster_dbt_translator=PaywallDbtTranslator(),
    retry_policy=RETRIES,
    pool=WAREHOUSE_POOL,
)
def paywall_dbt(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: ResourceParam[WarehouseResource],
) -> Iterator[Any]:
    """`dbt build` (seeds, models, tests as asset checks) of the selected dbt assets."""
    # Each invocation gets its own folder under DBT_TARGET_PATH (dagster-dbt's convention).
    with _dbt_environment({**warehouse.dbt_env(), "DBT_TARGET_PATH": str(DBT_TARGET_DIR)}):
        invocation = dbt.cli(["build"], context=context)
    yield from invocation.stream()


def dbt_key(name: str) -> AssetKey:
    """The asset key of a dbt model or seed (`<schema>/<name>`, e.g. marts/mrr_monthly)."""
    return get_asset_key_for_model([paywall_dbt], name)
