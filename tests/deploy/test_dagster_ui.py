"""The Dagster UI in the rendered overlays: public only under /dagster/, behind an OIDC
login (oauth2-proxy) against our auth service, and unreachable around it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.conftest import OVERLAYS, by_kind, pod_spec
from transactional.auth.clients import DAGSTER_UI_CALLBACK, DAGSTER_UI_CLIENT_ID

Objects = dict[str, list[dict[str, Any]]]
PREFIX = "/dagster"
PROXY = "dagster-ui-proxy"


def _flags(container: dict[str, Any]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])


def _app(obj: dict[str, Any]) -> dict[str, Any]:
    (app,) = [c for c in pod_spec(obj)["containers"] if c["name"] == "app"]
    return app


@pytest.mark.parametrize("env", OVERLAYS)
def test_the_public_route_leads_to_the_login_proxy_only(rendered: Objects, env: str) -> None:
    public = by_kind(rendered[env], "VirtualService")["paywall-public"]
    (route,) = [r for r in public["spec"]["http"] if r["name"] == "dagster-ui"]
    assert route["match"] == [{"uri": {"prefix": f"{PREFIX}/"}}]
    (destination,) = route["route"]
    service = by_kind(rendered[env], "Service")[destination["destination"]["host"]]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": PROXY}
    port = destination["destination"]["port"]["number"]
    assert port in {p["port"] for p in service["spec"]["ports"]}
    assert public["spec"]["http"].index(route) == 0, "before Kong's catch-all"


@pytest.mark.parametrize("env", OVERLAYS)
def test_the_proxy_logs_in_against_our_auth_service(rendered: Objects, env: str) -> None:
    (config,) = [o for o in rendered[env] if o["metadata"]["name"].startswith("paywall-config-")]
    issuer = config["data"]["AUTH_ISSUER"]
    proxy = _app(by_kind(rendered[env], "Deployment")[PROXY])
    env_vars = {e["name"]: e["valueFrom"] for e in proxy["env"]}
    assert env_vars["AUTH_ISSUER"]["configMapKeyRef"] == {
        "name": config["metadata"]["name"],
        "key": "AUTH_ISSUER",
    }
    for secret in ("OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET"):
        assert env_vars[secret]["secretKeyRef"]["name"] == "paywall-secrets"
    flags = _flags(proxy)
    assert flags["provider"] == "oidc" and flags["client-id"] == DAGSTER_UI_CLIENT_ID
    assert flags["oidc-issuer-url"] == "$(AUTH_ISSUER)"  # Kubernetes expands it from env
    assert flags["redirect-url"] == f"$(AUTH_ISSUER){DAGSTER_UI_CALLBACK}"
    assert flags["login-url"] == "$(AUTH_ISSUER)/oauth/authorize"
    assert flags["code-challenge-method"] == "S256"
    assert flags["cookie-secure"] == "true"
    assert DAGSTER_UI_CALLBACK.startswith(flags["proxy-prefix"] + "/")
    assert flags["proxy-prefix"].startswith(f"{PREFIX}/")
    assert urlsplit(issuer).scheme == "https"
    # Upstream: the webserver, served under the same prefix.
    upstream = urlsplit(flags["upstream"])
    assert upstream.hostname == "dagster-webserver" and upstream.path == f"{PREFIX}/"
    webserver = _app(by_kind(rendered[env], "Deployment")["dagster-webserver"])
    args = webserver["args"]
    assert args[args.index("--path-prefix") + 1] == PREFIX
    assert webserver["livenessProbe"]["httpGet"]["path"].startswith(f"{PREFIX}/")
    # Auth registers the client only with its secret, which the auth pod may read.
    auth = _app(by_kind(rendered[env], "Deployment")["auth"])
    secret = next(e for e in auth["env"] if e["name"] == "DAGSTER_UI_CLIENT_SECRET")
    assert (
        secret["valueFrom"]["secretKeyRef"]["key"]
        == (env_vars["OAUTH2_PROXY_CLIENT_SECRET"]["secretKeyRef"]["key"])
    )


@pytest.mark.parametrize("env", OVERLAYS)
def test_nothing_reaches_the_ui_around_the_proxy(rendered: Objects, env: str) -> None:
    (ns,) = by_kind(rendered[env], "Namespace")
    policies = by_kind(rendered[env], "AuthorizationPolicy")
    assert policies["deny-by-default"]["spec"] == {}
    selecting = [
        p
        for p in policies.values()
        if p["spec"].get("selector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        == "dagster-webserver"
    ]
    (webserver,) = selecting
    sources = [s["source"] for rule in webserver["spec"]["rules"] for s in rule["from"]]
    assert sources == [{"principals": [f"cluster.local/ns/{ns}/sa/{PROXY}"]}]
    proxy_policy = policies[PROXY]
    (rule,) = proxy_policy["spec"]["rules"]
    assert rule["from"] == [{"source": {"namespaces": ["istio-system"]}}]
    deployment = by_kind(rendered[env], "Deployment")[PROXY]
    assert pod_spec(deployment)["serviceAccountName"] == PROXY
    auth_rules = policies["auth"]["spec"]["rules"]
    proxy_rules = [
        r for r in auth_rules if r["from"][0]["source"].get("principals", [""])[0].endswith(PROXY)
    ]
    assert proxy_rules and all(
        set(op["operation"]["paths"]) <= {"/oauth/token", "/jwks.json"}
        for r in proxy_rules
        for op in r["to"]
    )
