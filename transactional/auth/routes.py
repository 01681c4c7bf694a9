"""Every auth endpoint: discovery, JWKS, token, revocation, introspection, userinfo, the
login form, the internal users API and the admin API (`admin_routes`). Mounting `router`
mounts the whole auth service.

The form-posted endpoints read their body before they touch the database (a slow client
holds no connection), so they take the engine (`Db`) and the service opens the
transaction. They answer RFC 6749 JSON errors, not problem+json.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from transactional.auth import admin_routes, openapi, service, throttle
from transactional.auth.authorize import LOGIN_HEADERS, AuthorizeRedirect, refused
from transactional.auth.errors import NO_STORE, OAuthError, invalid_request
from transactional.auth.models import NewUser, UserOut
from transactional.common import errors
from transactional.common.api_document import problems_answered
from transactional.common.deps import CurrentSettings, Db, ReadConn, Transaction
from transactional.common.forms import FormError, parse_params, read_form
from transactional.common.security import Principal, require

T = TypeVar("T")
router = APIRouter()
oauth = APIRouter(tags=["oauth"])
users = APIRouter(tags=["users"])

# Internal only: the body names any tenant's customer; registration vouches for it.
UserWriter = Annotated[Principal, Depends(require("users:write", "internal"))]

# The JWKS and introspection are what verifiers call, and those may be waiting in this
# very process's threadpool (a service mounted next to auth fetching keys on its first
# request, or asking about a token while Redis is down). Their own small pool means they
# can always answer, however busy the shared threadpool is.
_verifier_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="auth-verifiers")


async def _verifiers(work: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_verifier_pool, work, *args)


@oauth.get("/.well-known/openid-configuration", summary="OpenID Connect discovery")
async def discovery(settings: CurrentSettings) -> dict[str, Any]:
    return service.discovery(settings.issuer)


@oauth.get("/jwks.json", summary="The public keys that verify access and ID tokens")
async def jwks(db: Db) -> JSONResponse:
    published = await _verifiers(service.published_keys, db)
    # Short: verifiers refetch on an unknown kid anyway; a long shared cache would hide it.
    return JSONResponse({"keys": published}, headers={"Cache-Control": "public, max-age=60"})


async def _oauth_form(request: Request) -> dict[str, str]:
    try:
        return await read_form(request)
    except FormError as exc:
        raise invalid_request(str(exc)) from None


@oauth.post("/oauth/token", summary="Token endpoint (RFC 6749)", **openapi.TOKEN)
async def token(request: Request, db: Db, settings: CurrentSettings) -> Response:
    try:
        form = await _oauth_form(request)
        body = await run_in_threadpool(service.token, db, settings.issuer, form, *_caller(request))
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


@oauth.post(
    "/oauth/revoke",
    summary="Token revocation (RFC 7009)",
    response_class=Response,
    **openapi.REVOKE,
)
async def revoke(request: Request, db: Db, settings: CurrentSettings) -> Response:
    try:
        form = await _oauth_form(request)
        await run_in_threadpool(service.revoke, db, settings.issuer, form, *_caller(request))
    except OAuthError as exc:
        return exc.response()
    return Response(status_code=200, headers=NO_STORE)


@oauth.post(
    "/oauth/introspect",
    summary="Token introspection (RFC 7662) for resource servers needing revocation now",
    **openapi.INTROSPECT,
)
async def introspect(request: Request, db: Db, settings: CurrentSettings) -> Response:
    try:
        form = await _oauth_form(request)
        body = await _verifiers(service.introspect, db, settings.issuer, form, *_caller(request))
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


def _caller(request: Request) -> tuple[str | None, str]:
    """What client authentication reads: the Authorization header and the peer address."""
    return request.headers.get("authorization"), throttle.peer_ip(request)


_USERINFO = problems_answered(errors.INVALID_TOKEN, errors.INSUFFICIENT_SCOPE)


@oauth.get("/userinfo", summary="OpenID Connect UserInfo", openapi_extra=_USERINFO)
def userinfo(request: Request, conn: ReadConn, settings: CurrentSettings) -> JSONResponse:
    claims = service.userinfo(conn, settings.issuer, request.headers.get("authorization"))
    return JSONResponse(claims, headers=NO_STORE)


@oauth.post(
    "/userinfo", summary="OpenID Connect UserInfo (POST form of the same)", openapi_extra=_USERINFO
)
def userinfo_post(request: Request, conn: ReadConn, settings: CurrentSettings) -> JSONResponse:
    return userinfo(request, conn, settings)


@oauth.get(
    "/oauth/authorize",
    response_class=HTMLResponse,
    summary="Authorization endpoint: validates the request and shows the login form",
    **openapi.AUTHORIZE_PAGE,
)
def authorize_page(request: Request, conn: ReadConn) -> Response:
    try:
        params = parse_params(list(request.query_params.multi_items()))
    except FormError as exc:
        raise refused(str(exc)) from None
    try:
        page = service.authorization_page(conn, params)
    except AuthorizeRedirect as exc:
        return RedirectResponse(exc.location, status_code=302)
    return HTMLResponse(page, headers=LOGIN_HEADERS)


@oauth.post(
    "/oauth/authorize",
    response_class=HTMLResponse,
    summary="Login form submission: on success, 302 to redirect_uri with code and state",
    **openapi.AUTHORIZE_LOGIN,
)
async def authorize_login(request: Request, db: Db, settings: CurrentSettings) -> Response:
    try:
        form = await read_form(request)
    except FormError as exc:
        raise refused(str(exc)) from None
    try:
        location = await run_in_threadpool(
            service.login, db, settings.issuer, form, throttle.peer_ip(request)
        )
    except AuthorizeRedirect as exc:
        return RedirectResponse(exc.location, status_code=302)
    except service.LoginRefused as exc:
        headers = dict(LOGIN_HEADERS)
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        return HTMLResponse(exc.page, status_code=exc.status, headers=headers)
    return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})


@users.post(
    "/v1/users",
    status_code=201,
    summary="Create a user (internal: needs scopes users:write and internal)",
    responses={409: {"description": "A user with this email exists in this tenant"}},
)
def create_user_endpoint(body: NewUser, principal: UserWriter, conn: Transaction) -> UserOut:
    # The caller before the transaction: a refused caller never holds a connection.
    return service.create_user(conn, body)


router.include_router(oauth)
router.include_router(users)
router.include_router(admin_routes.router)
