"""The rendered overlays: schema-valid, and every service and worker deployed properly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from paywall.settings import Settings
from tests.deploy import contract
from tests.deploy.conftest import (
    DEPLOY,
    NAMESPACES,
    OVERLAYS,
    by_kind,
    pod_spec,
    pod_template,
    workloads,
)
from transactional.services import SERVICES

K8S_VERSION = "1.30.0"
# Custom resources, checked structurally below: their CRDs are not in the core schemas.
CRD_GROUPS = ("networking.istio.io/", "security.istio.io/", "monitoring.coreos.com/")

Objects = dict[str, list[dict[str, Any]]]


@pytest.mark.parametrize("env", OVERLAYS)
def test_core_objects_validate_against_kubernetes_schema(rendered: Objects, env: str) -> None:
    checked = 0
    for obj in rendered[env]:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("env", OVERLAYS)
def test_custom_resources_are_well_formed(rendered: Objects, env: str) -> None:
    kinds = {
        "Gateway": "networking.istio.io/v1",
        "VirtualService": "networking.istio.io/v1",
        "DestinationRule": "networking.istio.io/v1",
        "PeerAuthentication": "security.istio.io/v1",
        "AuthorizationPolicy": "security.istio.io/v1",
        "ServiceMonitor": "monitoring.coreos.com/v1",
        "PrometheusRule": "monitoring.coreos.com/v1",
    }
    for obj in rendered[env]:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            assert kinds[obj["kind"]] == obj["apiVersion"], obj["kind"]
            assert obj["metadata"]["namespace"] == NAMESPACES[env]
            assert isinstance(obj["spec"], dict)
    services = by_kind(rendered[env], "Service")
    for name, rule in by_kind(rendered[env], "DestinationRule").items():
        assert rule["spec"]["host"] in services, name
        assert rule["spec"]["trafficPolicy"]["outlierDetection"]
        assert rule["spec"]["trafficPolicy"]["connectionPool"]
    for name, vs in by_kind(rendered[env], "VirtualService").items():
        for route in vs["spec"]["http"]:
            assert route["timeout"], name
            for dest in route["route"]:
                assert dest["destination"]["host"] in services, name
    (peer,) = by_kind(rendered[env], "PeerAuthentication").values()
    assert peer["spec"]["mtls"]["mode"] == "STRICT"


@pytest.mark.parametrize("env", OVERLAYS)
def test_everything_lands_in_the_overlay_namespace(rendered: Objects, env: str) -> None:
    namespaces = by_kind(rendered[env], "Namespace")
    assert list(namespaces) == [NAMESPACES[env]]
    assert namespaces[NAMESPACES[env]]["metadata"]["labels"]["istio-injection"] == "enabled"
    for obj in rendered[env]:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACES[env], obj["metadata"]["name"]


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(obj)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("env", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_each_http_service_is_fully_deployed(rendered: Objects, env: str, service: str) -> None:
    objects = rendered[env]
    deployment = by_kind(objects, "Deployment").get(service)
    assert deployment, f"no Deployment for service {service}"
    container = _container(deployment)
    assert container["args"] == ["serve", "--service", service]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    assert pod_spec(deployment)["topologySpreadConstraints"]
    assert pod_spec(deployment)["serviceAccountName"] == service

    selector = deployment["spec"]["selector"]["matchLabels"]
    service_obj = by_kind(objects, "Service").get(service)
    assert service_obj and service_obj["spec"]["selector"] == selector
    hpa = by_kind(objects, "HorizontalPodAutoscaler").get(service)
    assert hpa and hpa["spec"]["scaleTargetRef"]["name"] == service
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"
    pdb = by_kind(objects, "PodDisruptionBudget").get(service)
    assert pdb and pdb["spec"]["selector"]["matchLabels"] == selector
    account = by_kind(objects, "ServiceAccount").get(service)
    assert account and account["automountServiceAccountToken"] is False
    policy = by_kind(objects, "AuthorizationPolicy").get(service)
    assert policy and policy["spec"]["selector"]["matchLabels"] == selector


def test_prod_is_bigger_than_dev(rendered: Objects) -> None:
    def cpu(value: str) -> float:
        return float(value[:-1]) / 1000 if value.endswith("m") else float(value)

    for service in SERVICES:
        dev = by_kind(rendered["dev"], "HorizontalPodAutoscaler")[service]["spec"]
        prod = by_kind(rendered["prod"], "HorizontalPodAutoscaler")[service]["spec"]
        assert prod["minReplicas"] > dev["minReplicas"]
        assert prod["maxReplicas"] > dev["maxReplicas"]
        dev_res = _container(by_kind(rendered["dev"], "Deployment")[service])["resources"]
        prod_res = _container(by_kind(rendered["prod"], "Deployment")[service])["resources"]
        assert cpu(prod_res["requests"]["cpu"]) > cpu(dev_res["requests"]["cpu"])
    for name in ("consumer-notification", "consumer-audit"):
        dev_n = by_kind(rendered["dev"], "Deployment")[name]["spec"]["replicas"]
        prod_n = by_kind(rendered["prod"], "Deployment")[name]["spec"]["replicas"]
        assert prod_n > dev_n


@pytest.mark.parametrize("env", OVERLAYS)
def test_workers_job_and_dagster_are_deployed(rendered: Objects, env: str) -> None:
    deployments = by_kind(rendered[env], "Deployment")
    for name, args in contract.WORKERS.items():
        assert name in deployments, f"no Deployment for worker {name}"
        container = _container(deployments[name])
        assert tuple(container["args"]) == args
        assert container["ports"][0]["containerPort"] == contract.WORKER_METRICS_PORT
        image = container["image"]
        assert ("paywall-spark" in image) == (name in contract.SPARK_WORKERS), image
    assert deployments["outbox-relay"]["spec"]["replicas"] == 1
    assert deployments["stream-lake"]["spec"]["replicas"] == 1
    job = by_kind(rendered[env], "Job")["db-upgrade"]
    assert tuple(_container(job)["args"]) == contract.MIGRATION_ARGS
    topics = by_kind(rendered[env], "Job")["topics-sync"]
    assert tuple(_container(topics)["args"]) == contract.TOPICS_ARGS
    for name in ("dagster-webserver", "dagster-daemon", "dagster-code"):
        assert name in deployments
    assert "dagster-webserver" in by_kind(rendered[env], "Service")
    (instance,) = [
        o
        for o in rendered[env]
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("dagster-instance-")
    ]
    dagster_yaml = yaml.safe_load(instance["data"]["dagster.yaml"])
    assert dagster_yaml["run_launcher"]["class"] == "K8sRunLauncher"
    assert dagster_yaml["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    workspace = yaml.safe_load(instance["data"]["workspace.yaml"])
    assert workspace["load_from"][0]["grpc_server"]["host"] in by_kind(rendered[env], "Service")
    code = _container(deployments["dagster-code"])
    current = next(e for e in code["env"] if e["name"] == "DAGSTER_CURRENT_IMAGE")
    assert current["value"] == code["image"]


@pytest.mark.parametrize("env", OVERLAYS)
def test_worker_state_outlives_the_pod_on_a_persistent_volume(rendered: Objects, env: str) -> None:
    """The lake stream's checkpoint is on a claim, not an emptyDir: a restarted pod resumes
    from its offsets instead of re-reading Kafka from the earliest."""
    deployments = by_kind(rendered[env], "Deployment")
    claims = by_kind(rendered[env], "PersistentVolumeClaim")
    for name, option in contract.DURABLE_STATE.items():
        deployment = deployments[name]
        container = _container(deployment)
        args = list(container["args"])
        path = Path(args[args.index(option) + 1])
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        (mount,) = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])]
        claim = volumes[mount["name"]].get("persistentVolumeClaim")
        assert claim is not None, f"{name}: {path} is not on a PersistentVolumeClaim"
        assert claim["claimName"] in claims, f"{name}: no claim {claim['claimName']}"
        assert claims[claim["claimName"]]["spec"]["accessModes"] == ["ReadWriteOnce"]
        # One writer per ReadWriteOnce claim: the old pod goes before the new one starts.
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("env", OVERLAYS)
def test_housekeeping_runs_on_schedule_never_overlapping(rendered: Objects, env: str) -> None:
    cronjobs = by_kind(rendered[env], "CronJob")
    for name, args in contract.HOUSEKEEPING.items():
        assert name in cronjobs, f"no CronJob {name}"
        cronjob = cronjobs[name]
        assert tuple(_container_of(pod_spec(cronjob))["args"]) == args
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        assert cronjob["spec"]["timeZone"] == "Etc/UTC"
        assert len(cronjob["spec"]["schedule"].split()) == 5
        assert pod_spec(cronjob)["restartPolicy"] == "Never"


def _container_of(spec: dict[str, Any]) -> dict[str, Any]:
    (app,) = [c for c in spec["containers"] if c["name"] == "app"]
    return app


@pytest.mark.parametrize("env", OVERLAYS)
def test_pod_security(rendered: Objects, env: str) -> None:
    """The checks checkov's CKV_K8S_* make that matter most, kept here for every CI run."""
    secretish = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|_URL$)", re.I)
    allowed_plain = {"KONG_DECLARATIVE_CONFIG", "KONG_PROXY_LISTEN", "KONG_STATUS_LISTEN"}
    for obj in workloads(rendered[env]):
        name = obj["metadata"]["name"]
        spec = pod_spec(obj)
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), (name, flag)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        mounts_tmp = any(v.get("emptyDir") is not None for v in spec["volumes"])
        assert mounts_tmp, f"{name}: no emptyDir for /tmp"
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{name}/{container['name']}"
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] or "@" in image, f"{where}: untagged image"
            assert not image.endswith(":latest"), where
            sec = container["securityContext"]
            assert sec.get("privileged", False) is False, where
            assert sec["allowPrivilegeEscalation"] is False, where
            assert sec["readOnlyRootFilesystem"] is True, where
            assert sec["runAsNonRoot"] is True, where
            assert sec["capabilities"]["drop"] == ["ALL"], where
            assert not sec["capabilities"].get("add"), where
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{where}: {kind}"
            assert (container.get("livenessProbe") and container.get("readinessProbe")) or (
                obj["kind"] in ("Job", "CronJob")
            ), where
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), where
            for env_var in container.get("env", []):
                if "value" in env_var and env_var["name"] not in allowed_plain:
                    assert not secretish.search(env_var["name"]), (
                        f"{where}: {env_var['name']} must come from a Secret"
                    )


def test_no_secret_values_anywhere() -> None:
    """No Secret manifest with values in deploy/, and no secret literal in the ConfigMaps."""
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                assert not doc.get("data") and not doc.get("stringData"), path
    for env in OVERLAYS:
        kustomization = yaml.safe_load(
            (DEPLOY / "k8s" / "overlays" / env / "kustomization.yaml").read_text()
        )
        assert "secretGenerator" not in kustomization


@pytest.mark.parametrize("env", OVERLAYS)
def test_config_has_no_secrets_and_secrets_come_from_one_out_of_band_secret(
    rendered: Objects, env: str
) -> None:
    assert not by_kind(rendered[env], "Secret")
    (config,) = [
        o
        for o in rendered[env]
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("paywall-config-")
    ]
    for key in config["data"]:
        assert not re.search(r"SECRET|TOKEN|PASSWORD|API_KEY|DATABASE_URL|REDIS_URL", key), key
    for obj in workloads(rendered[env]):
        for container in pod_spec(obj)["containers"]:
            for env_var in container.get("env", []):
                ref = env_var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "paywall-secrets"


def _config_map_refs(spec: dict[str, Any]) -> set[str]:
    names = {v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v}
    for container in spec["containers"] + spec.get("initContainers", []):
        names |= {
            s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s
        }
        names |= {
            e["valueFrom"]["configMapKeyRef"]["name"]
            for e in container.get("env", [])
            if "configMapKeyRef" in e.get("valueFrom", {})
        }
    return names


@pytest.mark.parametrize("env", OVERLAYS)
def test_pods_use_the_generated_config_with_the_overlay_merged(rendered: Objects, env: str) -> None:
    config_maps = by_kind(rendered[env], "ConfigMap")
    (name,) = [n for n in config_maps if n.startswith("paywall-config-")]
    data = config_maps[name]["data"]
    assert data["PAYWALL_ENV"] == "production" and data["LAKE_BUCKET"] == f"paywall-{env}-lake"
    users = 0
    for obj in workloads(rendered[env]):
        # kong-declarative is made out of band with auth's keys (deploy/README.md).
        refs = _config_map_refs(pod_spec(obj)) - {"kong-declarative"}
        assert refs <= set(config_maps), f"{obj['metadata']['name']}: {refs}"
        users += name in refs
    assert users >= len(SERVICES)


@pytest.mark.parametrize("env", OVERLAYS)
def test_overlay_images_labels_and_public_host_land(rendered: Objects, env: str) -> None:
    for obj in workloads(rendered[env]):
        assert pod_template(obj)["metadata"]["labels"]["paywall.io/environment"] == env
        for container in pod_spec(obj)["containers"] + pod_spec(obj).get("initContainers", []):
            image = container["image"]
            third_party = ("kong:", "quay.io/oauth2-proxy/oauth2-proxy:")
            assert image.startswith(("registry.example.com/paywall/", *third_party)), image
    # Tokens carry the issuer, and Kong answers at the Gateway's host: the same name.
    (config,) = [o for o in rendered[env] if o["metadata"]["name"].startswith("paywall-config-")]
    host = urlsplit(config["data"]["AUTH_ISSUER"]).hostname
    (gateway,) = by_kind(rendered[env], "Gateway").values()
    assert {h for server in gateway["spec"]["servers"] for h in server["hosts"]} == {host}
    assert by_kind(rendered[env], "VirtualService")["paywall-public"]["spec"]["hosts"] == [host]


@pytest.mark.parametrize("env", OVERLAYS)
def test_production_topics_keep_three_copies_and_acknowledge_on_two(
    rendered: Objects, env: str
) -> None:
    (config,) = [
        o
        for o in rendered[env]
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("paywall-config-")
    ]
    assert contract.TOPIC_DURABILITY.items() <= config["data"].items()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        **config["data"],
        LAKE_PII_SALT="s",
        REGISTRATION_CLIENT_SECRET="r",
        BILLING_CLIENT_SECRET="b",
    )
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)


def test_production_kafka_clients_use_tls_and_msk_iam_with_their_own_roles(
    rendered: Objects,
) -> None:
    from paywall.clients import kafka_config

    (config,) = [
        o
        for o in rendered["prod"]
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("paywall-config-")
    ]
    settings = Settings(_env_file=None, **config["data"])  # type: ignore[call-arg]
    librdkafka = kafka_config(settings)
    assert librdkafka["security.protocol"] == "SASL_SSL"
    assert librdkafka["sasl.mechanism"] == "OAUTHBEARER" and callable(librdkafka["oauth_cb"])
    assert all(b.endswith(":9098") for b in librdkafka["bootstrap.servers"].split(","))
    accounts = by_kind(rendered["prod"], "ServiceAccount")
    deployed = {o["metadata"]["name"]: o for o in workloads(rendered["prod"])}
    for name in contract.KAFKA_CLIENTS:
        account = accounts[pod_spec(deployed[name])["serviceAccountName"]]
        role = account["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn", "")
        assert role.startswith("arn:aws:iam::"), f"{name}: no IAM role for MSK IAM"


@pytest.mark.parametrize("env", OVERLAYS)
def test_authorization_principals_name_the_overlay_namespace(rendered: Objects, env: str) -> None:
    accounts = set(by_kind(rendered[env], "ServiceAccount"))
    seen = 0
    for policy in by_kind(rendered[env], "AuthorizationPolicy").values():
        for rule in policy["spec"].get("rules", []):
            for source in rule.get("from", []):
                for principal in source["source"].get("principals", []):
                    trust, ns_word, namespace, sa_word, account = principal.split("/")
                    assert (trust, ns_word, sa_word) == ("cluster.local", "ns", "sa")
                    assert namespace == NAMESPACES[env]
                    assert account in accounts, principal
                    seen += 1
    assert seen >= 10
    callers = {
        s.rsplit("/", 1)[-1]
        for s in _principals(by_kind(rendered[env], "AuthorizationPolicy")["customer"])
    }
    # billing (the service and Dagster's billing run) reads the address a tax rate needs;
    # payment and subscription, the tenant of a customer a request names.
    assert callers == {"kong", "registration", "billing", "dagster-run", "payment", "subscription"}


def _principals(policy: dict[str, Any]) -> list[str]:
    return [
        p
        for rule in policy["spec"]["rules"]
        for source in rule["from"]
        for p in source["source"].get("principals", [])
    ]


# What each workload calls inside the mesh, as the code makes the calls (ServiceClient): the
# caller's ServiceAccount, the callee, the method and a path as sent. Dagster's runs (billing,
# notifications, recovery sweeps, reconciliation) are pods of the dagster-run account.
CALLS = [
    *[
        (caller, "auth", "POST", "/oauth/token")
        for caller in ("registration", "subscription", "billing", "payment", "dagster-run")
    ],
    ("registration", "auth", "POST", "/v1/users"),
    ("registration", "customer", "POST", "/v1/customers"),
    ("registration", "subscription", "GET", "/v1/plans/pro-monthly"),
    ("registration", "subscription", "GET", "/v1/customers/c1/subscriptions"),
    ("registration", "subscription", "POST", "/v1/subscriptions"),
    ("registration", "subscription", "POST", "/v1/subscriptions/s1/activate"),
    ("registration", "subscription", "POST", "/v1/subscriptions/s1/cancel"),
    ("registration", "payment", "POST", "/v1/accounts"),
    ("registration", "payment", "POST", "/v1/payments"),
    ("registration", "payment", "POST", "/v1/payments/p1/refunds"),
    ("registration", "billing", "GET", "/v1/coupons"),
    ("registration", "billing", "POST", "/v1/first_period_invoices"),
    ("registration", "billing", "POST", "/v1/invoices/i1/credit_notes"),
    ("subscription", "customer", "GET", "/v1/customers/c1"),
    ("subscription", "billing", "POST", "/v1/prorations"),
    ("subscription", "billing", "POST", "/v1/cancellation_credits"),
    ("payment", "customer", "GET", "/v1/customers/c1"),
    ("billing", "customer", "GET", "/v1/customers/c1"),
    ("billing", "payment", "POST", "/v1/payments"),
    ("billing", "subscription", "GET", "/v1/subscriptions/s1"),
    ("billing", "subscription", "POST", "/v1/subscriptions/s1/apply-upgrade"),
    ("dagster-run", "subscription", "GET", "/v1/due-subscriptions"),
    ("dagster-run", "subscription", "GET", "/v1/subscriptions/s1"),
    ("dagster-run", "subscription", "POST", "/v1/subscription-renewals"),
    ("dagster-run", "subscription", "POST", "/v1/subscriptions/s1/renew"),
    ("dagster-run", "subscription", "POST", "/v1/subscriptions/s1/reactivate"),
    ("dagster-run", "subscription", "POST", "/v1/subscriptions/s1/mark-past-due"),
    ("dagster-run", "subscription", "POST", "/v1/subscriptions/s1/expire"),
    ("dagster-run", "customer", "GET", "/v1/customers/c1"),
    ("dagster-run", "payment", "POST", "/v1/payments"),
    ("dagster-run", "payment", "POST", "/v1/payment-batches"),
    ("dagster-run", "payment", "GET", "/v1/payments/p1"),
    ("dagster-run", "payment", "POST", "/v1/operations/payment-recovery"),
    ("dagster-run", "billing", "POST", "/v1/operations/invoice-recovery"),
    ("dagster-run", "billing", "GET", "/v1/operations/reconciliation"),
    ("dagster-run", "registration", "POST", "/v1/operations/signup-recovery"),
]


def _path_matches(pattern: str, path: str) -> bool:
    """Istio's `paths`: exact, `prefix*`, `*suffix`, `*`, and templates of `{*}` (one
    segment) and `{**}` (any)."""
    if "{" in pattern:
        regex = re.escape(pattern).replace(r"\{\*\*\}", ".*").replace(r"\{\*\}", "[^/]+")
        return re.fullmatch(regex, path) is not None
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return path.endswith(pattern[1:])
    return pattern == path


def _allows(policy: dict[str, Any], caller: str, method: str, path: str) -> bool:
    return any(
        any(p.endswith(f"/sa/{caller}") for p in _principals({"spec": {"rules": [rule]}}))
        and any(
            method in op["operation"].get("methods", [method])
            and any(_path_matches(x, path) for x in op["operation"].get("paths", ["*"]))
            for op in rule.get("to", [])
        )
        for rule in policy["spec"]["rules"]
    )


@pytest.mark.parametrize(("caller", "callee", "method", "path"), CALLS)
def test_the_mesh_lets_each_workload_make_its_calls(
    rendered: Objects, caller: str, callee: str, method: str, path: str
) -> None:
    policies = by_kind(rendered["prod"], "AuthorizationPolicy")
    assert _allows(policies[callee], caller, method, path)


def test_the_mesh_refuses_what_no_workload_needs(rendered: Objects) -> None:
    policies = by_kind(rendered["prod"], "AuthorizationPolicy")
    assert _path_matches("/v1/subscriptions/{*}/renew", "/v1/subscriptions/s1/renew")
    assert not _path_matches("/v1/subscriptions/{*}/renew", "/v1/subscriptions/a/b/renew")
    # Kong cannot reach billing's internal moves, nor registration a subscription's renewal.
    assert not _allows(policies["subscription"], "kong", "POST", "/v1/subscriptions/s1/renew")
    assert not _allows(policies["subscription"], "kong", "POST", "/v1/subscription-renewals")
    assert not _allows(policies["payment"], "kong", "POST", "/v1/payment-batches")
    assert not _allows(
        policies["subscription"], "registration", "POST", "/v1/subscription-renewals"
    )
    assert not _allows(policies["registration"], "dagster-run", "POST", "/v1/registrations")
    assert not any(p.endswith("/sa/registration") for p in _principals(policies["registration"]))


def test_base_has_no_environment_specific_values() -> None:
    base = Path(DEPLOY / "k8s" / "base")
    for path in base.rglob("*.yaml"):
        text = path.read_text()
        assert "paywall-prod" not in text and "paywall-dev" not in text, path
