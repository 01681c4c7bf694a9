"""The token endpoint's grants (RFC 6749 4.1.3, 4.4, 6): what each checks, what it issues.

A replayed code or a rotated refresh token revokes its whole family *and* answers
invalid_grant: those errors ask their transaction to commit (`OAuthError.commit`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection

from transactional.auth import registry, repository
from transactional.auth.clients import check_grant
from transactional.auth.errors import OAuthError, invalid_client, invalid_grant, invalid_request
from transactional.auth.models import Client
from transactional.auth.tokens import (
    bearer,
    issue_access_token,
    issue_id_token,
    parse_scope,
    revoke_family,
    token_hash,
    user_tokens,
)
from transactional.auth.users import get_user

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 4.1

Grant = Callable[[Connection, str, Client, Mapping[str, str]], dict[str, Any]]


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_code(
    conn: Connection, issuer: str, client: Client, form: Mapping[str, str]
) -> dict[str, Any]:
    check_grant(client, "authorization_code")
    code, redirect_uri = form.get("code"), form.get("redirect_uri")
    verifier = form.get("code_verifier")
    if not code or not redirect_uri:
        raise invalid_request("code and redirect_uri are required")
    row = repository.lock_code(conn, token_hash(code))
    if row is None or row["client_id"] != client.client_id:
        raise invalid_grant("unknown authorization code")
    if row["used_at"] is not None:
        # RFC 6749 4.1.2: a replayed code revokes what the first exchange issued.
        if row["family_id"] is not None:
            revoke_family(conn, row["family_id"])
        raise invalid_grant("authorization code already used", commit=True)
    if row["expired"]:
        raise invalid_grant("authorization code expired")
    if row["redirect_uri"] != redirect_uri:
        raise invalid_grant("redirect_uri differs from the authorization request")
    challenge = row["code_challenge"]
    if challenge is not None:
        if verifier is None or not _VERIFIER.match(verifier):
            raise invalid_grant("a valid code_verifier is required")
        if not hmac.compare_digest(_s256(verifier), challenge):
            raise invalid_grant("code_verifier does not match the code_challenge")
    elif verifier is not None:
        # A verifier for a code issued without a challenge: a PKCE downgrade attempt.
        raise invalid_grant("code was issued without a code_challenge")
    user = get_user(conn, row["user_id"])
    if user is None:
        raise invalid_grant("user no longer exists")
    family_id = uuid.uuid4()
    repository.use_code(conn, row["code_hash"], family_id)
    scopes = frozenset(row["scopes"])
    body = user_tokens(conn, issuer, client, user, scopes, family_id)
    if "openid" in scopes:
        body["id_token"] = issue_id_token(
            conn, issuer, user, client.client_id, scopes, row["nonce"], row["auth_time"]
        )
    return body


def client_credentials(
    conn: Connection, issuer: str, client: Client, form: Mapping[str, str]
) -> dict[str, Any]:
    if client.public:
        raise OAuthError("unauthorized_client", "public clients cannot use client_credentials")
    check_grant(client, "client_credentials")
    requested = parse_scope(form.get("scope"))
    scopes = client.scopes if requested is None else requested
    if not scopes <= client.scopes:
        extra = " ".join(sorted(scopes - client.scopes))
        raise OAuthError("invalid_scope", f"scope not allowed for this client: {extra}")
    if not registry.enabled_for_issuing(conn, client.client_id):
        raise invalid_client("unknown client or bad credentials")  # disabled meanwhile
    access, jti, exp = issue_access_token(
        conn,
        issuer,
        subject=client.client_id,
        client_id=client.client_id,
        scopes=scopes,
        tenant_id=client.tenant_id,
    )
    # Recorded so that disabling the client revokes what it still holds.
    registry.record_client_token(conn, jti, client.client_id, exp)
    return bearer(access, scopes)


def refresh_token(
    conn: Connection, issuer: str, client: Client, form: Mapping[str, str]
) -> dict[str, Any]:
    check_grant(client, "refresh_token")
    presented = form.get("refresh_token")
    if not presented:
        raise invalid_request("refresh_token is required")
    row = repository.lock_refresh_token(conn, token_hash(presented))
    if row is None or row["client_id"] != client.client_id:
        raise invalid_grant("unknown refresh token")
    if row["revoked_at"] is not None:
        raise invalid_grant("refresh token revoked")
    if row["used_at"] is not None:
        # A rotated token came back: either the client or a thief holds a copy. The
        # family is revoked so neither keeps access (RFC 9700 4.14.2).
        revoke_family(conn, row["family_id"])
        raise invalid_grant("refresh token reused; the session is revoked", commit=True)
    if row["expired"]:
        raise invalid_grant("refresh token expired")
    granted = frozenset(row["scopes"])
    requested = parse_scope(form.get("scope"))
    if requested is not None and not requested <= granted:
        raise OAuthError("invalid_scope", "scope exceeds what was granted")
    user = get_user(conn, row["user_id"])
    if user is None:
        raise invalid_grant("user no longer exists")
    repository.use_refresh_token(conn, row["token_hash"])
    # The new refresh token keeps the original grant; a narrower scope is per access token.
    return user_tokens(conn, issuer, client, user, granted, row["family_id"], requested)


GRANTS: dict[str, Grant] = {
    "authorization_code": authorization_code,
    "client_credentials": client_credentials,
    "refresh_token": refresh_token,
}
