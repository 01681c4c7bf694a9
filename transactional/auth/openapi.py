"""What the form-posted OAuth endpoints take and answer, for the OpenAPI document.

They answer errors in RFC 6749's JSON shape, not problem+json, so each documents its own
error responses and opts out of the app-wide problem defaults (`problems.OWN_ERRORS`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from transactional.auth.config import SUPPORTED_GRANTS
from transactional.auth.forms import FORM_TYPE
from transactional.common.problems import OWN_ERRORS


class OAuthErrorBody(BaseModel):
    """RFC 6749 5.2."""

    error: str
    error_description: str


class TokenBody(BaseModel):
    """RFC 6749 5.1; `refresh_token` and `id_token` only where the grant gives them."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None


class IntrospectionBody(BaseModel):
    """RFC 7662 2.2: `active`, and the token's claims when it is active."""

    model_config = ConfigDict(extra="allow")

    active: bool


_CLIENT_AUTH = {
    "client_id": {"type": "string", "description": "client_secret_post or a public client"},
    "client_secret": {"type": "string", "description": "client_secret_post"},
}


def _form(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    # Open to other fields: RFC 6749 3.1 has servers ignore parameters they do not know.
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {FORM_TYPE: {"schema": schema}}}}


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
        **_form(
            ["grant_type"],
            {
                "grant_type": {"type": "string", "enum": sorted(SUPPORTED_GRANTS)},
                "code": {"type": "string"},
                "redirect_uri": {"type": "string"},
                "code_verifier": {"type": "string"},
                "refresh_token": {"type": "string"},
                "scope": {"type": "string"},
                **_CLIENT_AUTH,
            },
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
