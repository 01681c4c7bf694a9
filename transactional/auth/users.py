"""Users: the people who log in. The email is stored lower-cased, unique within a tenant.

A user belongs to the tenant it signed up under (or to none); it logs in through that
tenant's clients only, so the same address under two tenants is two users who never meet.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection

from transactional.auth import repository
from transactional.auth.models import MAX_PASSWORD, MIN_PASSWORD, User, normalize_email
from transactional.auth.passwords import hash_secret, needs_rehash, verify_secret


class UserExists(Exception):
    def __init__(self, existing: User) -> None:
        super().__init__(existing.email)
        self.existing = existing


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
    user = repository.insert_user(conn, address, hash_secret(password), customer_id, tenant_id)
    if user is None:
        existing = find_user(conn, address, tenant_id)
        assert existing is not None  # the conflict was on this email; users are not deleted
        raise UserExists(existing)
    return user


def find_user(conn: Connection, email: str, tenant_id: str | None) -> User | None:
    """The tenant's user with this (normalized) email; `tenant_id=None`: a tenant-less one."""
    found = repository.find_login(conn, email, tenant_id)
    return found[0] if found is not None else None


def get_user(conn: Connection, user_id: uuid.UUID | str) -> User | None:
    try:
        key = uuid.UUID(str(user_id))
    except ValueError:
        return None
    return repository.get_user(conn, key)


def authenticate_user(
    conn: Connection, email: str, password: str, tenant_id: str | None
) -> User | None:
    """The tenant's user when the password matches; None otherwise, in the same time."""
    try:
        address = normalize_email(email)
    except ValueError:
        address = ""
    found = None
    if address and len(password) <= MAX_PASSWORD:
        found = repository.find_login(conn, address, tenant_id)
    stored = found[1] if found is not None else None
    if not verify_secret(stored, password[:MAX_PASSWORD]) or found is None:
        return None
    user, password_hash = found
    if needs_rehash(password_hash):  # the cost settings changed since it was hashed
        repository.set_password_hash(conn, user.id, hash_secret(password))
    return user
