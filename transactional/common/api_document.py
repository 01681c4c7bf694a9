"""The public OpenAPI document: partner endpoints only, each error documented as RFC 9457
problem+json with its schema and an example of every problem type it can answer.

- Endpoints that need an operator scope (`security.OPERATOR_SCOPES`: internal, operations,
  admin) and the probes are left out; they are still served. Schemas only they used go too.
- The problem types an operation can answer are generated from the registry
  (`errors.REGISTRY`): those its shape implies (a token → invalid-token and
  insufficient-scope; a tenant's scope → tenant-required; parameters or a body →
  validation; a body → malformed-body and unprocessable-value; an Idempotency-Key → its
  four; a path id or a documented 404 → not-found; a cursor → bad-cursor; a body naming
  `tenant_id` → forbidden-tenant; and dependency-unavailable everywhere), plus the domain
  ones its route declares with `problems_answered(...)` in `openapi_extra`. The public
  document, the whole one (/internal/openapi.json) and the docs pages are made here and
  in `docs_pages`; /docs and /redoc show the public one.
- A route answering errors in another shape (OAuth's RFC 6749 JSON) sets `OWN_ERRORS` and
  documents them itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from transactional.common import errors
from transactional.common.errors import ProblemType
from transactional.common.idempotency import HEADER as IDEMPOTENCY_HEADER
from transactional.common.problems import OWN_ERRORS, PROBLEM_JSON, ProblemModel
from transactional.common.security import OPERATOR_SCOPES, PARTNER_SCOPES

PROBLEMS = "x-problems"
INTERNAL_DOCUMENT = "/internal/openapi.json"
_HIDDEN_TAGS = {"probes"}
_EXAMPLE_ID = "0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d"
_REF = "#/components/schemas/"

# What each problem type's `detail` says in a real answer (as the code words it); a type
# without one here is shown with its title.
DETAILS: dict[str, str] = {
    "invalid-header": "Idempotency-Key: String should have at most 255 characters",
    "malformed-body": "There was an error parsing the body",
    "idempotency-key-required": "send the Idempotency-Key header",
    "idempotency-key-reused": "this Idempotency-Key was used with other parameters",
    "idempotency-in-progress": "a request with this Idempotency-Key is still running; "
    "retry shortly",
    "bad-cursor": "cursor is not one this API gave",
    "invalid-authorization-request": "redirect_uri is not registered for this client",
    "unprocessable-value": 'invalid byte sequence for encoding "UTF8": 0x00',
    "invalid-token": "token expired",
    "insufficient-scope": "token lacks scope: subscriptions:write",
    "tenant-required": "this client belongs to no tenant and no customer, so it may not "
    "reach customer data; use a client registered for a tenant",
    "forbidden-tenant": "tenant_id names another tenant; only internal services may",
    "not-found": f"no subscription {_EXAMPLE_ID}",
    "already-exists": "tenant acme exists",
    "transition": "a canceled subscription cannot be paused",
    "same-plan": "the subscription is already on plan pro-monthly",
    "already-subscribed": "the customer has a live subscription",
    "unknown-plan": "no active plan 'gold-monthly'",
    "incompatible-plan": "plan basic-yearly bills in eur, the subscription in usd",
    "email-taken": "a customer of this tenant has this email",
    "already-registered": "this email already has a live subscription or a login",
    "already-erased": "the customer's personal data is already erased",
    "coupon-not-redeemable": "coupon SPRING25 has no redemptions left",
    "payment-declined": "Your card was declined.",
    "no-payment-method": "the customer has no default payment method",
    "not-refundable": "only a succeeded payment can be refunded",
    "refund-exceeds-payment": "refund of 3000 exceeds the 2900 left to refund",
    "credit-exceeds-invoice": "at most 400 usd of this invoice can still be credited",
    "refund-rejected": "Stripe refused the refund: charge_already_refunded",
    "processor-rejected": "No such PaymentMethod: 'pm_123'",
    "processor-unavailable": "Stripe did not answer; retry with the same Idempotency-Key",
    "invalid-webhook": "signature verification failed",
    "dependency-unavailable": "postgres is unavailable; retry after 5 seconds",
    "signup-unfinished": "the signup could not finish now; retry with the same Idempotency-Key",
    "not-configured": "STRIPE_WEBHOOK_SECRET is not set",
    "unknown-tenant": "no tenant acme",
    "scope-not-allowed": "a tenant's client may not hold: internal",
    "client-disabled": "client acme-3f9c1a2b7d is disabled",
}
# Members beyond the standard five that a type's answers carry.
_EXTRA: dict[str, dict[str, Any]] = {
    "validation": {
        "errors": [
            {
                "loc": ["body", "email"],
                "msg": "value is not a valid email address",
                "type": "value_error",
            }
        ]
    },
    "dependency-unavailable": {"dependency": "postgres"},
    "payment-declined": {"decline_code": "card_declined"},
    "credit-exceeds-invoice": {"creditable": 400},
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {"description": "The Bearer challenge", "schema": {"type": "string"}}
    },
    503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}


def problems_answered(*types: ProblemType) -> dict[str, Any]:
    """For a route's `openapi_extra`: the domain problems it answers besides the generic."""
    return {PROBLEMS: [t.slug for t in types]}


def install(app: FastAPI) -> None:
    """/openapi.json is the public document; /internal/openapi.json (not routed by Kong)
    has every operation, for operators and for the tests that walk them all."""
    build = app.openapi
    whole: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema: dict[str, Any] = build()
        if fresh:
            document(schema, public=True)
        return schema

    def internal() -> dict[str, Any]:
        if not whole:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document(schema, public=False)
            whole.update(schema)
        return whole

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get(INTERNAL_DOCUMENT, include_in_schema=False)
    def internal_document() -> JSONResponse:
        return JSONResponse(internal())


def document(schema: dict[str, Any], *, public: bool) -> None:
    """Document every error of FastAPI's document `schema`, in place; `public`: leave the
    operator endpoints out."""
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for path in list(paths):
        for method in list(paths[path]):
            operation = paths[path][method]
            if public and _internal(operation):
                del paths[path][method]
            elif operation.pop(OWN_ERRORS, False):
                _drop_problem_responses(operation)
            else:
                _document_errors(schema, path, operation)
        if not paths[path]:
            del paths[path]
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemModel"] = ProblemModel.model_json_schema(ref_template=_REF + "{model}")
    _prune_schemas(schema)


def _scopes(operation: dict[str, Any]) -> set[str]:
    return {
        s for requirement in operation.get("security", []) for v in requirement.values() for s in v
    }


def _internal(operation: dict[str, Any]) -> bool:
    return bool(_scopes(operation) & OPERATOR_SCOPES) or bool(
        set(operation.get("tags", [])) & _HIDDEN_TAGS
    )


def _drop_problem_responses(operation: dict[str, Any]) -> None:
    responses = operation.get("responses", {})
    for code in [c for c, r in responses.items() if PROBLEM_JSON in r.get("content", {})]:
        del responses[code]


def answered(schema: dict[str, Any], operation: dict[str, Any]) -> list[ProblemType]:
    """Every problem type `operation` can answer, by its shape and its declaration."""
    found: list[ProblemType] = []
    params = operation.get("parameters", [])
    body = operation.get("requestBody")
    documented = operation.get("responses", {})
    if operation.get("security"):
        found += [errors.INVALID_TOKEN, errors.INSUFFICIENT_SCOPE]
        if _scopes(operation) & set(PARTNER_SCOPES):
            found.append(errors.TENANT_REQUIRED)
    if params or body:
        found.append(errors.VALIDATION)
    if body:
        found += [errors.MALFORMED_BODY, errors.UNPROCESSABLE_VALUE]
        if "tenant_id" in _body_properties(schema, body):
            found.append(errors.FORBIDDEN_TENANT)
    for param in params:
        if param["in"] == "header" and param["name"] == IDEMPOTENCY_HEADER:
            found += [errors.INVALID_HEADER, errors.IDEMPOTENCY_KEY_REUSED]
            found.append(errors.IDEMPOTENCY_IN_PROGRESS)
            if param.get("required"):
                found.append(errors.IDEMPOTENCY_KEY_REQUIRED)
        elif param["in"] == "query" and param["name"] == "cursor":
            found.append(errors.BAD_CURSOR)
    if any(p["in"] == "path" for p in params) or "404" in documented:
        found.append(errors.NOT_FOUND)
    found += [errors.REGISTRY[slug] for slug in operation.pop(PROBLEMS, [])]
    found.append(errors.DEPENDENCY_UNAVAILABLE)
    return list(dict.fromkeys(found))


def _body_properties(schema: dict[str, Any], body: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for media in body.get("content", {}).values():
        found |= set(_resolve(schema, media.get("schema", {})).get("properties", {}))
    return found


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].removeprefix(_REF)]
    for alternative in node.get("anyOf", []):  # an optional body: Model | None
        if "$ref" in alternative:
            return _resolve(schema, alternative)
    return node


def _document_errors(schema: dict[str, Any], path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    by_status: dict[int, list[ProblemType]] = {}
    for problem in answered(schema, operation):
        by_status.setdefault(problem.status, []).append(problem)
    instance = re.sub(r"\{[^}]+\}", _EXAMPLE_ID, path)
    invalid = _invalid_input(schema, operation)
    for code in [c for c in responses if int(c) >= 400 and int(c) not in by_status]:
        if _problem_or_bare(responses[code]):
            del responses[code]  # documented, but nothing the operation does answers it
    for status, problems in sorted(by_status.items()):
        if not _problem_or_bare(responses.get(str(status), {})):
            continue  # answered in its own shape (an HTML page)
        own = responses.get(str(status), {}).get("description")
        response: dict[str, Any] = {
            "description": own or "; ".join(p.title for p in problems),
            "content": {
                PROBLEM_JSON: {
                    "schema": {"$ref": _REF + "ProblemModel"},
                    "examples": {p.slug: _example(p, instance, invalid) for p in problems},
                }
            },
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        responses[str(status)] = response
    operation["responses"] = dict(sorted(responses.items()))


def _invalid_input(schema: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    """Where a validation example points: the body's first field, else the first parameter."""
    body = operation.get("requestBody")
    fields = sorted(_body_properties(schema, body)) if body else []
    if fields:
        return ["body", fields[0]]
    params = operation.get("parameters", [])
    return [params[0]["in"], params[0]["name"]] if params else ["body"]


def _problem_or_bare(response: dict[str, Any]) -> bool:
    media = set(response.get("content", {}))
    return not media or PROBLEM_JSON in media or media == {"application/json"}


def _example(problem: ProblemType, instance: str, invalid: list[str]) -> dict[str, Any]:
    value = {
        "type": problem.uri,
        "title": problem.title,
        "status": problem.status,
        "detail": DETAILS.get(problem.slug, problem.title),
        "instance": instance,
        **_EXTRA.get(problem.slug, {}),
    }
    if problem is errors.VALIDATION:
        # A path segment is always there; what goes wrong with one is its shape.
        message, kind = (
            ("Input should be a valid UUID, invalid length", "uuid_parsing")
            if invalid[0] == "path"
            else ("Field required", "missing")
        )
        value["detail"] = f"{'.'.join(invalid)}: {message}"
        value["errors"] = [{"loc": invalid, "msg": message, "type": kind}]
    return {"summary": problem.title, "value": value}


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF):
                yield value.removeprefix(_REF)
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _prune_schemas(schema: dict[str, Any]) -> None:
    """Drop component schemas only the left-out endpoints used."""
    components = schema["components"]["schemas"]
    keep: set[str] = set()
    todo = list(_refs(schema.get("paths", {})))
    while todo:
        name = todo.pop()
        if name not in keep and name in components:
            keep.add(name)
            todo += list(_refs(components[name]))
    for name in [n for n in components if n not in keep]:
        del components[name]
