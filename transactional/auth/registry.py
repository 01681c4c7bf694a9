"""The partner registry in auth's schema: tenants, clients as the admin API sees them, and
the client-credentials tokens each client holds (so that disabling it can revoke them).

The token endpoint's view of a client is `repository.get_client`, which never returns a
disabled one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, RowMapping, text

from transactional.auth.admin_models import ClientOut, Tenant

T = TypeVar("T")
_CLIENT = "client_id, name, tenant_id, scopes, grant_types, redirect_uris, created_at, disabled_at"


@dataclass(frozen=True)
class Keyed(Generic[T]):
    """An object made under an Idempotency-Key, and what that request asked for."""

    value: T
    fingerprint: str | None


# -- tenants -------------------------------------------------------------------------------


def insert_tenant(
    conn: Connection, tenant_id: str, name: str, key: str | None, fingerprint: str
) -> Tenant | None:
    """The new tenant; None when the id is taken."""
    row = (
        conn.execute(
            text(
                "INSERT INTO auth.tenants (id, name, request_key, request_fingerprint) "
                "VALUES (:id, :name, :key, :fp) ON CONFLICT (id) DO NOTHING "
                "RETURNING id, name, created_at"
            ),
            {"id": tenant_id, "name": name, "key": key, "fp": fingerprint},
        )
        .mappings()
        .one_or_none()
    )
    return Tenant.model_validate(dict(row)) if row else None


def tenant_by_key(conn: Connection, key: str) -> Keyed[Tenant] | None:
    row = (
        conn.execute(
            text(
                "SELECT id, name, created_at, request_fingerprint FROM auth.tenants "
                "WHERE request_key = :k"
            ),
            {"k": key},
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        return None
    values = dict(row)
    fingerprint = values.pop("request_fingerprint")
    return Keyed(Tenant.model_validate(values), fingerprint)


def tenant_exists(conn: Connection, tenant_id: str) -> bool:
    found = conn.execute(text("SELECT 1 FROM auth.tenants WHERE id = :id"), {"id": tenant_id})
    return found.first() is not None


def tenants(conn: Connection, after: str | None, limit: int) -> list[Tenant]:
    """Up to `limit` tenants by id, after the id `after`."""
    rows = conn.execute(
        text(
            "SELECT id, name, created_at FROM auth.tenants "
            "WHERE CAST(:after AS text) IS NULL OR id > :after ORDER BY id LIMIT :limit"
        ),
        {"after": after, "limit": limit},
    ).mappings()
    return [Tenant.model_validate(dict(row)) for row in rows]


# -- clients -------------------------------------------------------------------------------


def keep_request(conn: Connection, client_id: str, key: str | None, fingerprint: str) -> None:
    """Record the Idempotency-Key a client was created under."""
    conn.execute(
        text(
            "UPDATE auth.clients SET request_key = :key, request_fingerprint = :fp "
            "WHERE client_id = :c"
        ),
        {"key": key, "fp": fingerprint, "c": client_id},
    )


def client_by_key(conn: Connection, key: str) -> Keyed[ClientOut] | None:
    row = (
        conn.execute(
            text(f"SELECT {_CLIENT}, request_fingerprint FROM auth.clients WHERE request_key = :k"),
            {"k": key},
        )
        .mappings()
        .one_or_none()
    )
    return Keyed(_client(row), row["request_fingerprint"]) if row else None


def client(conn: Connection, client_id: str, *, lock: bool = False) -> ClientOut | None:
    """Any client, disabled ones too; `lock`: until the transaction ends."""
    sql = f"SELECT {_CLIENT} FROM auth.clients WHERE client_id = :c" + (
        " FOR UPDATE" if lock else ""
    )
    row = conn.execute(text(sql), {"c": client_id}).mappings().one_or_none()
    return _client(row) if row else None


def clients(
    conn: Connection, tenant_id: str | None, after: str | None, limit: int
) -> list[ClientOut]:
    """Up to `limit` clients by id after `after`: of one tenant, or all (`tenant_id` None)."""
    rows = conn.execute(
        text(
            f"SELECT {_CLIENT} FROM auth.clients "
            "WHERE (CAST(:t AS text) IS NULL OR tenant_id = :t) "
            "AND (CAST(:after AS text) IS NULL OR client_id > :after) "
            "ORDER BY client_id LIMIT :limit"
        ),
        {"t": tenant_id, "after": after, "limit": limit},
    ).mappings()
    return [_client(row) for row in rows]


def set_secret_hash(conn: Connection, client_id: str, secret_hash: str) -> None:
    conn.execute(
        text("UPDATE auth.clients SET secret_hash = :h WHERE client_id = :c"),
        {"h": secret_hash, "c": client_id},
    )


def disable(conn: Connection, client_id: str) -> None:
    conn.execute(
        text(
            "UPDATE auth.clients SET disabled_at = coalesce(disabled_at, now()) "
            "WHERE client_id = :c"
        ),
        {"c": client_id},
    )


def enabled_for_issuing(conn: Connection, client_id: str) -> bool:
    """Whether the client is still enabled, holding it (FOR SHARE) until the transaction
    ends: a concurrent disable waits for this token to be recorded, then revokes it."""
    row = conn.execute(
        text("SELECT 1 FROM auth.clients WHERE client_id = :c AND disabled_at IS NULL FOR SHARE"),
        {"c": client_id},
    ).first()
    return row is not None


def _client(row: RowMapping) -> ClientOut:
    values: dict[str, Any] = dict(row)
    values.pop("request_fingerprint", None)
    values["scopes"] = sorted(values["scopes"])
    values["grant_types"] = sorted(values["grant_types"])
    return ClientOut.model_validate(values)


# -- the tokens a client holds -------------------------------------------------------------


def record_client_token(conn: Connection, jti: str, client_id: str, expires_at: int) -> None:
    conn.execute(
        text(
            "INSERT INTO auth.client_tokens (jti, client_id, expires_at) "
            "VALUES (:jti, :c, to_timestamp(:exp))"
        ),
        {"jti": jti, "c": client_id, "exp": expires_at},
    )


def live_client_tokens(conn: Connection, client_id: str) -> list[tuple[str, int]]:
    """(jti, exp) of the client's client-credentials tokens that have not expired."""
    rows = conn.execute(
        text(
            "SELECT jti, extract(epoch FROM expires_at)::bigint AS exp FROM auth.client_tokens "
            "WHERE client_id = :c AND expires_at > now()"
        ),
        {"c": client_id},
    ).all()
    return [(row.jti, int(row.exp)) for row in rows]


def refresh_families(conn: Connection, client_id: str) -> list[Any]:
    """The families of the client's refresh tokens not revoked yet."""
    return list(
        conn.execute(
            text(
                "SELECT DISTINCT family_id FROM auth.refresh_tokens "
                "WHERE client_id = :c AND revoked_at IS NULL"
            ),
            {"c": client_id},
        ).scalars()
    )
