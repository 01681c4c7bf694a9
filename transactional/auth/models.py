"""What auth stores and what its endpoints take and answer.

`Client` and `User` are the records the repository reads; the pydantic models are bodies:
the internal users API's, and those the OAuth endpoints document (they parse forms by hand,
see `forms`, and answer RFC 6749's JSON).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Deliberately loose: the mailbox proves itself by receiving mail, not by a regex.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
MAX_EMAIL = 254
MIN_PASSWORD = 8
# argon2 hashes any length, but megabyte passwords would be a cheap way to burn CPU.
MAX_PASSWORD = 1024


def normalize_email(email: str) -> str:
    """Lower-cased and stripped; ValueError when it is not an address."""
    value = email.strip().lower()
    if len(value) > MAX_EMAIL or not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    secret_hash: str | None
    redirect_uris: tuple[str, ...]
    grant_types: frozenset[str]
    scopes: frozenset[str]
    tenant_id: str | None

    @property
    def public(self) -> bool:
        """No secret (a browser or mobile app): PKCE stands in for authentication."""
        return self.secret_hash is None


@dataclass(frozen=True)
class User:
    """A person who logs in: the email is lower-cased, unique within its tenant."""

    id: uuid.UUID
    email: str
    customer_id: str | None
    tenant_id: str | None
    created_at: datetime


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=MAX_EMAIL, examples=["ada@example.com"])
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    customer_id: str | None = Field(None, max_length=100)
    tenant_id: str | None = Field(None, max_length=100)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    customer_id: str | None
    tenant_id: str | None
    created_at: datetime


class OAuthErrorBody(BaseModel):
    """RFC 6749 5.2."""

    error: str
    error_description: str


class TokenBody(BaseModel):
    """RFC 6749 5.1; `refresh_token` and `id_token` only where the grant gives them."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None


class IntrospectionBody(BaseModel):
    """RFC 7662 2.2: `active`, and the token's claims when it is active."""

    model_config = ConfigDict(extra="allow")

    active: bool
