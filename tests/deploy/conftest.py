"""Fixtures for the deploy tests: the rendered overlays and the renderer module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "paywall-dev", "prod": "paywall-prod"}


def load_render() -> ModuleType:
    if "paywall_deploy_render" in sys.modules:
        return sys.modules["paywall_deploy_render"]
    spec = importlib.util.spec_from_file_location("paywall_deploy_render", DEPLOY / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["paywall_deploy_render"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def render() -> ModuleType:
    return load_render()


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    module = load_render()
    return {env: module.render(f"overlays/{env}") for env in OVERLAYS}


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]
