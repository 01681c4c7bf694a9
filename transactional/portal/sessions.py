"""The portal's browser state: a sealed session cookie, the login in progress, a flash note.

Nothing is kept on the server: a session is the customer's access token sealed in an
HttpOnly cookie (paywall.portal_links), so any replica can serve any request and a
restart logs nobody out. It ends when the token does; signing out also revokes the token
at auth.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from paywall.portal_links import LOGIN, SESSION, Sealer
from paywall.settings import Settings

SESSION_COOKIE = "portal_session"
LOGIN_COOKIE = "portal_login"
FLASH_COOKIE = "portal_flash"
TENANT_COOKIE = "portal_tenant"  # not secret: which tenant's login to offer next time
FLASH = "portal-flash"
LOGIN_SECONDS = 600
PATH = "/portal"


@dataclass(frozen=True)
class Session:
    token: str
    customer_id: str
    tenant_id: str | None
    csrf: str


def _secure(settings: Settings) -> bool:
    return settings.portal_base_url.startswith("https://")


def _set(response: Response, settings: Settings, name: str, value: str, seconds: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        path=PATH,
        httponly=True,
        secure=_secure(settings),
        samesite="lax",  # sent on the redirect back from auth's login, not on others' POSTs
    )


def read(request: Request, sealer: Sealer) -> Session | None:
    value = sealer.open(SESSION, request.cookies.get(SESSION_COOKIE))
    if value is None:
        return None
    return Session(value["token"], value["customer_id"], value.get("tenant_id"), value["csrf"])


def start(
    response: Response,
    settings: Settings,
    sealer: Sealer,
    *,
    token: str,
    customer_id: str,
    tenant_id: str | None,
    seconds: int,
) -> None:
    value = {
        "token": token,
        "customer_id": customer_id,
        "tenant_id": tenant_id,
        "csrf": secrets.token_urlsafe(24),
    }
    _set(response, settings, SESSION_COOKIE, sealer.seal(SESSION, value, seconds), seconds)
    clear_login(response)
    if tenant_id:
        _set(response, settings, TENANT_COOKIE, tenant_id, 400 * 86400)


def end(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PATH)


def begin_login(
    response: Response, settings: Settings, sealer: Sealer, state: dict[str, Any]
) -> None:
    sealed = sealer.seal(LOGIN, state, LOGIN_SECONDS)
    _set(response, settings, LOGIN_COOKIE, sealed, LOGIN_SECONDS)


def pending_login(request: Request, sealer: Sealer) -> dict[str, Any] | None:
    """The login this browser started here, if it is still good."""
    return sealer.open(LOGIN, request.cookies.get(LOGIN_COOKIE))


def clear_login(response: Response) -> None:
    response.delete_cookie(LOGIN_COOKIE, path=PATH)


def flash(response: Response, settings: Settings, sealer: Sealer, kind: str, text: str) -> None:
    _set(response, settings, FLASH_COOKIE, sealer.seal(FLASH, {kind: text}, 60), 60)


def read_flash(request: Request, sealer: Sealer) -> dict[str, str]:
    value = sealer.open(FLASH, request.cookies.get(FLASH_COOKIE))
    return {k: str(v) for k, v in (value or {}).items()}


def clear_flash(response: Response) -> None:
    response.delete_cookie(FLASH_COOKIE, path=PATH)
