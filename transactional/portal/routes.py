"""The customer portal: sign in through auth (authorization code + PKCE), then see and change
one's own plan, card and invoices. Served under /portal, outside the API document.

Every change is a POST carrying the session's CSRF token, answered 303 back to the page
with a note (post/redirect/get: a reload never repeats it). The plan change also carries
an Idempotency-Key made when the page was drawn, so a form sent twice changes (and
charges) once.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from typing import Annotated
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from paywall.logs import get_logger
from paywall.portal_links import CALLBACK_PATH, LINK, Sealer, portal_client_id
from paywall.settings import Settings
from transactional.common.deps import CurrentSettings
from transactional.common.forms import FormError, read_form
from transactional.common.security import InvalidToken, IssuerUnavailable, verify_token
from transactional.portal import pages, sessions
from transactional.portal.api import ApiError, CustomerApi
from transactional.portal.sessions import Session

log = get_logger(__name__)
router = APIRouter(prefix="/portal", include_in_schema=False)
HOME = "/portal/"
# What the portal asks auth for: the customer's own data and self-service, nothing more.
SCOPES = (
    "openid customers:read subscriptions:read subscriptions:write invoices:read "
    "payments:read payment_methods:write"
)
_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")  # auth's tenant ids
_ACTIONS = {
    "cancel": "will end at the end of this period",
    "pause": "is paused",
    "resume": "is running again",
}


def sealer(settings: CurrentSettings) -> Sealer:
    return Sealer.from_settings(settings)


Seal = Annotated[Sealer, Depends(sealer)]


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=pages.HEADERS)


def _refusal(title: str, text: str, tenant: str | None = None, status: int = 400) -> HTMLResponse:
    again = f"/portal/login?{urlencode({'tenant': tenant})}" if tenant else "/portal/login"
    response = _page(pages.message(title, text, ("Sign in", again)), status)
    sessions.clear_login(response)  # a refused sign-in starts over
    return response


def _safe_next(value: str | None) -> str:
    """Only a page of the portal: never an open redirect."""
    if value and value.startswith(HOME) and "//" not in value and "\\" not in value:
        return value
    return HOME


def _to_login(request: Request, tenant: str | None = None) -> RedirectResponse:
    tenant = tenant or request.cookies.get(sessions.TENANT_COOKIE)
    query = {"tenant": tenant} if tenant and _TENANT.match(tenant) else {}
    return RedirectResponse(f"/portal/login?{urlencode(query)}", status_code=303)


@router.get("/login")
def login(
    settings: CurrentSettings,
    seal: Seal,
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    next_: Annotated[str | None, Query(alias="next", max_length=200)] = None,
) -> Response:
    """Off to auth's login page for the tenant's customers (no tenant: the platform's own)."""
    if tenant is not None and not _TENANT.match(tenant):
        return _refusal("Unknown sign-in", "This sign-in link names no valid account.")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(24)
    client_id = portal_client_id(tenant)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": f"{settings.portal_base_url}{CALLBACK_PATH}",
        "scope": SCOPES,
        "state": state,
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    response = RedirectResponse(f"{settings.issuer}/oauth/authorize?{urlencode(query)}", 302)
    pending = {
        "state": state,
        "verifier": verifier,
        "client_id": client_id,
        "tenant": tenant,
        "next": _safe_next(next_),
    }
    sessions.begin_login(response, settings, seal, pending)
    return response


@router.get("/callback")
async def callback(
    request: Request,
    settings: CurrentSettings,
    seal: Seal,
    code: Annotated[str | None, Query(max_length=512)] = None,
    state: Annotated[str | None, Query(max_length=1024)] = None,
    error: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    # The login cookie is spent whatever happens next: an answer is used once.
    pending = sessions.pending_login(request, seal)
    if pending is None or not state or not secrets.compare_digest(state, pending["state"]):
        return _refusal(
            "Sign-in expired",
            "That sign-in took too long or was not started here. Please sign in again.",
            request.cookies.get(sessions.TENANT_COOKIE),
        )
    tenant = pending.get("tenant")
    if error or not code:
        return _refusal("Not signed in", "The sign-in was not completed.", tenant)
    try:
        token, seconds = await run_in_threadpool(_exchange, settings, pending, code)
        principal = await run_in_threadpool(verify_token, token)
    except (ApiError, InvalidToken, IssuerUnavailable) as exc:
        log.warning("portal.login_failed", reason=type(exc).__name__)
        return _refusal("Not signed in", "Signing in failed; please try again.", tenant)
    if not principal.customer_id:
        return _refusal("No subscription here", "This login has no customer account.", tenant)
    response = RedirectResponse(pending["next"], status_code=303)
    sessions.start(
        response,
        settings,
        seal,
        token=token,
        customer_id=principal.customer_id,
        tenant_id=principal.tenant_id,
        seconds=seconds,
    )
    log.info("portal.signed_in", customer_id=principal.customer_id)
    return response


def _exchange(settings: Settings, pending: dict[str, str], code: str) -> tuple[str, int]:
    """The authorization code for the customer's access token, at auth's token endpoint."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": f"{settings.portal_base_url}{CALLBACK_PATH}",
        "client_id": pending["client_id"],
        "code_verifier": pending["verifier"],
    }
    try:
        resp = httpx.post(
            f"{settings.service_url('auth')}/oauth/token",
            data=form,
            timeout=settings.service_timeout_seconds,
        )
    except httpx.TransportError:
        raise ApiError(503, "auth unreachable") from None
    if resp.status_code != 200:
        raise ApiError(resp.status_code, "code refused")
    body = resp.json()
    return str(body["access_token"]), int(body.get("expires_in", 300))


@router.get("/link")
def link(
    request: Request, seal: Seal, t: Annotated[str | None, Query(max_length=4096)] = None
) -> Response:
    """An email's link: to the customer's tenant's sign-in, then to the page it names."""
    value = seal.open(LINK, t)
    if value is None:
        return _refusal(
            "Link expired",
            "This link has expired or is not valid. Sign in to manage your subscription.",
            request.cookies.get(sessions.TENANT_COOKIE),
        )
    session = sessions.read(request, seal)
    if session is not None and session.customer_id == value["customer_id"]:
        return RedirectResponse(_safe_next(value.get("next")), status_code=303)
    response = _to_login(request, value.get("tenant_id"))
    response.headers["location"] += "&" + urlencode({"next": _safe_next(value.get("next"))})
    sessions.end(response)  # someone else's session in this browser is not this customer's
    return response


@router.get("/")
async def home(request: Request, settings: CurrentSettings, seal: Seal) -> Response:
    session = sessions.read(request, seal)
    if session is None:
        return _to_login(request)
    api = CustomerApi(settings, session.token, session.customer_id)
    try:
        view = await run_in_threadpool(api.overview)
    except ApiError as exc:
        if exc.status == 401:  # the token was revoked or expired early
            return _to_login(request, session.tenant_id)
        return _page(pages.message("Not available", exc.detail), 503 if exc.status >= 500 else 400)
    finally:
        api.close()
    notes = sessions.read_flash(request, seal)
    response = _page(pages.overview(view, session.csrf, str(uuid.uuid4()), notes))
    if notes:
        sessions.clear_flash(response)
    return response


async def _posted(request: Request, seal: Seal) -> tuple[Session, dict[str, str]] | Response:
    """The session and form of a change, or where to send a request that may not make one."""
    session = sessions.read(request, seal)
    if session is None:
        return _to_login(request)
    try:
        form = await read_form(request)
    except FormError as exc:
        return _page(pages.message("Not understood", str(exc)), 400)
    if not secrets.compare_digest(form.get("csrf", ""), session.csrf):
        return _page(pages.message("Not accepted", "This form is stale; reload the page."), 403)
    return session, form


def _back(settings: Settings, seal: Sealer, kind: str, text: str) -> RedirectResponse:
    response = RedirectResponse(HOME, status_code=303)
    sessions.flash(response, settings, seal, kind, text)
    return response


def _subscription_id(form: dict[str, str]) -> uuid.UUID | None:
    try:
        return uuid.UUID(form.get("subscription_id", ""))
    except ValueError:
        return None


@router.post("/plan")
async def change_plan(request: Request, settings: CurrentSettings, seal: Seal) -> Response:
    got = await _posted(request, seal)
    if isinstance(got, Response):
        return got
    session, form = got
    sub_id, plan_id, key = _subscription_id(form), form.get("plan_id"), form.get("key", "")
    if sub_id is None or not plan_id or not key:
        return _back(settings, seal, "error", "Choose a plan.")
    api = CustomerApi(settings, session.token, session.customer_id)
    try:
        changed = await run_in_threadpool(api.change_plan, sub_id, plan_id, key)
    except ApiError as exc:
        return _back(settings, seal, "error", exc.detail)
    finally:
        api.close()
    when = "now" if changed["effective"] == "now" else "at the end of this period"
    return _back(settings, seal, "ok", f"Your plan changes to {plan_id} {when}.")


@router.post("/subscription/{action}")
async def act(action: str, request: Request, settings: CurrentSettings, seal: Seal) -> Response:
    if action not in _ACTIONS:
        return _page(pages.message("Not found", "No such action."), 404)
    got = await _posted(request, seal)
    if isinstance(got, Response):
        return got
    session, form = got
    sub_id = _subscription_id(form)
    if sub_id is None:
        return _back(settings, seal, "error", "No subscription named.")
    api = CustomerApi(settings, session.token, session.customer_id)
    try:
        await run_in_threadpool(api.act, sub_id, action)
    except ApiError as exc:
        return _back(settings, seal, "error", exc.detail)
    finally:
        api.close()
    return _back(settings, seal, "ok", f"Your subscription {_ACTIONS[action]}.")


@router.post("/card")
async def update_card(request: Request, settings: CurrentSettings, seal: Seal) -> Response:
    got = await _posted(request, seal)
    if isinstance(got, Response):
        return got
    session, form = got
    pm_id = form.get("payment_method_id", "").strip()
    if not pm_id or len(pm_id) > 255:
        return _back(settings, seal, "error", "Enter the new card's payment method.")
    api = CustomerApi(settings, session.token, session.customer_id)
    try:
        await run_in_threadpool(api.attach_card, pm_id)
    except ApiError as exc:
        return _back(settings, seal, "error", exc.detail)
    finally:
        api.close()
    return _back(settings, seal, "ok", "Your card is updated; it pays from now on.")


@router.get("/invoices/{invoice_id}.pdf")
async def invoice_pdf(
    invoice_id: uuid.UUID, request: Request, settings: CurrentSettings, seal: Seal
) -> Response:
    session = sessions.read(request, seal)
    if session is None:
        return _to_login(request)
    api = CustomerApi(settings, session.token, session.customer_id)
    try:
        pdf = await run_in_threadpool(api.invoice_pdf, invoice_id)
    except ApiError as exc:
        return _page(pages.message("Not available", exc.detail), 404 if exc.status == 404 else 503)
    finally:
        api.close()
    disposition = f'attachment; filename="invoice-{invoice_id}.pdf"'
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


@router.post("/logout")
async def logout(request: Request, settings: CurrentSettings, seal: Seal) -> Response:
    got = await _posted(request, seal)
    if isinstance(got, Response):
        return got
    session, _ = got
    client_id = portal_client_id(session.tenant_id)
    await run_in_threadpool(_revoke, settings, session.token, client_id)
    again = "/portal/login?" + urlencode({"tenant": session.tenant_id} if session.tenant_id else {})
    response = _page(pages.message("Signed out", "You are signed out.", ("Sign in again", again)))
    sessions.end(response)
    return response


def _revoke(settings: Settings, token: str, client_id: str) -> None:
    """Best effort: the token dies with the cookie anyway, within its lifetime."""
    try:
        httpx.post(
            f"{settings.service_url('auth')}/oauth/revoke",
            data={"token": token, "client_id": client_id},
            timeout=settings.service_timeout_seconds,
        )
    except httpx.TransportError:
        log.warning("portal.revoke_unreachable")
