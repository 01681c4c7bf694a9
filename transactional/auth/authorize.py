"""The authorization endpoint: validate the request, show a login form, issue a code.

Errors before the client and redirect URI are known-good are shown to the user (never
redirected: that would make auth an open redirector); later errors go back to the
client's redirect URI as `error=...&state=...` (RFC 6749 4.1.2.1).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import Connection

from transactional.auth import repository
from transactional.auth.errors import OAuthError
from transactional.auth.models import Client
from transactional.auth.tokens import parse_scope
from transactional.common import errors
from transactional.common.errors import DomainError

# What the login form carries from the GET to the POST, untouched.
REQUEST_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
)
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url SHA-256, unpadded
MAX_STATE = 1024


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scopes: frozenset[str]
    state: str | None
    code_challenge: str | None
    nonce: str | None


def refused(detail: str) -> DomainError:
    """Shown to the user (400), never redirected: the client or redirect URI is not trusted."""
    return DomainError(errors.INVALID_AUTHORIZATION_REQUEST, detail)


class AuthorizeRedirect(Exception):
    """Sent back to the client's redirect URI."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str):
        super().__init__(f"{error}: {description}")
        self.location = redirect_url(
            redirect_uri, {"error": error, "error_description": description, "state": state}
        )


def redirect_url(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """The redirect URI with `params` added to whatever query it was registered with."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def validate(conn: Connection, params: Mapping[str, str]) -> AuthorizationRequest:
    client_id, redirect_uri = params.get("client_id"), params.get("redirect_uri")
    if not client_id:
        raise refused("client_id is required")
    client = repository.get_client(conn, client_id)
    if client is None:
        raise refused("unknown client")
    # Exact string match against the registration (RFC 9700 4.1.3): no prefix tricks.
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        raise refused("redirect_uri is not registered for this client")
    state = params.get("state")
    if state is not None and len(state) > MAX_STATE:
        raise refused("state is too long")

    def fail(error: str, description: str) -> AuthorizeRedirect:
        return AuthorizeRedirect(redirect_uri, state, error, description)

    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if params.get("prompt") == "none":  # OIDC: there is no session to log in silently with
        raise fail("login_required", "no session; prompt=none cannot be satisfied")
    if "authorization_code" not in client.grant_types:
        raise fail("unauthorized_client", "client may not use the authorization code flow")
    try:
        requested = parse_scope(params.get("scope"))
    except OAuthError:
        raise fail("invalid_scope", "malformed scope") from None
    scopes = requested if requested is not None else frozenset({"openid"})
    if not scopes <= client.scopes:
        raise fail("invalid_scope", "scope not allowed for this client")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if challenge is None:
        if client.public:
            raise fail("invalid_request", "public clients must use PKCE (S256)")
        if method is not None:
            raise fail("invalid_request", "code_challenge_method without code_challenge")
    else:
        if method != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.match(challenge):
            raise fail("invalid_request", "malformed code_challenge")
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > MAX_STATE:
        raise fail("invalid_request", "nonce is too long")
    return AuthorizationRequest(client, redirect_uri, scopes, state, challenge, nonce)


LOGIN_HEADERS = {
    "Cache-Control": "no-store",
    # The login form must not be framed (clickjacking) nor load anything foreign.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def login_page(params: Mapping[str, str], client: Client, error: str | None = None) -> str:
    hidden = "\n".join(
        f'    <input type="hidden" name="{name}" value="{html.escape(params[name])}">'
        for name in REQUEST_PARAMS
        if name in params
    )
    message = f'  <p role="alert">{html.escape(error)}</p>\n' if error else ""
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in</title></head>
<body>
  <h1>Sign in to {html.escape(client.name)}</h1>
{message}  <!-- No action: posts back to this URL, wherever a gateway mounted it. -->
  <form method="post">
{hidden}
    <label>Email <input type="email" name="email" autocomplete="username" required></label>
    <label>Password <input type="password" name="password"
      autocomplete="current-password" required></label>
    <button type="submit">Sign in</button>
  </form>
</body>
</html>
"""
