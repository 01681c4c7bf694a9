"""Tokens: access (JWT), ID (JWT), refresh (opaque, rotated), codes; checking and revoking.

The grants that hand them out are in `grants`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from transactional.auth import keys, repository
from transactional.auth.config import (
    ACCESS_TOKEN_TTL,
    AUTHORIZATION_CODE_TTL,
    ID_TOKEN_TTL,
    REFRESH_TOKEN_TTL,
)
from transactional.auth.errors import OAuthError
from transactional.auth.models import Client, User
from transactional.common import revocations
from transactional.common.security import (
    ACCESS_TOKEN_TYPE,
    LEEWAY_SECONDS,
    InvalidToken,
    TokenVerifier,
    audience,
)

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


def user_tokens(
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
    body = bearer(access, access_scopes)
    if "refresh_token" in client.grant_types:
        refresh = opaque_token()
        repository.insert_refresh_token(
            conn,
            token_hash(refresh),
            family_id,
            client.client_id,
            user.id,
            scopes,
            jti,
            exp,
            REFRESH_TOKEN_TTL,
        )
        body["refresh_token"] = refresh
    return body


def bearer(access: str, scopes: frozenset[str]) -> dict[str, Any]:
    """The token response (RFC 6749 5.1) for an access token."""
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
    repository.insert_code(
        conn,
        token_hash(code),
        client.client_id,
        user.id,
        redirect_uri,
        code_challenge,
        scopes,
        nonce,
        AUTHORIZATION_CODE_TTL,
    )
    return code


def revoke_family(conn: Connection, family_id: uuid.UUID) -> None:
    """Revoke every refresh token of a family and the access tokens issued with them."""
    revoked = repository.revoke_family(conn, family_id)
    # Before the commit: if it then fails, services refuse tokens a retry revokes anyway.
    revocations.announce(revoked, LEEWAY_SECONDS)


def revoke_jti(conn: Connection, jti: str, expires_at: int) -> None:
    repository.revoke_jti(conn, jti, expires_at)
    revocations.announce([(jti, expires_at)], LEEWAY_SECONDS)


def own_verifier(conn: Connection, issuer: str) -> TokenVerifier:
    """Access-token checks against the database's keys: auth never asks itself over HTTP."""
    return TokenVerifier(issuer, audience(), keys.DatabaseKeys(conn))


def access_claims(conn: Connection, issuer: str, token: str) -> dict[str, Any]:
    """Verified, unrevoked access-token claims; InvalidToken otherwise."""
    claims = own_verifier(conn, issuer).claims(token)
    if repository.is_revoked(conn, str(claims.get("jti", ""))):
        raise InvalidToken("token revoked")
    return claims


def revoke(conn: Connection, issuer: str, client: Client, token: str) -> None:
    """RFC 7009: revoke a refresh or access token of this client; unknown tokens are fine."""
    row = repository.refresh_token_owner(conn, token_hash(token))
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
