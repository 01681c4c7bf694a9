"""What the form-posted OAuth endpoints take and answer, for the OpenAPI document.

They answer errors in RFC 6749's JSON shape, not problem+json, so each documents its own
error responses and opts out of the app-wide problem defaults (`problems.OWN_ERRORS`).
"""

from __future__ import annotations

from typing import Any

from transactional.auth.config import SUPPORTED_GRANTS
from transactional.auth.models import IntrospectionBody, OAuthErrorBody, TokenBody
from transactional.common import errors
from transactional.common.api_document import problems_answered
from transactional.common.forms import FORM_TYPE
from transactional.common.problems import OWN_ERRORS, PROBLEM_JSON, ProblemModel

_CLIENT_AUTH = {
    "client_id": {"type": "string", "description": "client_secret_post or a public client"},
    "client_secret": {"type": "string", "description": "client_secret_post"},
}


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    # Open to other fields (RFC 6749 3.1: servers ignore parameters they do not know), but
    # each one once, as a string: a repeated parameter is an invalid_request. A parameter
    # sent empty counts as not sent (3.1 again): a required one cannot be empty.
    return {
        "type": "object",
        "required": required,
        "properties": {
            name: {"minLength": 1, **spec} if name in required else spec
            for name, spec in properties.items()
        },
        "additionalProperties": {"type": "string"},
    }


def _form(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return _body(_object(required, properties))


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {FORM_TYPE: {"schema": schema}}}}


_GRANT_NEEDS = {
    "authorization_code": ["code", "redirect_uri", "code_verifier"],
    "client_credentials": [],
    "refresh_token": ["refresh_token"],
}
assert set(_GRANT_NEEDS) == SUPPORTED_GRANTS, "document every grant the token endpoint takes"


def _grant(grant_type: str, required: list[str]) -> dict[str, Any]:
    """One grant's token request: what RFC 6749 (4.1.3, 4.4.2, 6) requires of it."""
    return _object(
        ["grant_type", *required],
        {
            "grant_type": {"type": "string", "enum": [grant_type]},
            "code": {"type": "string"},
            "redirect_uri": {"type": "string"},
            "code_verifier": {"type": "string"},
            "refresh_token": {"type": "string"},
            "scope": {"type": "string"},
            **_CLIENT_AUTH,
        },
    )


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "model": OAuthErrorBody,
        "description": description,
        "content": {"application/json": {}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema}


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("invalid_request, or an error of the grant (RFC 6749 5.2)"),
    401: _error(
        "invalid_client: client authentication failed",
        {"WWW-Authenticate": _header("The scheme to authenticate with", {"type": "string"})},
    ),
    429: _error(
        "temporarily_unavailable: too many failed client authentications from this address "
        "or for this client",
        {"Retry-After": _header("Seconds until the next attempt is counted", {"type": "integer"})},
    ),
}

TOKEN: dict[str, Any] = {
    "responses": {
        200: {"model": TokenBody, "description": "Tokens (RFC 6749 5.1)"},
        **_ERRORS,
        400: _error(
            "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type or "
            "invalid_scope (RFC 6749 5.2)"
        ),
    },
    "openapi_extra": {
        OWN_ERRORS: True,
        **_body(
            {"oneOf": [_grant(grant, required) for grant, required in sorted(_GRANT_NEEDS.items())]}
        ),
    },
}

REVOKE: dict[str, Any] = {
    "responses": {
        200: {"description": "Revoked, or nothing to revoke (RFC 7009 2.2); no body"},
        **_ERRORS,
    },
    "openapi_extra": {
        OWN_ERRORS: True,
        **_form(
            ["token"],
            {
                "token": {"type": "string"},
                "token_type_hint": {"type": "string"},
                **_CLIENT_AUTH,
            },
        ),
    },
}

INTROSPECT: dict[str, Any] = {
    "responses": {
        200: {"model": IntrospectionBody, "description": "Whether the token is active (RFC 7662)"},
        **_ERRORS,
        401: _error(
            "invalid_client, or invalid_token: a bearer token asked about another token",
            {"WWW-Authenticate": _header("The scheme to authenticate with", {"type": "string"})},
        ),
    },
    "openapi_extra": {
        OWN_ERRORS: True,
        **_form(
            ["token"],
            {
                "token": {"type": "string"},
                "token_type_hint": {"type": "string"},
                **_CLIENT_AUTH,
            },
        ),
    },
}


# The authorization request (RFC 6749 4.1.1 with PKCE, RFC 7636 4.3), as the login page
# takes it in its query and carries it in its form.
_AUTHORIZATION_REQUEST: dict[str, dict[str, Any]] = {
    "response_type": {"type": "string", "enum": ["code"]},
    "client_id": {"type": "string", "minLength": 1, "maxLength": 100},
    "redirect_uri": {"type": "string", "format": "uri"},
    "code_challenge": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
    "code_challenge_method": {"type": "string", "enum": ["S256"]},
    "scope": {"type": "string"},
    "state": {"type": "string", "maxLength": 1024},
    "nonce": {"type": "string"},
}
_REQUIRED = ["response_type", "client_id", "redirect_uri", "code_challenge"]
_PAGE = {"text/html": {"schema": {"type": "string"}}}
_BAD_REQUEST = {
    "model": ProblemModel,
    "content": {PROBLEM_JSON: {}},
    "description": "Not an authorization request this server can answer (unknown client, "
    "unregistered redirect_uri): shown here, never redirected",
}

AUTHORIZE_PAGE: dict[str, Any] = {
    "responses": {
        200: {"description": "The login form", "content": _PAGE},
        302: {"description": "Back to the client with an error (RFC 6749 4.1.2.1)"},
        400: _BAD_REQUEST,
    },
    "openapi_extra": {
        **problems_answered(errors.INVALID_AUTHORIZATION_REQUEST),
        "parameters": [
            {"name": name, "in": "query", "required": name in _REQUIRED, "schema": schema}
            for name, schema in _AUTHORIZATION_REQUEST.items()
        ],
    },
}

AUTHORIZE_LOGIN: dict[str, Any] = {
    "responses": {
        200: {"description": "The login form again", "content": _PAGE},
        302: {"description": "Back to the client with a code and state, or an error"},
        400: _BAD_REQUEST,
        401: {"description": "Wrong email or password: the form again", "content": _PAGE},
        429: {"description": "Too many attempts: the form, with Retry-After", "content": _PAGE},
    },
    "openapi_extra": {
        **problems_answered(errors.INVALID_AUTHORIZATION_REQUEST),
        **_form(
            [*_REQUIRED, "email", "password"],
            {
                **_AUTHORIZATION_REQUEST,
                "email": {"type": "string", "maxLength": 254},
                "password": {"type": "string", "maxLength": 1024},
            },
        ),
    },
}
