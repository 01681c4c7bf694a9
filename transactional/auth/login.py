"""GET/POST /oauth/authorize: the login form a browser (or a test) fills in."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from paywall.logs import get_logger
from paywall.settings import get_settings
from transactional.auth import openapi, throttle
from transactional.auth.authorize import (
    LOGIN_HEADERS,
    REQUEST_PARAMS,
    AuthorizeFatal,
    AuthorizeRedirect,
    login_page,
    redirect_url,
    validate,
)
from transactional.auth.db import engine
from transactional.auth.forms import FormError, parse_params, read_form
from transactional.auth.tokens import create_authorization_code
from transactional.auth.users import authenticate_user
from transactional.common.problems import Problem

log = get_logger(__name__)
router = APIRouter(tags=["oauth"])


def _bad_request(detail: str) -> Problem:
    return Problem(
        400,
        "Invalid authorization request",
        detail,
        type_="https://paywall.dev/problems/invalid-authorization-request",
    )


@router.get(
    "/oauth/authorize",
    response_class=HTMLResponse,
    summary="Authorization endpoint: validates the request and shows the login form",
    **openapi.AUTHORIZE_PAGE,
)
def authorize_page(request: Request) -> Response:
    try:
        params = parse_params(list(request.query_params.multi_items()))
    except FormError as exc:
        raise _bad_request(str(exc)) from None
    try:
        with engine().connect() as conn:
            auth_request = validate(conn, params)
    except AuthorizeFatal as exc:
        raise _bad_request(str(exc)) from None
    except AuthorizeRedirect as exc:
        return RedirectResponse(exc.location, status_code=302)
    kept = {k: v for k, v in params.items() if k in REQUEST_PARAMS}
    return HTMLResponse(login_page(kept, auth_request.client), headers=LOGIN_HEADERS)


@router.post(
    "/oauth/authorize",
    response_class=HTMLResponse,
    summary="Login form submission: on success, 302 to redirect_uri with code and state",
    **openapi.AUTHORIZE_LOGIN,
)
async def authorize_login(request: Request) -> Response:
    try:
        form = await read_form(request)
    except FormError as exc:
        raise _bad_request(str(exc)) from None
    return await run_in_threadpool(_login, form, throttle.peer_ip(request))


def _login(form: dict[str, str], ip: str) -> Response:
    email, password = form.get("email", ""), form.get("password", "")
    params = {k: v for k, v in form.items() if k in REQUEST_PARAMS}
    with engine().begin() as conn:
        try:
            auth_request = validate(conn, params)
        except AuthorizeFatal as exc:
            raise _bad_request(str(exc)) from None
        except AuthorizeRedirect as exc:
            return RedirectResponse(exc.location, status_code=302)
        client = auth_request.client
        try:
            attempt = throttle.login_attempt(client.tenant_id, email, ip)
        except throttle.TooManyAttempts as exc:
            log.info("login.locked", client_id=client.client_id)
            page = login_page(params, client, "Too many failed attempts. Try again later.")
            headers = {**LOGIN_HEADERS, "Retry-After": str(exc.retry_after)}
            return HTMLResponse(page, status_code=429, headers=headers)
        # Only the client's tenant's users: another tenant's login page never finds them.
        user = authenticate_user(conn, email, password, client.tenant_id)
        if user is None:
            log.info("login.failed", client_id=client.client_id)
            page = login_page(params, client, "Wrong email or password.")
            return HTMLResponse(page, status_code=401, headers=LOGIN_HEADERS)
        attempt.succeeded()
        code = create_authorization_code(
            conn,
            client,
            user,
            auth_request.redirect_uri,
            auth_request.scopes,
            auth_request.code_challenge,
            auth_request.nonce,
        )
    location = redirect_url(
        auth_request.redirect_uri,
        # iss: RFC 9207, so a client talking to several issuers can tell whose code it is.
        {"code": code, "state": auth_request.state, "iss": get_settings().issuer},
    )
    return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})
