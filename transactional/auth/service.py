"""What auth's endpoints do. Routes read the request and shape the answer; this runs it.

The OAuth endpoints (token, revoke, introspect) answer RFC 6749 errors (`OAuthError`),
the others problem+json (`DomainError`). An OAuth request runs in one transaction that
this module controls (`_oauth_transaction`): an OAuthError rolls it back unless it asks to
commit, as a replayed code does, which revokes its family *and* fails.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from paywall.logs import get_logger
from transactional.auth import keys, throttle, tokens
from transactional.auth.authorize import REQUEST_PARAMS, login_page, redirect_url, validate
from transactional.auth.clients import authenticate_client
from transactional.auth.config import OIDC_SCOPES, SUPPORTED_GRANTS
from transactional.auth.errors import OAuthError, invalid_request
from transactional.auth.grants import GRANTS
from transactional.auth.models import NewUser, UserOut
from transactional.auth.users import UserExists, authenticate_user, get_user
from transactional.auth.users import create_user as insert_user
from transactional.common import errors
from transactional.common.errors import DomainError
from transactional.common.security import InvalidToken

T = TypeVar("T")
log = get_logger(__name__)


def discovery(issuer: str) -> dict[str, Any]:
    """OpenID Connect discovery metadata."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": sorted(SUPPORTED_GRANTS),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [keys.ALGORITHM],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(OIDC_SCOPES),
        "claims_supported": ["sub", "email", "customer_id", "tenant_id", "auth_time", "nonce"],
        "authorization_response_iss_parameter_supported": True,
    }


def published_keys(db: Engine) -> list[dict[str, Any]]:
    with db.begin() as conn:
        keys.active_key(conn)  # a fresh database gets its first key before anyone asks
        return keys.published_keys(conn)


def token(
    db: Engine, issuer: str, form: Mapping[str, str], authorization: str | None, ip: str
) -> dict[str, Any]:
    """The token endpoint (RFC 6749 3.2): authenticate the client, run its grant."""
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise invalid_request("grant_type is required")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise OAuthError("unsupported_grant_type", f"{grant_type} is not supported")

    def work(conn: Connection) -> dict[str, Any]:
        client = authenticate_client(conn, authorization, form, ip)
        return grant(conn, issuer, client, form)

    return _oauth_transaction(db, work)


def revoke(
    db: Engine, issuer: str, form: Mapping[str, str], authorization: str | None, ip: str
) -> None:
    """RFC 7009, for the client's own tokens."""

    def work(conn: Connection) -> None:
        client = authenticate_client(conn, authorization, form, ip)
        presented = form.get("token")
        if presented is None:
            raise invalid_request("token is required")
        # token_type_hint is optional to honour; both kinds are looked up anyway.
        tokens.revoke(conn, issuer, client, presented)

    _oauth_transaction(db, work)


def introspect(
    db: Engine, issuer: str, form: Mapping[str, str], authorization: str | None, ip: str
) -> dict[str, Any]:
    """RFC 7662, authorized by a confidential client or by the token asked about.

    RFC 7662 2.1 lets an access token authorize the call. Here a bearer token may ask only
    about itself, which is what a resource server needs when Redis cannot say whether a
    token it was shown is revoked: it forwards that token and needs no credentials of its
    own, and nobody can scan for other tokens this way.
    """
    presented = form.get("token")
    scheme, _, bearer = (authorization or "").partition(" ")
    self_asked = scheme.lower() == "bearer"
    if self_asked and (
        presented is None or not hmac.compare_digest(bearer.strip().encode(), presented.encode())
    ):
        raise OAuthError(
            "invalid_token",
            "a bearer token may introspect only itself",
            status=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    def work(conn: Connection) -> dict[str, Any]:
        if not self_asked:
            client = authenticate_client(conn, authorization, form, ip)
            if client.public:  # only resource servers (confidential) may look into tokens
                raise OAuthError("unauthorized_client", "public clients cannot introspect")
        if presented is None:
            raise invalid_request("token is required")
        try:
            claims = tokens.access_claims(conn, issuer, presented)
        except InvalidToken:
            return {"active": False}
        return {"active": True, "token_type": "Bearer", **claims}

    return _oauth_transaction(db, work)


def userinfo(conn: Connection, issuer: str, authorization: str | None) -> dict[str, Any]:
    """OpenID Connect UserInfo for the user a bearer token with scope openid names."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _bearer_refused(errors.INVALID_TOKEN, "invalid_token", "missing bearer token")
    try:
        claims = tokens.access_claims(conn, issuer, presented.strip())
    except InvalidToken as exc:
        raise _bearer_refused(errors.INVALID_TOKEN, "invalid_token", str(exc)) from None
    scopes = str(claims.get("scope", "")).split()
    if "openid" not in scopes:
        raise _bearer_refused(
            errors.INSUFFICIENT_SCOPE, "insufficient_scope", "the token lacks scope openid"
        )
    user = get_user(conn, str(claims["sub"]))
    if user is None:  # a client's own token (sub = client id) or a deleted user
        raise _bearer_refused(
            errors.INVALID_TOKEN, "invalid_token", "the token's subject is not a user"
        )
    body: dict[str, Any] = {"sub": str(user.id)}
    if "email" in scopes:
        body["email"] = user.email
    for name in ("customer_id", "tenant_id"):
        if (value := getattr(user, name)) is not None:
            body[name] = value
    return body


def authorization_page(conn: Connection, params: Mapping[str, str]) -> str:
    """The login form for a valid authorization request (else AuthorizeRedirect or 400)."""
    auth_request = validate(conn, params)
    kept = {k: v for k, v in params.items() if k in REQUEST_PARAMS}
    return login_page(kept, auth_request.client)


class LoginRefused(Exception):
    """The login form again, with why: wrong credentials (401) or too many attempts (429)."""

    def __init__(self, page: str, status: int, retry_after: int | None = None) -> None:
        super().__init__(status)
        self.page = page
        self.status = status
        self.retry_after = retry_after


def login(db: Engine, issuer: str, form: Mapping[str, str], ip: str) -> str:
    """Check the login form's credentials and issue a code; the redirect back, with it.

    AuthorizeRedirect when the request itself is refused, LoginRefused when the user is.
    """
    email, password = form.get("email", ""), form.get("password", "")
    params = {k: v for k, v in form.items() if k in REQUEST_PARAMS}
    with db.begin() as conn:
        auth_request = validate(conn, params)
        client = auth_request.client
        try:
            attempt = throttle.login_attempt(client.tenant_id, email, ip)
        except throttle.TooManyAttempts as exc:
            log.info("login.locked", client_id=client.client_id)
            page = login_page(params, client, "Too many failed attempts. Try again later.")
            raise LoginRefused(page, 429, exc.retry_after) from None
        # Only the client's tenant's users: another tenant's login page never finds them.
        user = authenticate_user(conn, email, password, client.tenant_id)
        if user is None:
            log.info("login.failed", client_id=client.client_id)
            raise LoginRefused(login_page(params, client, "Wrong email or password."), 401)
        attempt.succeeded()
        code = tokens.create_authorization_code(
            conn,
            client,
            user,
            auth_request.redirect_uri,
            auth_request.scopes,
            auth_request.code_challenge,
            auth_request.nonce,
        )
    # iss: RFC 9207, so a client talking to several issuers can tell whose code it is.
    return redirect_url(
        auth_request.redirect_uri, {"code": code, "state": auth_request.state, "iss": issuer}
    )


def create_user(conn: Connection, body: NewUser) -> UserOut:
    """The login for a customer that registration made (it vouches for the tenant)."""
    try:
        user = insert_user(
            conn,
            body.email,
            body.password,
            customer_id=body.customer_id,
            tenant_id=body.tenant_id,
        )
    except UserExists as exc:
        existing = exc.existing
        # A retried registration for the same customer may treat this as done; anyone
        # else learns only that the email is taken.
        same = existing.customer_id is not None and existing.customer_id == body.customer_id
        raise DomainError(
            errors.USER_EXISTS,
            "a user with this email already exists in this tenant",
            user_id=str(existing.id) if same else None,
        ) from None
    return UserOut.model_validate(user, from_attributes=True)


def _bearer_refused(problem: errors.ProblemType, error: str, description: str) -> DomainError:
    return DomainError(
        problem, description, headers={"WWW-Authenticate": f'Bearer error="{error}"'}
    )


def _oauth_transaction(db: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction; an OAuthError rolls back unless it asks to commit."""
    with db.connect() as conn:
        tx = conn.begin()
        try:
            result = work(conn)
        except OAuthError as exc:
            if exc.commit:
                tx.commit()
            else:
                tx.rollback()
            raise
        tx.commit()
        return result
