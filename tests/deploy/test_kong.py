"""deploy/kong/kong.yaml: DB-less config whose routes reach real service paths, allowed by
the Istio AuthorizationPolicies."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from typer.testing import CliRunner

from paywall.cli import app
from tests.deploy.conftest import DEPLOY, by_kind
from transactional.common.app import MAX_HEADER_BYTES, MAX_HEADERS
from transactional.services import SERVICES, service_app

KONG = yaml.safe_load((DEPLOY / "kong" / "kong.yaml").read_text())
OSS_PLUGINS = {"jwt", "rate-limiting", "request-size-limiting", "correlation-id", "pre-function"}
# No bearer token at Kong: discovery and login, the price list, Stripe's signed webhooks,
# and the customer portal's pages (its session cookie; it calls the APIs with the token).
PUBLIC_ROUTES = {"auth-oidc", "plans", "stripe-webhooks", "portal"}
PAGES = {"portal"}  # served outside the API document


def _routes() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    services = {s["name"]: s for s in KONG["services"]}
    out = [(service, route) for service in KONG["services"] for route in service["routes"]]
    for route in KONG.get("routes", []):
        out.append((services[route["service"]], route))
    return out


@cache
def _openapi_paths(service: str) -> dict[str, set[str]]:
    paths = service_app(service).openapi()["paths"]
    return {path: {m.upper() for m in ops} for path, ops in paths.items()}


def _served(service: str, route: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, concrete path) of the service's endpoints this Kong route forwards."""
    out = []
    for path, methods in _openapi_paths(service).items():
        # Path parameters are ids, which are UUIDs here: a route may insist on the shape.
        concrete = re.sub(r"\{[^}]+\}", "0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d", path)
        for kong_path in route["paths"]:
            if kong_path.startswith("~"):
                hit = re.match(kong_path[1:], concrete) is not None
            else:
                hit = concrete == kong_path or concrete.startswith(kong_path.rstrip("/") + "/")
            if hit:
                out += [(m, concrete) for m in methods & set(route["methods"])]
    return out


def test_format_and_service_upstreams() -> None:
    assert KONG["_format_version"] == "3.0"
    names = [s["name"] for s in KONG["services"]]
    assert len(names) == len(set(names))
    for service in KONG["services"]:
        assert service["name"] in SERVICES
        assert service["url"] == f"http://{service['name']}:8000"
    route_names = [r["name"] for _, r in _routes()]
    assert len(route_names) == len(set(route_names))
    for route in KONG.get("routes", []):
        assert route["service"] in names


def test_plugins_are_oss_and_cover_the_edge_concerns() -> None:
    everywhere = [p["name"] for p in KONG["plugins"]]
    assert {"correlation-id", "rate-limiting", "request-size-limiting"} <= set(everywhere)
    correlation = next(p for p in KONG["plugins"] if p["name"] == "correlation-id")
    assert correlation["config"]["header_name"] == "X-Request-ID"
    for service, route in _routes():
        for plugin in service.get("plugins", []) + route.get("plugins", []):
            assert plugin["name"] in OSS_PLUGINS, plugin["name"]


def test_header_count_and_size_are_limited_at_the_edge(rendered: dict[str, Any]) -> None:
    (limit,) = [p for p in KONG["plugins"] if p["name"] == "pre-function"]
    (code,) = limit["config"]["rewrite"]  # rewrite: before routing, for every request
    assert "kong.request.get_headers(100)" in code and '"truncated"' in code
    assert "kong.response.exit(431" in code and "application/problem+json" in code
    assert MAX_HEADERS > 100, "the services must accept what Kong lets through, and more"
    for env in ("dev", "prod"):
        kong = by_kind(rendered[env], "Deployment")["kong"]
        (container,) = kong["spec"]["template"]["spec"]["containers"]
        variables = {e["name"]: e.get("value") for e in container["env"]}
        number, size = variables["KONG_NGINX_PROXY_LARGE_CLIENT_HEADER_BUFFERS"].split()
        assert int(number) * int(size.removesuffix("k")) * 1024 <= MAX_HEADER_BYTES


def test_tokens_are_checked_on_every_non_public_route() -> None:
    for _, route in _routes():
        jwt = [p for p in route.get("plugins", []) if p["name"] == "jwt"]
        if route["name"] in PUBLIC_ROUTES:
            assert not jwt, route["name"]
            continue
        assert jwt, f"{route['name']}: no jwt plugin"
        config = jwt[0]["config"]
        assert config["key_claim_name"] == "kid"
        assert "exp" in config["claims_to_verify"]
        assert config["uri_param_names"] == [], "tokens never travel in URLs"
    (consumer,) = KONG["consumers"]
    assert consumer["jwt_secrets"] == [], "keys are added at deploy time, never in git"


def test_every_route_reaches_real_endpoints() -> None:
    for service, route in _routes():
        if route["name"] in PAGES:
            continue
        assert _served(service["name"], route), f"{route['name']} matches no endpoint"


def test_the_portal_route_reaches_the_portal() -> None:
    """Pages are outside the API document: the route is checked against the app itself."""
    (service, route) = next((s, r) for s, r in _routes() if r["name"] == "portal")
    with TestClient(service_app(service["name"])) as client:
        for path in route["paths"]:
            page = client.get(f"{path}/login", follow_redirects=False)
            assert page.status_code == 302, (path, page.status_code)
            assert "/oauth/authorize?" in page.headers["location"]


def test_every_public_operation_is_routed() -> None:
    """What the public OpenAPI documents, a partner can call through the gateway."""
    routed = {
        (service["name"], method, path)
        for service, route in _routes()
        for method, path in _served(service["name"], route)
    }
    missing = [
        f"{method} {path} ({service})"
        for service in SERVICES
        for path, methods in _openapi_paths(service).items()
        for method in sorted(methods)
        if (service, method, re.sub(r"\{[^}]+\}", "0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d", path))
        not in routed
    ]
    assert not missing, "public operations Kong does not route: " + ", ".join(missing)


@pytest.fixture(scope="module")
def policies(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return by_kind(rendered["prod"], "AuthorizationPolicy")


def _allows(policy: dict[str, Any], account: str, method: str, path: str) -> bool:
    def path_ok(pattern: str) -> bool:
        if "{*}" in pattern:  # Istio's path template: one whole segment
            segment = "[^/]+"
            return (
                re.fullmatch(re.escape(pattern).replace(re.escape("{*}"), segment), path)
                is not None
            )
        if pattern.endswith("*"):
            return path.startswith(pattern[:-1])
        if pattern.startswith("*"):
            return path.endswith(pattern[1:])
        return path == pattern

    for rule in policy["spec"]["rules"]:
        sources = [s["source"] for s in rule["from"]]
        if not any(p.endswith(f"/sa/{account}") for s in sources for p in s.get("principals", [])):
            continue
        for op in (t["operation"] for t in rule["to"]):
            if method in op.get("methods", [method]) and any(map(path_ok, op["paths"])):
                return True
    return False


def test_istio_allows_kong_exactly_what_kong_routes(policies: dict[str, Any]) -> None:
    for service, route in _routes():
        for method, path in _served(service["name"], route):
            assert _allows(policies[service["name"]], "kong", method, path), (
                f"Kong routes {method} {path} to {service['name']}, Istio denies it"
            )


def test_a_browsers_preflight_passes_kong_and_istio_to_the_service(
    rendered: dict[str, Any],
) -> None:
    """CORS is answered by the services (CORS_ALLOW_ORIGINS): Kong routes OPTIONS on every
    route without asking for a token, and Istio lets Kong's preflight reach every workload."""
    for _, route in _routes():
        assert "OPTIONS" in route["methods"], route["name"]
        for plugin in route.get("plugins", []):
            if plugin["name"] == "jwt":
                assert plugin["config"]["run_on_preflight"] is False, route["name"]
    preflight = [
        p
        for p in rendered["prod"]
        if p["kind"] == "AuthorizationPolicy"
        and "selector" not in p["spec"]
        and any(
            p["spec"].get("action") == "ALLOW"
            and any(s["source"].get("principals", [""])[0].endswith("/sa/kong") for s in r["from"])
            and [t["operation"].get("methods") for t in r["to"]] == [["OPTIONS"]]
            and not any("paths" in t["operation"] for t in r["to"])
            for r in p["spec"].get("rules", [])
        )
    ]
    assert preflight, "no namespace-wide ALLOW of Kong's OPTIONS"


def _kong_config(tmp_path: Path, keys: list[Any]) -> Result:
    (tmp_path / "jwks.json").write_text(json.dumps(KeySet(keys).as_dict(private=False)))
    args = ["--jwks", str(tmp_path / "jwks.json"), "--kong", str(DEPLOY / "kong" / "kong.yaml")]
    return CliRunner().invoke(app, ["deploy", "kong-config", *args])


def test_deploy_command_gives_kong_the_keys_auth_signs_with(tmp_path: Path) -> None:
    # As auth makes them (transactional/auth/keys.py): the active key and a retired one.
    keys = [
        RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})
        for kid in ("k1", "k2")
    ]
    result = _kong_config(tmp_path, [*keys, ECKey.generate_key("P-256", {"kid": "ec"})])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.stdout)
    secrets = {s["key"]: s for s in config["consumers"][0]["jwt_secrets"]}
    assert set(secrets) == {"k1", "k2"}
    for key in keys:
        # Kong picks the secret by the token's kid and verifies with its PEM.
        token = jwt.encode({"alg": "RS256", "kid": key.kid}, {"sub": "someone"}, key)
        assert secrets[key.kid]["algorithm"] == "RS256"
        jwt.decode(token, RSAKey.import_key(secrets[key.kid]["rsa_public_key"]))
    config["consumers"][0]["jwt_secrets"] = []
    assert config == KONG, "only the consumer's secrets change"


def test_deploy_command_refuses_a_jwks_without_rsa_signing_keys(tmp_path: Path) -> None:
    encryption = RSAKey.generate_key(2048, parameters={"kid": "e1", "use": "enc"})
    result = _kong_config(tmp_path, [encryption])
    assert result.exit_code != 0
    assert str(result.exception) == "--jwks: no RSA signing key"
