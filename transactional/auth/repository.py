"""The auth schema: the only code that reads or writes it.

Tokens and codes are stored by their hash (`tokens.token_hash`), never in clear; the
callers hash, so no clear token is ever a parameter here.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, RowMapping, text

from streaming.outbox import emit
from transactional.auth.models import Client, User

SCHEMA = "auth"

# -- clients -------------------------------------------------------------------------------


def save_client(conn: Connection, client: Client, *, replace: bool) -> bool:
    """Insert `client`, or overwrite the one with its id when `replace`; False if it exists."""
    conflict = (
        "DO UPDATE SET secret_hash = EXCLUDED.secret_hash, name = EXCLUDED.name, "
        "redirect_uris = EXCLUDED.redirect_uris, grant_types = EXCLUDED.grant_types, "
        "scopes = EXCLUDED.scopes, tenant_id = EXCLUDED.tenant_id"
        if replace
        else "DO NOTHING"
    )
    saved = conn.execute(
        text(
            "INSERT INTO auth.clients "
            "(client_id, secret_hash, name, redirect_uris, grant_types, scopes, tenant_id) "
            "VALUES (:client_id, :secret_hash, :name, :redirect_uris, :grant_types, :scopes, "
            f":tenant_id) ON CONFLICT (client_id) {conflict} RETURNING client_id"
        ),
        {
            "client_id": client.client_id,
            "secret_hash": client.secret_hash,
            "name": client.name,
            "redirect_uris": list(client.redirect_uris),
            "grant_types": sorted(client.grant_types),
            "scopes": sorted(client.scopes),
            "tenant_id": client.tenant_id,
        },
    ).scalar_one_or_none()
    return saved is not None


def tenant_ids(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT id FROM auth.tenants ORDER BY id")).scalars())


def get_client(conn: Connection, client_id: str) -> Client | None:
    row = (
        conn.execute(
            # A disabled client is unknown to every grant, login page and revocation.
            text("SELECT * FROM auth.clients WHERE client_id = :c AND disabled_at IS NULL"),
            {"c": client_id},
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        return None
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        redirect_uris=tuple(row["redirect_uris"]),
        grant_types=frozenset(row["grant_types"]),
        scopes=frozenset(row["scopes"]),
        tenant_id=row["tenant_id"],
    )


# -- users ---------------------------------------------------------------------------------


def insert_user(
    conn: Connection,
    email: str,
    password_hash: str,
    customer_id: str | None,
    tenant_id: str | None,
) -> User | None:
    """The new user and its `user.created` event; None when the tenant has that email."""
    row = (
        conn.execute(
            text(
                "INSERT INTO auth.users (id, email, password_hash, customer_id, tenant_id) "
                "VALUES (:id, :email, :hash, :customer_id, :tenant_id) "
                "ON CONFLICT (tenant_id, email) DO NOTHING RETURNING *"
            ),
            {
                "id": uuid.uuid4(),
                "email": email,
                "hash": password_hash,
                "customer_id": customer_id,
                "tenant_id": tenant_id,
            },
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        return None
    user = _user(row)
    # No password, no hash, no email: consumers needing the address ask the customer
    # service, so the hash-chained audit log and the lake never hold it.
    emit(
        conn,
        SCHEMA,
        "user",
        str(user.id),
        "user.created",
        {
            "user_id": str(user.id),
            "customer_id": user.customer_id,
            "tenant_id": user.tenant_id,
            "created_at": user.created_at.isoformat(),
        },
    )
    return user


def find_login(conn: Connection, email: str, tenant_id: str | None) -> tuple[User, str] | None:
    """The tenant's user with this (normalized) email and its password hash; `tenant_id`
    None: a user of no tenant."""
    row = (
        conn.execute(
            text(
                "SELECT * FROM auth.users WHERE email = :e "
                "AND tenant_id IS NOT DISTINCT FROM CAST(:t AS text)"
            ),
            {"e": email, "t": tenant_id},
        )
        .mappings()
        .one_or_none()
    )
    return (_user(row), row["password_hash"]) if row is not None else None


def get_user(conn: Connection, user_id: uuid.UUID) -> User | None:
    row = (
        conn.execute(text("SELECT * FROM auth.users WHERE id = :id"), {"id": user_id})
        .mappings()
        .one_or_none()
    )
    return _user(row) if row is not None else None


def set_password_hash(conn: Connection, user_id: uuid.UUID, password_hash: str) -> None:
    conn.execute(
        text("UPDATE auth.users SET password_hash = :h WHERE id = :id"),
        {"h": password_hash, "id": user_id},
    )


def _user(row: RowMapping) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        customer_id=row["customer_id"],
        tenant_id=row["tenant_id"],
        created_at=row["created_at"],
    )


# -- authorization codes -------------------------------------------------------------------


def insert_code(
    conn: Connection,
    code_hash: str,
    client_id: str,
    user_id: uuid.UUID,
    redirect_uri: str,
    code_challenge: str | None,
    scopes: frozenset[str],
    nonce: str | None,
    ttl: timedelta,
) -> None:
    conn.execute(
        text(
            "INSERT INTO auth.authorization_codes (code_hash, client_id, user_id, redirect_uri, "
            "code_challenge, scopes, nonce, auth_time, expires_at) VALUES (:h, :client, :user, "
            ":redirect_uri, :challenge, :scopes, :nonce, now(), now() + :ttl)"
        ),
        {
            "h": code_hash,
            "client": client_id,
            "user": user_id,
            "redirect_uri": redirect_uri,
            "challenge": code_challenge,
            "scopes": sorted(scopes),
            "nonce": nonce,
            "ttl": ttl,
        },
    )


def lock_code(conn: Connection, code_hash: str) -> RowMapping | None:
    """The code's row and whether it `expired`, locked until the transaction ends."""
    return _locked(conn, "authorization_codes", "code_hash", code_hash)


def use_code(conn: Connection, code_hash: str, family_id: uuid.UUID) -> None:
    conn.execute(
        text(
            "UPDATE auth.authorization_codes SET used_at = now(), family_id = :f "
            "WHERE code_hash = :h"
        ),
        {"f": family_id, "h": code_hash},
    )


# -- refresh tokens and revocations --------------------------------------------------------


def insert_refresh_token(
    conn: Connection,
    token_hash: str,
    family_id: uuid.UUID,
    client_id: str,
    user_id: uuid.UUID,
    scopes: frozenset[str],
    access_jti: str,
    access_expires_at: int,
    ttl: timedelta,
) -> None:
    conn.execute(
        text(
            "INSERT INTO auth.refresh_tokens (token_hash, family_id, client_id, user_id, "
            "scopes, access_jti, access_expires_at, expires_at) VALUES (:h, :family, "
            ":client, :user, :scopes, :jti, to_timestamp(:exp), now() + :ttl)"
        ),
        {
            "h": token_hash,
            "family": family_id,
            "client": client_id,
            "user": user_id,
            "scopes": sorted(scopes),
            "jti": access_jti,
            "exp": access_expires_at,
            "ttl": ttl,
        },
    )


def lock_refresh_token(conn: Connection, token_hash: str) -> RowMapping | None:
    """The token's row and whether it `expired`, locked until the transaction ends."""
    return _locked(conn, "refresh_tokens", "token_hash", token_hash)


def use_refresh_token(conn: Connection, token_hash: str) -> None:
    conn.execute(
        text("UPDATE auth.refresh_tokens SET used_at = now() WHERE token_hash = :h"),
        {"h": token_hash},
    )


def refresh_token_owner(conn: Connection, token_hash: str) -> Row[Any] | None:
    """`family_id` and `client_id` of a refresh token, if it is one."""
    return conn.execute(
        text("SELECT family_id, client_id FROM auth.refresh_tokens WHERE token_hash = :h"),
        {"h": token_hash},
    ).first()


def revoke_family(conn: Connection, family_id: uuid.UUID) -> list[tuple[str, int]]:
    """Revoke a family's refresh tokens and record the access tokens issued with them.

    Returns the newly revoked access tokens' (jti, exp) that have not expired yet.
    """
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
    return [(row.jti, int(row.exp)) for row in rows]


def revoke_jti(conn: Connection, jti: str, expires_at: int) -> None:
    conn.execute(
        text(
            "INSERT INTO auth.revoked_tokens (jti, expires_at) "
            "VALUES (:jti, to_timestamp(:exp)) ON CONFLICT (jti) DO NOTHING"
        ),
        {"jti": jti, "exp": expires_at},
    )


def is_revoked(conn: Connection, jti: str) -> bool:
    return bool(
        conn.execute(
            text("SELECT 1 FROM auth.revoked_tokens WHERE jti = :jti"), {"jti": jti}
        ).first()
    )


def revocations_since(
    conn: Connection, since: datetime | None, leeway: timedelta
) -> tuple[datetime, list[tuple[str, int]]]:
    """The database's clock now, and the (jti, exp) revoked since `since` (all when None)
    that verifiers could still accept: up to `leeway` past their expiry."""
    read_at: datetime = conn.execute(text("SELECT now()")).scalar_one()
    rows = conn.execute(
        text(
            "SELECT jti, extract(epoch FROM expires_at)::bigint AS exp "
            "FROM auth.revoked_tokens WHERE expires_at > now() - :leeway "
            "AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)"
        ),
        {"since": since, "leeway": leeway},
    ).all()
    return read_at, [(row.jti, int(row.exp)) for row in rows]


def purge_expired(conn: Connection) -> int:
    """Delete codes, refresh tokens and revocations nothing can use any more (for a schedule)."""
    deleted = 0
    for table in ("authorization_codes", "refresh_tokens", "revoked_tokens", "client_tokens"):
        result = conn.execute(
            text(f"DELETE FROM auth.{table} WHERE expires_at < now() - interval '1 day'")
        )
        deleted += result.rowcount
    return deleted


def _locked(conn: Connection, table: str, key: str, value: str) -> RowMapping | None:
    return (
        conn.execute(
            text(
                f"SELECT *, expires_at < now() AS expired FROM auth.{table} "
                f"WHERE {key} = :h FOR UPDATE"
            ),
            {"h": value},
        )
        .mappings()
        .one_or_none()
    )
