"""The public API document and its pages: partner endpoints only, every error a
problem+json with examples from the registry, a client-credentials scheme /docs can run,
and /docs and /redoc that load nothing from off the origin."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.conftest import Api, register_client
from transactional.common import errors
from transactional.common.problems import PROBLEM_JSON
from transactional.common.security import OPERATOR_SCOPES, PARTNER_SCOPES

pytestmark = pytest.mark.integration

INTERNAL = [
    ("post", "/v1/subscriptions/{sub_id}/activate"),
    ("post", "/v1/subscriptions/{sub_id}/renew"),
    ("get", "/v1/due-subscriptions"),
    ("post", "/v1/users"),
    ("post", "/v1/operations/signup-recovery"),
    ("get", "/v1/operations/reconciliation"),
    ("post", "/v1/tenants"),
    ("post", "/v1/clients/{client_id}/disable"),
]
BY_URI = {kind.uri: kind for kind in errors.REGISTRY.values()}


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    answer = httpx.get(f"{api.url}/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def _oauth_errors(operation: dict[str, Any]) -> bool:
    """The OAuth endpoints answer RFC 6749 JSON errors, documented as such."""
    return any(
        "OAuthErrorBody" in str(r.get("content", {}))
        for code, r in operation["responses"].items()
        if int(code) >= 400
    )


def test_internal_operations_are_left_out_but_still_served(
    api: Api, document: dict[str, Any]
) -> None:
    whole = httpx.get(f"{api.url}/internal/openapi.json").json()
    for method, path in INTERNAL:
        assert method not in document["paths"].get(path, {}), (method, path)
        assert method in whole["paths"][path], (method, path)
    for method, path, operation in operations(document):
        scopes = {s for req in operation.get("security", []) for v in req.values() for s in v}
        assert not scopes & OPERATOR_SCOPES, (method, path)
    assert "DuePage" not in document["components"]["schemas"], "internal schemas stay out"
    # Served all the same: a partner is refused for its scope, not told there is no route.
    token = _partner_token(api, "subscriptions:write")
    answer = httpx.post(
        f"{api.url}/v1/subscriptions/0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d/activate",
        json={"payment_id": "x"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 403 and answer.json()["type"].endswith("/insufficient-scope")


def test_every_public_operation_documents_its_errors_with_examples(
    document: dict[str, Any],
) -> None:
    assert len(operations(document)) >= 20
    for method, path, operation in operations(document):
        where = f"{method.upper()} {path}"
        failures = {c: r for c, r in operation["responses"].items() if int(c) >= 400}
        assert failures, f"{where}: no error documented"
        if _oauth_errors(operation):
            continue
        for code, response in failures.items():
            if "text/html" in response.get("content", {}):
                continue  # the login form shown again
            assert set(response["content"]) == {PROBLEM_JSON}, f"{where} {code}"
            media = response["content"][PROBLEM_JSON]
            assert media["schema"] == {"$ref": "#/components/schemas/ProblemModel"}
            assert media["examples"], f"{where} {code}: no example"
            for name, example in media["examples"].items():
                value = example["value"]
                kind = BY_URI[value["type"]]  # a registered type, nothing made up
                assert kind.slug == name and kind.status == int(code), f"{where} {code}"
                assert value["title"] == kind.title and value["status"] == kind.status
                assert value["detail"] and value["instance"].startswith("/")
    problem = document["components"]["schemas"]["ProblemModel"]
    assert {"title", "status"} <= set(problem["required"])


def test_the_401_each_operation_answers_is_one_it_documents(
    api: Api, document: dict[str, Any]
) -> None:
    checked = 0
    for method, path, operation in operations(document):
        if not operation.get("security"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d", path)
        answer = httpx.request(method, f"{api.url}{concrete}", json={})
        assert answer.status_code == 401, f"{method} {path}: {answer.text}"
        examples = operation["responses"]["401"]["content"][PROBLEM_JSON]["examples"]
        assert answer.json()["type"] in {e["value"]["type"] for e in examples.values()}
        checked += 1
    assert checked >= 15


def _partner_token(api: Api, scopes: str) -> str:
    client_id, secret = register_client(api.settings, scopes, "tenant-docs")
    answer = httpx.post(
        f"{api.url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": scopes},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_the_security_scheme_runs_client_credentials_as_docs_does(
    api: Api, document: dict[str, Any]
) -> None:
    (name,) = document["components"]["securitySchemes"]
    scheme = document["components"]["securitySchemes"][name]
    flow = scheme["flows"]["clientCredentials"]
    assert set(flow["scopes"]) == set(PARTNER_SCOPES)
    for _, _, operation in operations(document):
        for requirement in operation.get("security", []):
            assert set(requirement) == {name}
            assert set(requirement[name]) <= set(flow["scopes"])
    # What Swagger UI's Authorize does for this flow: the token URL resolved against the
    # document's, the client in a Basic header, the ticked scopes in the form.
    client_id, secret = register_client(api.settings, "customers:read", "tenant-docs")
    token_url = urljoin(f"{api.url}/openapi.json", flow["tokenUrl"])
    answer = httpx.post(
        token_url,
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": "customers:read"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    listed = httpx.get(f"{api.url}/v1/customers", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in {"src", "href", "spec-url"} and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_their_own_origin(api: Api, page: str) -> None:
    answer = httpx.get(f"{api.url}{page}")
    assert answer.status_code == 200
    html = answer.text
    # Nothing off the origin, in markup or in the inline script that starts the page.
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+", html, flags=re.I), html
    links = _Links()
    links.feed(html)
    urls = links.urls + re.findall(r"url: '([^']+)'", html)
    assert any(u.endswith(".js") for u in urls) and any("openapi.json" in u for u in urls)
    for url in urls:
        assert not urlsplit(url).netloc, url
        fetched = httpx.get(urljoin(f"{api.url}{page}", url))
        assert fetched.status_code == 200, url
        assert fetched.content, url
    if page == "/docs":
        redirect = httpx.get(f"{api.url}/docs/oauth2-redirect")
        assert redirect.status_code == 200 and "oauth2" in redirect.text.lower()
