"""OAuth clients: registration (for tests and ops) and authentication at the token endpoint."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus, urlsplit

from sqlalchemy import Connection

from paywall.errors import ConfigError
from paywall.logs import get_logger
from paywall.portal_links import CALLBACK_PATH, portal_client_id
from paywall.service_client import SERVICE_SCOPES
from paywall.settings import Settings
from transactional.auth import repository, throttle
from transactional.auth.config import SUPPORTED_GRANTS
from transactional.auth.errors import (
    OAuthError,
    invalid_client,
    invalid_request,
    too_many_attempts,
)
from transactional.auth.models import Client
from transactional.auth.passwords import hash_secret, verify_secret

WEB_CLIENT_ID = "web"
REGISTRATION_CLIENT_ID = "svc-registration"
# What a customer's own token may do, always for its own customer only (common/tenancy.py):
# read its data, and manage its subscription and card (self-service: the portal, a
# tenant's web app). Never charge or refund (payments:write) nor touch another customer.
USER_SCOPES = (
    "openid",
    "email",
    "customers:read",
    "subscriptions:read",
    "subscriptions:write",
    "invoices:read",
    "payments:read",
    "payment_methods:write",
)

log = get_logger(__name__)


class ClientExists(Exception):
    pass


def check_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ValueError(f"redirect URI must be absolute http(s) without a fragment: {uri!r}")


def create_client(
    conn: Connection,
    client_id: str,
    *,
    secret: str | None = None,
    name: str | None = None,
    redirect_uris: Iterable[str] = (),
    grant_types: Iterable[str] = ("authorization_code", "refresh_token"),
    scopes: Iterable[str] = USER_SCOPES,
    tenant_id: str | None = None,
    replace: bool = False,
) -> Client:
    """Register a client; `secret=None` makes it public. ClientExists unless `replace`."""
    uris, grants, allowed = tuple(redirect_uris), frozenset(grant_types), frozenset(scopes)
    if not client_id or len(client_id) > 100:
        raise ValueError("client_id must be 1-100 characters")
    if unknown := grants - SUPPORTED_GRANTS:
        raise ValueError(f"unsupported grant types: {sorted(unknown)}")
    if secret is None and "client_credentials" in grants:
        raise ValueError("a public client cannot use client_credentials")
    if "authorization_code" in grants and not uris:
        raise ValueError("authorization_code needs at least one redirect URI")
    for uri in uris:
        check_redirect_uri(uri)
    client = Client(
        client_id=client_id,
        name=name or client_id,
        secret_hash=hash_secret(secret) if secret is not None else None,
        redirect_uris=uris,
        grant_types=grants,
        scopes=allowed,
        tenant_id=tenant_id,
    )
    if not repository.save_client(conn, client, replace=replace):
        raise ClientExists(client_id)
    return client


def ensure_default_clients(conn: Connection, settings: Settings) -> None:
    """Create (or bring up to date) the SPA client `web` and the internal service clients."""
    web = repository.get_client(conn, WEB_CLIENT_ID)
    web_uris = tuple(settings.web_redirect_uris)
    web_grants = frozenset({"authorization_code", "refresh_token"})
    if web is None or (web.redirect_uris, web.grant_types, web.scopes, web.public) != (
        web_uris,
        web_grants,
        frozenset(USER_SCOPES),
        True,
    ):
        create_client(
            conn,
            WEB_CLIENT_ID,
            name="Paywall web app",
            redirect_uris=web_uris,
            grant_types=web_grants,
            scopes=USER_SCOPES,
            replace=True,
        )
    _ensure_dagster_ui_client(conn, settings)
    for tenant_id in (None, *repository.tenant_ids(conn)):
        ensure_portal_client(conn, settings, tenant_id)
    services = (
        ("registration", "Registration service"),
        ("billing", "Billing service, billing runs and operations (the Dagster code location)"),
        ("subscription", "Subscription service"),
        ("payment", "Payment service"),
    )
    for service, name in services:
        scopes = SERVICE_SCOPES[service]
        try:
            client_id, secret = settings.service_client(service)
        except ConfigError as exc:
            # A production auth pod without that client's secret: the client cannot be
            # used by anyone, so it is not registered (with a public secret) either.
            log.warning("auth.service_client_skipped", setting=exc.setting)
            continue
        existing = repository.get_client(conn, client_id)
        # Re-hashing on every start would be wasted argon2 work; only a changed secret or
        # scope list rewrites the row.
        if (
            existing is None
            or existing.scopes != frozenset(scopes)
            or not verify_secret(existing.secret_hash, secret.get_secret_value())
        ):
            create_client(
                conn,
                client_id,
                secret=secret.get_secret_value(),
                name=name,
                grant_types=("client_credentials",),
                scopes=scopes,
                replace=True,
            )


def ensure_portal_client(conn: Connection, settings: Settings, tenant_id: str | None) -> None:
    """The customer portal's login client for one tenant, brought up to date.

    One per tenant because a login finds only its client's tenant's users (an email is
    unique per tenant). Public, with PKCE: the portal keeps no client secret to leak, and the
    code is useless without the verifier sealed in the browser's login cookie."""
    client_id = portal_client_id(tenant_id)
    uris = (f"{settings.portal_base_url}{CALLBACK_PATH}",)
    grants = frozenset({"authorization_code"})
    existing = repository.get_client(conn, client_id)
    if existing is not None and (
        existing.redirect_uris,
        existing.grant_types,
        existing.scopes,
        existing.tenant_id,
        existing.public,
    ) == (uris, grants, frozenset(USER_SCOPES), tenant_id, True):
        return
    create_client(
        conn,
        client_id,
        name="Customer portal",
        redirect_uris=uris,
        grant_types=grants,
        scopes=USER_SCOPES,
        tenant_id=tenant_id,
        replace=True,
    )


DAGSTER_UI_CLIENT_ID = "dagster-ui"
DAGSTER_UI_CALLBACK = "/dagster/oauth2/callback"  # oauth2-proxy's, under the public host


def _ensure_dagster_ui_client(conn: Connection, settings: Settings) -> None:
    """The Dagster UI's login client, when DAGSTER_UI_CLIENT_SECRET is set: confidential,
    authorization code, in the operators' tenant (a tenant's users log in through that
    tenant's clients only, so nobody else gets past the UI's proxy)."""
    secret = settings.dagster_ui_client_secret
    if secret is None:
        return
    uris = (f"{settings.issuer}{DAGSTER_UI_CALLBACK}",)
    existing = repository.get_client(conn, DAGSTER_UI_CLIENT_ID)
    if (
        existing is None
        or existing.redirect_uris != uris
        or existing.tenant_id != settings.dagster_ui_tenant
        or not verify_secret(existing.secret_hash, secret.get_secret_value())
    ):
        create_client(
            conn,
            DAGSTER_UI_CLIENT_ID,
            secret=secret.get_secret_value(),
            name="Dagster UI (oauth2-proxy)",
            redirect_uris=uris,
            grant_types=("authorization_code", "refresh_token"),
            scopes=("openid", "email"),
            tenant_id=settings.dagster_ui_tenant,
            replace=True,
        )


def authenticate_client(
    conn: Connection, authorization: str | None, form: Mapping[str, str], ip: str
) -> Client:
    """The client making a token-endpoint request: client_secret_basic, _post, or none.

    Every secret checked is a guess counted per client id and per IP (`ip`, the caller's
    address) before the check runs; over a limit, 429 with Retry-After.
    """
    basic = _basic_credentials(authorization)
    client_id: str
    secret: str | None
    if basic is not None:
        if "client_secret" in form:
            raise invalid_request("use one client authentication method, not two")
        client_id, secret = basic
        if form.get("client_id", client_id) != client_id:
            raise invalid_request("client_id does not match the authenticated client")
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
    if not client_id:
        raise invalid_client("client authentication required")
    client = repository.get_client(conn, client_id)
    if client is not None and client.public:
        if secret is not None:
            raise invalid_client("public clients have no secret")
        return client
    if secret is None:
        raise invalid_client("unknown client or bad credentials")
    try:
        guess = throttle.secret_guess(client_id, ip)
    except throttle.TooManyAttempts as exc:
        raise too_many_attempts(exc.retry_after) from None
    # An unknown client costs the same time as a wrong secret.
    if not verify_secret(client.secret_hash if client else None, secret) or client is None:
        raise invalid_client("unknown client or bad credentials")
    guess.succeeded()
    return client


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise invalid_client("malformed Basic credentials") from exc
    user, sep, password = decoded.partition(":")
    if not sep:
        raise invalid_client("malformed Basic credentials")
    # RFC 6749 2.3.1: both parts are form-encoded before base64.
    return unquote_plus(user), unquote_plus(password)


def check_grant(client: Client, grant_type: str) -> None:
    if grant_type not in client.grant_types:
        raise OAuthError("unauthorized_client", f"client may not use {grant_type}")
