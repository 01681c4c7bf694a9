"""Dagster run pods (K8sRunLauncher, deploy/k8s/base/dagster/dagster.yaml) get what a billing
run reads, under the names paywall/settings.py reads, in every rendered overlay."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from paywall.settings import STATE_DIR_ENV, Settings
from tests.deploy.conftest import DEPLOY, OVERLAYS, by_kind, pod_spec

Objects = dict[str, list[dict[str, Any]]]

# What billing, recovery and reconciliation runs read (assets/billing, assets/shared).
RUN_NEEDS = {
    "PAYWALL_ENV",
    "DATABASE_URL",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "BILLING_CLIENT_SECRET",
    "AUTH_SERVICE_URL",
    "SUBSCRIPTION_SERVICE_URL",
    "PAYMENT_SERVICE_URL",
    "BILLING_SERVICE_URL",
    "LAKE_BUCKET",
    "AWS_DEFAULT_REGION",
    "PUSHGATEWAY_URL",
}
# Set by the run's pod spec for its own sake, not settings.
POD_ONLY = {"POD_NAMESPACE"}
SETTINGS_NAMES = {f.alias for f in Settings.model_fields.values() if f.alias} | {STATE_DIR_ENV}


def _launcher(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (instance,) = [c for n, c in by_kind(objects, "ConfigMap").items() if n.startswith("dagster-")]
    config: dict[str, Any] = yaml.safe_load(instance["data"]["dagster.yaml"])["run_launcher"]
    assert config["class"] == "K8sRunLauncher"
    return dict(config["config"])


def _documented_secret_keys() -> dict[str, str]:
    """deploy/README.md's table of the paywall-secrets keys: key → who uses it."""
    text = (DEPLOY / "README.md").read_text()
    table = text[text.index("Secret `paywall-secrets`") :].split("\n\n")[1]
    rows = re.findall(r"^\| (`.+?) \| (.+?) \|$", table, re.M)
    return {key: users for keys, users in rows for key in re.findall(r"`([^`]+)`", keys)}


def _run_pod_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Each variable a run pod gets → where its value comes from."""
    launcher = _launcher(objects)
    config_maps = by_kind(objects, "ConfigMap")
    env: dict[str, str] = {}
    for name in launcher.get("env_config_maps", []):
        # Kustomize names generated ConfigMaps with a content hash this file cannot know.
        assert name in config_maps, f"env_config_maps names {name}, which is not deployed"
        env |= dict.fromkeys(config_maps[name]["data"], f"configmap {name}")
    documented = _documented_secret_keys()
    for name in launcher.get("env_secrets", []):
        # envFrom a Secret: each of its keys, as spelled, is a variable.
        env |= dict.fromkeys(documented, f"secret {name}")
    for entry in launcher.get("env_vars", []):
        env[entry.split("=", 1)[0]] = "the launching daemon's environment"
    for entry in launcher["run_k8s_config"]["container_config"].get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        env[entry["name"]] = f"secret key {ref['key']}" if ref else "pod spec"
    return env


@pytest.mark.parametrize("env", OVERLAYS)
def test_run_pods_get_what_billing_reads_under_its_settings_names(
    rendered: Objects, env: str
) -> None:
    run_env = _run_pod_env(rendered[env])
    missing = RUN_NEEDS - set(run_env)
    assert not missing, f"run pods lack {sorted(missing)}"
    unread = set(run_env) - SETTINGS_NAMES - POD_ONLY
    assert not unread, f"run pods get variables no setting reads: {sorted(unread)}"


@pytest.mark.parametrize("env", OVERLAYS)
def test_the_daemon_has_every_variable_it_forwards(rendered: Objects, env: str) -> None:
    """K8sRunLauncher copies `env_vars` from the daemon's environment and refuses to launch
    when one is unset; the daemon has paywall-config (envFrom) and its own env entries."""
    objects = rendered[env]
    (daemon,) = pod_spec(by_kind(objects, "Deployment")["dagster-daemon"])["containers"]
    config_maps = by_kind(objects, "ConfigMap")
    available = {e["name"] for e in daemon.get("env", [])}
    for source in daemon.get("envFrom", []):
        available |= set(config_maps[source["configMapRef"]["name"]]["data"])
    forwarded = {e.split("=", 1)[0] for e in _launcher(objects).get("env_vars", []) if "=" not in e}
    assert forwarded <= available, f"not in the daemon's environment: {forwarded - available}"
    (paywall_config,) = [n for n in config_maps if n.startswith("paywall-config-")]
    # Every setting the platform is configured with reaches runs too.
    assert set(config_maps[paywall_config]["data"]) <= forwarded


@pytest.mark.parametrize("env", OVERLAYS)
def test_run_secrets_are_documented_keys_of_the_one_secret(rendered: Objects, env: str) -> None:
    documented = _documented_secret_keys()
    container = _launcher(rendered[env])["run_k8s_config"]["container_config"]
    refs = [r for e in container["env"] if (r := e.get("valueFrom", {}).get("secretKeyRef"))]
    assert refs, "run pods get no secret"
    for ref in refs:
        assert ref["name"] == "paywall-secrets"
        assert "Dagster runs" in documented[ref["key"]], f"{ref['key']}: README says who uses it"


@pytest.mark.parametrize("env", OVERLAYS)
def test_a_run_pods_environment_makes_production_settings_billing_can_use(
    rendered: Objects, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings a run pod builds from its variables alone (secrets stood in for)."""
    objects = rendered[env]
    (config,) = [
        c for n, c in by_kind(objects, "ConfigMap").items() if n.startswith("paywall-config-")
    ]
    stand_ins = {
        "DATABASE_URL": "postgresql://billing@db/paywall",
        "REDIS_URL": "rediss://redis:6379/0",
        "BILLING_CLIENT_SECRET": "run-secret",
    }
    values: dict[str, str] = {}
    for name, source in _run_pod_env(objects).items():
        if name in config["data"] and "secret" not in source:
            values[name] = config["data"][name]
        elif name in stand_ins:
            values[name] = stand_ins[name]
    for name in SETTINGS_NAMES:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert settings.is_production
    assert settings.database_url and settings.redis_url and settings.pushgateway_url
    client_id, secret = settings.service_client("billing")
    assert client_id and secret.get_secret_value() == "run-secret"
