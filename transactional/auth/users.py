"""Users: the people who log in. The email is stored lower-cased, unique within a tenant.

A user belongs to the tenant it signed up under (or to none); it logs in through that
tenant's clients only, so the same address under two tenants is two users who never meet.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, text

from transactional.auth.passwords import hash_secret, needs_rehash, verify_secret
from transactional.common.outbox import emit

# Deliberately loose: the mailbox proves itself by receiving mail, not by a regex.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
MAX_EMAIL = 254
MIN_PASSWORD = 8
# argon2 hashes any length, but megabyte passwords would be a cheap way to burn CPU.
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    customer_id: str | None
    tenant_id: str | None
    created_at: datetime


class UserExists(Exception):
    def __init__(self, existing: User) -> None:
        super().__init__(existing.email)
        self.existing = existing


def normalize_email(email: str) -> str:
    """Lower-cased and stripped; ValueError when it is not an address."""
    value = email.strip().lower()
    if len(value) > MAX_EMAIL or not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


def create_user(
    conn: Connection,
    email: str,
    password: str,
    *,
    customer_id: str | None = None,
    tenant_id: str | None = None,
) -> User:
    """Insert the user and its `user.created` event in the caller's transaction."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    address = normalize_email(email)
    row = (
        conn.execute(
            text(
                "INSERT INTO auth.users (id, email, password_hash, customer_id, tenant_id) "
                "VALUES (:id, :email, :hash, :customer_id, :tenant_id) "
                "ON CONFLICT (tenant_id, email) DO NOTHING RETURNING *"
            ),
            {
                "id": uuid.uuid4(),
                "email": address,
                "hash": hash_secret(password),
                "customer_id": customer_id,
                "tenant_id": tenant_id,
            },
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        existing = find_user(conn, address, tenant_id)
        assert existing is not None  # the conflict was on this email; users are not deleted
        raise UserExists(existing)
    user = _user(row)
    # No password, no hash, no email: consumers needing the address ask the customer
    # service, so the hash-chained audit log and the lake never hold it.
    emit(
        conn,
        "auth",
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


def find_user(conn: Connection, email: str, tenant_id: str | None) -> User | None:
    """The tenant's user with this (normalized) email; `tenant_id=None`: a tenant-less one."""
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
    return _user(row) if row is not None else None


def get_user(conn: Connection, user_id: uuid.UUID | str) -> User | None:
    try:
        key = uuid.UUID(str(user_id))
    except ValueError:
        return None
    row = (
        conn.execute(text("SELECT * FROM auth.users WHERE id = :id"), {"id": key})
        .mappings()
        .one_or_none()
    )
    return _user(row) if row is not None else None


def authenticate_user(
    conn: Connection, email: str, password: str, tenant_id: str | None
) -> User | None:
    """The tenant's user when the password matches; None otherwise, in the same time."""
    try:
        address = normalize_email(email)
    except ValueError:
        address = ""
    row = None
    if address and len(password) <= MAX_PASSWORD:
        row = (
            conn.execute(
                text(
                    "SELECT * FROM auth.users WHERE email = :e "
                    "AND tenant_id IS NOT DISTINCT FROM CAST(:t AS text)"
                ),
                {"e": address, "t": tenant_id},
            )
            .mappings()
            .one_or_none()
        )
    stored = row["password_hash"] if row is not None else None
    if not verify_secret(stored, password[:MAX_PASSWORD]) or row is None:
        return None
    if needs_rehash(row["password_hash"]):  # the cost settings changed since it was hashed
        conn.execute(
            text("UPDATE auth.users SET password_hash = :h WHERE id = :id"),
            {"h": hash_secret(password), "id": row["id"]},
        )
    return _user(row)


def _user(row: RowMapping) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        customer_id=row["customer_id"],
        tenant_id=row["tenant_id"],
        created_at=row["created_at"],
    )
