"""The Dagster instance config the cluster runs is one Dagster itself accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config_schema

DAGSTER_YAML = Path(__file__).resolve().parents[2] / "deploy/k8s/base/dagster/dagster.yaml"


def _env_names(node: Any) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_names(v) for v in node)) if node else set()
    return set()


def test_dagster_yaml_validates_against_dagsters_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    for name in _env_names(config):  # the pods get these from the ConfigMap and Secret
        monkeypatch.setenv(name, f"value-of-{name.lower()}")
    result = process_config(dagster_instance_config_schema(), config)
    assert result.success, [e.message for e in result.errors or []]
    assert config["concurrency"]["pools"]["default_limit"] == 1
