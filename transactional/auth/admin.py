"""The admin API's rules: tenants, and their clients (create, list, rotate, disable).

`admin` is the platform operator's scope, held only by clients of no tenant: an admin
manages every tenant. A tenant's client is confidential (client_credentials) and gets
partner scopes only. A secret is shown once, when it is made; only its hash is kept, so a
replayed create answers the client without it. Disabling a client refuses it every grant
and revokes the tokens it still holds, at every service at once.

The CLI calls these functions on the database directly; the admin routes call them with
the caller's Idempotency-Key.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import Connection

from paywall.settings import get_settings
from transactional.auth import registry, tokens
from transactional.auth.admin_models import (
    ClientCreate,
    ClientOut,
    ClientPage,
    ClientWithSecret,
    TenantCreate,
    TenantPage,
)
from transactional.auth.clients import USER_SCOPES, create_client, ensure_portal_client
from transactional.auth.config import ADMIN_SCOPE
from transactional.auth.passwords import hash_secret
from transactional.common import errors, idempotency
from transactional.common.errors import DomainError, not_found
from transactional.common.idempotency import Answer
from transactional.common.security import PARTNER_SCOPES

CLIENT_GRANTS = ("client_credentials",)
LOGIN_GRANTS = ("authorization_code", "refresh_token")


def _safe_in_production(uri: str) -> bool:
    """https, or http to this device's loopback (a native app's redirect, RFC 8252)."""
    parts = urlsplit(uri)
    return parts.scheme == "https" or parts.hostname in ("127.0.0.1", "::1", "localhost")


def create_tenant(conn: Connection, body: TenantCreate, key: str | None) -> Answer:
    """A new tenant; `key` (already scoped to its owner) makes a retry answer the first."""
    asked = idempotency.fingerprint(body.model_dump(mode="json"))
    if key is not None:
        idempotency.hold(conn, key)
        earlier = registry.tenant_by_key(conn, key)
        if earlier is not None:
            idempotency.check_same(earlier.fingerprint or asked, asked)
            return Answer(201, earlier.value.model_dump(mode="json"), replayed=True)
    tenant = registry.insert_tenant(conn, body.id, body.name, key, asked)
    if tenant is None:
        raise DomainError(errors.ALREADY_EXISTS, f"tenant {body.id} exists", tenant_id=body.id)
    # Its customers can sign in to the portal from the start.
    ensure_portal_client(conn, get_settings(), body.id)
    return Answer(201, tenant.model_dump(mode="json"))


def list_tenants(conn: Connection, limit: int, cursor: str | None) -> TenantPage:
    found = registry.tenants(conn, _after(cursor), limit + 1)
    more = len(found) > limit
    last = _cursor(found[limit - 1].id) if more else None
    return TenantPage(data=found[:limit], next_cursor=last)


def allowed_scopes(tenant_id: str | None, scopes: Sequence[str]) -> list[str]:
    """The scopes a client of `tenant_id` may hold, or 422 naming those it may not."""
    wanted = sorted(set(scopes))
    allowed = set(PARTNER_SCOPES) if tenant_id else {ADMIN_SCOPE}
    if refused := [s for s in wanted if s not in allowed]:
        kind = "a tenant's client" if tenant_id else "a client of no tenant (an operator's)"
        raise DomainError(
            errors.SCOPE_NOT_ALLOWED,
            f"{kind} may not hold: {' '.join(refused)}; allowed: {' '.join(sorted(allowed))}",
        )
    return wanted


def create_client_for(conn: Connection, body: ClientCreate, key: str | None) -> Answer:
    """A confidential client and its secret (shown this once), or a tenant's login client
    (public: no secret, PKCE enforced at /oauth/authorize)."""
    asked = idempotency.fingerprint(body.model_dump(mode="json"))
    if key is not None:
        idempotency.hold(conn, key)
        earlier = registry.client_by_key(conn, key)
        if earlier is not None:
            idempotency.check_same(earlier.fingerprint or asked, asked)
            replay = ClientWithSecret(**earlier.value.model_dump(), client_secret=None)
            return Answer(201, replay.model_dump(mode="json"), replayed=True)
    login = bool(body.redirect_uris)
    scopes = list(USER_SCOPES) if login else allowed_scopes(body.tenant_id, body.scopes)
    if body.tenant_id is not None and not registry.tenant_exists(conn, body.tenant_id):
        raise DomainError(errors.UNKNOWN_TENANT, f"no tenant {body.tenant_id}")
    if login and get_settings().is_production:
        for uri in body.redirect_uris:
            if not _safe_in_production(uri):
                raise DomainError(
                    errors.VALIDATION, f"redirect_uris: {uri!r} must be https (or loopback http)"
                )
    client_id = f"{body.tenant_id or 'operator'}-{'web-' if login else ''}{secrets.token_hex(5)}"
    secret = None if login else new_secret()
    create_client(
        conn,
        client_id,
        secret=secret,
        name=body.name,
        redirect_uris=body.redirect_uris,
        grant_types=LOGIN_GRANTS if login else CLIENT_GRANTS,
        scopes=scopes,
        tenant_id=body.tenant_id,
    )
    registry.keep_request(conn, client_id, key, asked)
    made = registry.client(conn, client_id)
    assert made is not None  # inserted just now, in this transaction
    answer = ClientWithSecret(**made.model_dump(), client_secret=secret)
    return Answer(201, answer.model_dump(mode="json"))


def list_clients(
    conn: Connection, tenant_id: str | None, limit: int, cursor: str | None
) -> ClientPage:
    found = registry.clients(conn, tenant_id, _after(cursor), limit + 1)
    more = len(found) > limit
    return ClientPage(
        data=found[:limit], next_cursor=_cursor(found[limit - 1].client_id) if more else None
    )


def get_client(conn: Connection, client_id: str) -> ClientOut:
    found = registry.client(conn, client_id)
    if found is None:
        raise not_found("client", client_id)
    return found


def rotate_secret(conn: Connection, client_id: str) -> ClientWithSecret:
    """A new secret; the old one stops working at once (tokens it got live on)."""
    found = registry.client(conn, client_id, lock=True)
    if found is None or "client_credentials" not in found.grant_types:
        raise not_found("confidential client", client_id)
    if found.disabled_at is not None:
        raise DomainError(errors.CLIENT_DISABLED, f"client {client_id} is disabled")
    secret = new_secret()
    registry.set_secret_hash(conn, client_id, hash_secret(secret))
    return ClientWithSecret(**found.model_dump(), client_secret=secret)


def disable_client(conn: Connection, client_id: str) -> ClientOut:
    """No more tokens for the client, and those it holds revoked; doing it again is a no-op."""
    found = registry.client(conn, client_id, lock=True)
    if found is None:
        raise not_found("client", client_id)
    registry.disable(conn, client_id)
    # After the row lock: a token issued meanwhile was recorded before we got here.
    for jti, exp in registry.live_client_tokens(conn, client_id):
        tokens.revoke_jti(conn, jti, exp)
    for family in registry.refresh_families(conn, client_id):
        tokens.revoke_family(conn, family)
    disabled = registry.client(conn, client_id)
    assert disabled is not None
    return disabled


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _cursor(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after = ""
    if not after:
        raise DomainError(errors.BAD_CURSOR, "cursor is not one this API gave")
    return after
