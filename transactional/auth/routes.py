"""Discovery, JWKS, token, revocation, introspection and userinfo endpoints.

`router` here includes the login form and the internal users API: mounting this one
router is mounting the whole auth service.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from paywall.settings import get_settings
from transactional.auth import keys, login, openapi, throttle, tokens, users_api
from transactional.auth.clients import Client, authenticate_client
from transactional.auth.config import OIDC_SCOPES, SUPPORTED_GRANTS
from transactional.auth.db import engine, oauth_transaction
from transactional.auth.errors import NO_STORE, OAuthError, invalid_request
from transactional.auth.forms import FormError, read_form
from transactional.auth.users import get_user
from transactional.common.problems import Problem
from transactional.common.security import InvalidToken

router = APIRouter()
oauth = APIRouter(tags=["oauth"])

# The JWKS and introspection are what verifiers call, and those may be waiting in this
# very process's threadpool (a service mounted next to auth fetching keys on its first
# request, or asking about a token while Redis is down). Their own small pool means they
# can always answer, however busy the shared threadpool is.
_verifier_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="auth-verifiers")

Grant = Callable[[Connection, str, Client, Mapping[str, str]], dict[str, Any]]
GRANTS: dict[str, Grant] = {
    "authorization_code": tokens.grant_authorization_code,
    "client_credentials": tokens.grant_client_credentials,
    "refresh_token": tokens.grant_refresh_token,
}


@oauth.get("/.well-known/openid-configuration", summary="OpenID Connect discovery")
async def discovery() -> dict[str, Any]:
    issuer = get_settings().issuer
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


def _published_keys() -> list[dict[str, Any]]:
    with engine().begin() as conn:
        keys.active_key(conn)  # a fresh database gets its first key before anyone asks
        return keys.published_keys(conn)


@oauth.get("/jwks.json", summary="The public keys that verify access and ID tokens")
async def jwks() -> JSONResponse:
    published = await asyncio.get_running_loop().run_in_executor(_verifier_pool, _published_keys)
    # Short: verifiers refetch on an unknown kid anyway; a long shared cache would hide it.
    return JSONResponse({"keys": published}, headers={"Cache-Control": "public, max-age=60"})


async def _form(request: Request) -> dict[str, str]:
    try:
        return await read_form(request)
    except FormError as exc:
        raise invalid_request(str(exc)) from None


@oauth.post("/oauth/token", summary="Token endpoint (RFC 6749)", **openapi.TOKEN)
async def token(request: Request) -> Response:
    try:
        form = await _form(request)
        body = await run_in_threadpool(
            _token, form, request.headers.get("authorization"), throttle.peer_ip(request)
        )
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


def _token(form: dict[str, str], authorization: str | None, ip: str) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise invalid_request("grant_type is required")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise OAuthError("unsupported_grant_type", f"{grant_type} is not supported")
    issuer = get_settings().issuer

    def work(conn: Connection) -> dict[str, Any]:
        client = authenticate_client(conn, authorization, form, ip)
        return grant(conn, issuer, client, form)

    return oauth_transaction(work)


@oauth.post(
    "/oauth/revoke",
    summary="Token revocation (RFC 7009)",
    response_class=Response,
    **openapi.REVOKE,
)
async def revoke(request: Request) -> Response:
    try:
        form = await _form(request)
        await run_in_threadpool(
            _revoke, form, request.headers.get("authorization"), throttle.peer_ip(request)
        )
    except OAuthError as exc:
        return exc.response()
    return Response(status_code=200, headers=NO_STORE)


def _revoke(form: dict[str, str], authorization: str | None, ip: str) -> None:
    issuer = get_settings().issuer

    def work(conn: Connection) -> None:
        client = authenticate_client(conn, authorization, form, ip)
        presented = form.get("token")
        if presented is None:
            raise invalid_request("token is required")
        # token_type_hint is optional to honour; both kinds are looked up anyway.
        tokens.revoke(conn, issuer, client, presented)

    oauth_transaction(work)


@oauth.post(
    "/oauth/introspect",
    summary="Token introspection (RFC 7662) for resource servers needing revocation now",
    **openapi.INTROSPECT,
)
async def introspect(request: Request) -> Response:
    try:
        form = await _form(request)
        body = await asyncio.get_running_loop().run_in_executor(
            _verifier_pool,
            _introspect,
            form,
            request.headers.get("authorization"),
            throttle.peer_ip(request),
        )
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


def _introspect(form: dict[str, str], authorization: str | None, ip: str) -> dict[str, Any]:
    """RFC 7662, authorized by a confidential client or by the token asked about.

    RFC 7662 2.1 lets an access token authorize the call. Here a bearer token may ask only
    about itself, which is what a resource server needs when Redis cannot say whether a
    token it was shown is revoked: it forwards that token and needs no credentials of its
    own, and nobody can scan for other tokens this way.
    """
    issuer = get_settings().issuer
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

    return oauth_transaction(work)


def _bearer_problem(error: str, description: str, status: int = 401) -> Problem:
    return Problem(
        status,
        "Unauthorized" if status == 401 else "Forbidden",
        description,
        headers={"WWW-Authenticate": f'Bearer error="{error}"'},
    )


@oauth.get("/userinfo", summary="OpenID Connect UserInfo")
def userinfo(request: Request) -> JSONResponse:
    return _userinfo(request)


@oauth.post("/userinfo", summary="OpenID Connect UserInfo (POST form of the same)")
def userinfo_post(request: Request) -> JSONResponse:
    return _userinfo(request)


def _userinfo(request: Request) -> JSONResponse:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _bearer_problem("invalid_token", "missing bearer token")
    with engine().connect() as conn:
        try:
            claims = tokens.access_claims(conn, get_settings().issuer, presented.strip())
        except InvalidToken as exc:
            raise _bearer_problem("invalid_token", str(exc)) from None
        if "openid" not in str(claims.get("scope", "")).split():
            raise _bearer_problem("insufficient_scope", "the token lacks scope openid", 403)
        user = get_user(conn, str(claims["sub"]))
    if user is None:  # a client's own token (sub = client id) or a deleted user
        raise _bearer_problem("invalid_token", "the token's subject is not a user")
    body: dict[str, Any] = {"sub": str(user.id)}
    if "email" in str(claims.get("scope", "")).split():
        body["email"] = user.email
    for name in ("customer_id", "tenant_id"):
        if (value := getattr(user, name)) is not None:
            body[name] = value
    return JSONResponse(body, headers=NO_STORE)


router.include_router(oauth)
router.include_router(login.router)
router.include_router(users_api.router)
