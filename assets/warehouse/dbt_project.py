"""Where the dbt project is, which dbt runs it, and its manifest, made when first asked
for and then cached for the process (importing this module runs nothing).

A read-only project (the image, which parses it at build) ships its own manifest; a
checkout's `target/manifest.json` is parsed again when missing or older than the project's
files (`dbt parse` with the venv's own dbt, found without PATH: no warehouse connection, a
few seconds), so `dagster dev` picks up a changed model on reload.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from paywall.settings import state_dir

REPO = Path(__file__).resolve().parents[2]
_PROJECT_FILES = ("dbt_project.yml", "models", "macros", "seeds", "tests", "snapshots")


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


def dbt_executable() -> str:
    """The venv's dbt, beside the running interpreter: `.venv/bin/dagster dev` runs without
    the venv on PATH. Else whatever `dbt` PATH finds."""
    venv_dbt = Path(sys.executable).with_name("dbt")
    return str(venv_dbt) if venv_dbt.exists() else "dbt"


@cache
def dbt_project() -> DbtProject:
    project_dir = dbt_project_dir()
    return DbtProject(
        project_dir=project_dir,
        profiles_dir=project_dir,
        target_path=dbt_target_dir(project_dir),
        target="duckdb",
    )


@cache
def dbt_manifest() -> Path:
    return ensure_manifest(dbt_project())


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
    """The manifest to build the dbt assets from, parsed now if need be.

    A read-only project's own `target/manifest.json` is used as it is: it was parsed from
    these very files when the image was built. Otherwise the manifest under the target dir
    is parsed again when missing or older than the project's files. `dbt parse` needs no
    connection; it runs in a subprocess (dbt's in-process state is not ours to keep) into a
    temporary target, then the manifest is renamed into place, so concurrent loads never
    read half a file.
    """
    shipped = project.project_dir / "target" / "manifest.json"
    if not os.access(project.project_dir, os.W_OK) and shipped.is_file():
        return shipped
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(project.project_dir):
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=manifest.parent, prefix=".parse-") as tmp:
        done = subprocess.run(
            [
                dbt_executable(),
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
