"""POST /v1/users: the registration service creates the login for a new customer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator

from transactional.auth.db import engine
from transactional.auth.users import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    UserExists,
    create_user,
    normalize_email,
)
from transactional.common.problems import Problem
from transactional.common.security import Principal, require

router = APIRouter(tags=["users"])


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, examples=["ada@example.com"])
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


@router.post(
    "/v1/users",
    status_code=201,
    summary="Create a user (internal: needs scopes users:write and internal)",
    responses={409: {"description": "A user with this email exists in this tenant"}},
)
def create_user_endpoint(
    # Internal only: the body names any tenant's customer; registration vouches for it.
    body: NewUser,
    principal: Principal = Depends(require("users:write", "internal")),
) -> UserOut:
    try:
        with engine().begin() as conn:
            user = create_user(
                conn,
                body.email,
                body.password,
                customer_id=body.customer_id,
                tenant_id=body.tenant_id,
            )
    except UserExists as exc:
        existing = exc.existing
        # A retried registration for the same customer may treat this as done; anyone
        # else learns only that the email is taken.
        same = existing.customer_id is not None and existing.customer_id == body.customer_id
        extra: dict[str, Any] = {"user_id": str(existing.id)} if same else {}
        raise Problem(
            409,
            "User exists",
            "a user with this email already exists in this tenant",
            type_="https://paywall.dev/problems/user-exists",
            **extra,
        ) from None
    return UserOut(
        id=user.id,
        email=user.email,
        customer_id=user.customer_id,
        tenant_id=user.tenant_id,
        created_at=user.created_at,
    )
