"""Issuing tokens: access (JWT), ID (JWT), refresh (opaque, rotated), and the three grants."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from transactional.auth import keys
from transactional.auth.clients import Client, check_grant
from transactional.auth.config import (
    ACCESS_TOKEN_TTL,
    AUTHORIZATION_CODE_TTL,
    ID_TOKEN_TTL,
    REFRESH_TOKEN_TTL,
)
from transactional.auth.errors import OAuthError, invalid_grant, invalid_request
from transactional.auth.users import User, get_user
from transactional.common import revocations
from transactional.common.security import (
    ACCESS_TOKEN_TYPE,
    LEEWAY_SECONDS,
    InvalidToken,
    TokenVerifier,
    audience,
)

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 4.1
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 3.3


def opaque_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # 256 random bits need no slow hash; storing only the digest makes a DB leak harmless.
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scope(value: str | None) -> frozenset[str] | None:
    """The requested scopes, None when none were asked for; invalid_scope when malformed."""
    if value is None or not value.strip():
        return None
    scopes = value.split(" ")
    if any(not _SCOPE_TOKEN.match(s) for s in scopes if s):
        raise OAuthError("invalid_scope", "malformed scope")
    return frozenset(s for s in scopes if s)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue_access_token(
    conn: Connection,
    issuer: str,
    *,
    subject: str,
    client_id: str,
    scopes: frozenset[str],
    customer_id: str | None = None,
    tenant_id: str | None = None,
) -> tuple[str, str, int]:
    """(token, jti, exp) for an RFC 9068 access token."""
    now = int(time.time())
    exp = now + int(ACCESS_TOKEN_TTL.total_seconds())
    jti = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience(),
        "sub": subject,
        "client_id": client_id,
        "scope": " ".join(sorted(scopes)),
        "iat": now,
        "nbf": now,
        "exp": exp,
        "jti": jti,
    }
    if customer_id is not None:
        claims["customer_id"] = customer_id
    if tenant_id is not None:
        claims["tenant_id"] = tenant_id
    return keys.sign(conn, claims, ACCESS_TOKEN_TYPE), jti, exp


def issue_id_token(
    conn: Connection,
    issuer: str,
    user: User,
    client_id: str,
    scopes: frozenset[str],
    nonce: str | None,
    auth_time: datetime,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "sub": str(user.id),
        "iat": now,
        "exp": now + int(ID_TOKEN_TTL.total_seconds()),
        "auth_time": int(auth_time.timestamp()),
    }
    if nonce:
        claims["nonce"] = nonce
    if "email" in scopes:
        claims["email"] = user.email
    return keys.sign(conn, claims, "JWT")


def _user_tokens(
    conn: Connection,
    issuer: str,
    client: Client,
    user: User,
    scopes: frozenset[str],
    family_id: uuid.UUID,
    access_scopes: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Access token (for `access_scopes`, default all) and a refresh token for `scopes`."""
    access_scopes = scopes if access_scopes is None else access_scopes
    access, jti, exp = issue_access_token(
        conn,
        issuer,
        subject=str(user.id),
        client_id=client.client_id,
        scopes=access_scopes,
        customer_id=user.customer_id,
        tenant_id=user.tenant_id,
    )
    body = _bearer(access, access_scopes)
    if "refresh_token" in client.grant_types:
        refresh = opaque_token()
        conn.execute(
            text(
                "INSERT INTO auth.refresh_tokens (token_hash, family_id, client_id, user_id, "
                "scopes, access_jti, access_expires_at, expires_at) VALUES (:h, :family, "
                ":client, :user, :scopes, :jti, to_timestamp(:exp), now() + :ttl)"
            ),
            {
                "h": token_hash(refresh),
                "family": family_id,
                "client": client.client_id,
                "user": user.id,
                "scopes": sorted(scopes),
                "jti": jti,
                "exp": exp,
                "ttl": REFRESH_TOKEN_TTL,
            },
        )
        body["refresh_token"] = refresh
    return body


def _bearer(access: str, scopes: frozenset[str]) -> dict[str, Any]:
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": int(ACCESS_TOKEN_TTL.total_seconds()),
        "scope": " ".join(sorted(scopes)),
    }


def create_authorization_code(
    conn: Connection,
    client: Client,
    user: User,
    redirect_uri: str,
    scopes: frozenset[str],
    code_challenge: str | None,
    nonce: str | None,
) -> str:
    code = opaque_token()
    conn.execute(
        text(
            "INSERT INTO auth.authorization_codes (code_hash, client_id, user_id, redirect_uri, "
            "code_challenge, scopes, nonce, auth_time, expires_at) VALUES (:h, :client, :user, "
            ":redirect_uri, :challenge, :scopes, :nonce, now(), now() + :ttl)"
        ),
        {
            "h": token_hash(code),
            "client": client.client_id,
            "user": user.id,
            "redirect_uri": redirect_uri,
            "challenge": code_challenge,
            "scopes": sorted(scopes),
            "nonce": nonce,
            "ttl": AUTHORIZATION_CODE_TTL,
        },
    )
    return code


def grant_authorization_code(
    conn: Connection, issuer: str, client: Client, form: Mapping[str, str]
) -> dict[str, Any]:
    check_grant(client, "authorization_code")
    code, redirect_uri = form.get("code"), form.get("redirect_uri")
    verifier = form.get("code_verifier")
    if not code or not redirect_uri:
        raise invalid_request("code and redirect_uri are required")
    row = (
        conn.execute(
            text(
                "SELECT *, expires_at < now() AS expired FROM auth.authorization_codes "
                "WHERE code_hash = :h FOR UPDATE"
            ),
            {"h": token_hash(code)},
        )
        .mappings()
        .one_or_none()
    )
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
        if not hmac.compare_digest(s256(verifier), challenge):
            raise invalid_grant("code_verifier does not match the code_challenge")
    elif verifier is not None:
        # A verifier for a code issued without a challenge: a PKCE downgrade attempt.
        raise invalid_grant("code was issued without a code_challenge")
    user = get_user(conn, row["user_id"])
    if user is None:
        raise invalid_grant("user no longer exists")
    family_id = uuid.uuid4()
    conn.execute(
        text(
            "UPDATE auth.authorization_codes SET used_at = now(), family_id = :f "
            "WHERE code_hash = :h"
        ),
        {"f": family_id, "h": row["code_hash"]},
    )
    scopes = frozenset(row["scopes"])
    body = _user_tokens(conn, issuer, client, user, scopes, family_id)
    if "openid" in scopes:
        body["id_token"] = issue_id_token(
            conn, issuer, user, client.client_id, scopes, row["nonce"], row["auth_time"]
        )
    return body


def grant_client_credentials(
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
    access, _, _ = issue_access_token(
        conn,
        issuer,
        subject=client.client_id,
        client_id=client.client_id,
        scopes=scopes,
        tenant_id=client.tenant_id,
    )
    return _bearer(access, scopes)


def grant_refresh_token(
    conn: Connection, issuer: str, client: Client, form: Mapping[str, str]
) -> dict[str, Any]:
    check_grant(client, "refresh_token")
    presented = form.get("refresh_token")
    if not presented:
        raise invalid_request("refresh_token is required")
    row = (
        conn.execute(
            text(
                "SELECT *, expires_at < now() AS expired FROM auth.refresh_tokens "
                "WHERE token_hash = :h FOR UPDATE"
            ),
            {"h": token_hash(presented)},
        )
        .mappings()
        .one_or_none()
    )
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
    conn.execute(
        text("UPDATE auth.refresh_tokens SET used_at = now() WHERE token_hash = :h"),
        {"h": row["token_hash"]},
    )
    # The new refresh token keeps the original grant; a narrower scope is per access token.
    return _user_tokens(conn, issuer, client, user, granted, row["family_id"], requested)


def revoke_family(conn: Connection, family_id: uuid.UUID) -> None:
    """Revoke every refresh token of a family and the access tokens issued with them."""
    rows = conn.execute(
        text(
            "WITH revoked AS (UPDATE auth.refresh_tokens SET revoked_at = now() "
            "WHERE family_id = :f AND revoked_at IS NULL "
            "RETURNING access_jti, access_expires_at) "
            "INSERT INTO auth.revoked_tokens (jti, expires_at) "
            "SELECT access_jti, access_expires_at FROM revoked "
            "WHERE access_jti IS NOT NULL AND access_expires_at > now() "
            "ON CONFLICT (jti) DO NOTHING "
            "RETURNING jti, extract(epoch FROM expires_at)::bigint AS exp"
        ),
        {"f": family_id},
    ).all()
    # Before the commit: if it then fails, services refuse tokens a retry revokes anyway.
    revocations.announce(((row.jti, int(row.exp)) for row in rows), LEEWAY_SECONDS)


def revoke_jti(conn: Connection, jti: str, expires_at: int) -> None:
    conn.execute(
        text(
            "INSERT INTO auth.revoked_tokens (jti, expires_at) "
            "VALUES (:jti, to_timestamp(:exp)) ON CONFLICT (jti) DO NOTHING"
        ),
        {"jti": jti, "exp": expires_at},
    )
    revocations.announce([(jti, expires_at)], LEEWAY_SECONDS)


def is_revoked(conn: Connection, jti: str) -> bool:
    return bool(
        conn.execute(
            text("SELECT 1 FROM auth.revoked_tokens WHERE jti = :jti"), {"jti": jti}
        ).first()
    )


def own_verifier(conn: Connection, issuer: str) -> TokenVerifier:
    """Access-token checks against the database's keys: auth never asks itself over HTTP."""
    return TokenVerifier(issuer, audience(), keys.DatabaseKeys(conn))


def access_claims(conn: Connection, issuer: str, token: str) -> dict[str, Any]:
    """Verified, unrevoked access-token claims; InvalidToken otherwise."""
    claims = own_verifier(conn, issuer).claims(token)
    if is_revoked(conn, str(claims.get("jti", ""))):
        raise InvalidToken("token revoked")
    return claims


def revoke(conn: Connection, issuer: str, client: Client, token: str) -> None:
    """RFC 7009: revoke a refresh or access token of this client; unknown tokens are fine."""
    row = conn.execute(
        text("SELECT family_id, client_id FROM auth.refresh_tokens WHERE token_hash = :h"),
        {"h": token_hash(token)},
    ).first()
    if row is not None:
        if row.client_id == client.client_id:
            revoke_family(conn, row.family_id)
        return
    try:
        claims = own_verifier(conn, issuer).claims(token)
    except InvalidToken:
        return  # expired, foreign or garbage: nothing left to revoke
    # Another client's token is left alone, silently: the answer must not confirm it exists.
    if claims.get("client_id") == client.client_id and isinstance(claims.get("jti"), str):
        revoke_jti(conn, claims["jti"], int(claims["exp"]))


def purge_expired(conn: Connection) -> int:
    """Delete codes, refresh tokens and revocations nothing can use any more (for a schedule)."""
    deleted = 0
    for table in ("authorization_codes", "refresh_tokens", "revoked_tokens"):
        result = conn.execute(
            text(f"DELETE FROM auth.{table} WHERE expires_at < now() - interval '1 day'")
        )
        deleted += result.rowcount
    return deleted
