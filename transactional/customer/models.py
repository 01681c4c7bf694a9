"""Request and response bodies of the customer API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool, StringConstraints

from transactional.common.pagination import Page
from transactional.common.text import non_blank

Name = Annotated[str, non_blank(200)]
# E.164: a plus and up to 15 ASCII digits, what Twilio accepts (`\d` would take any
# script's digits in pydantic, and only ASCII ones in the JSON Schema of the OpenAPI).
Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]


class Address(BaseModel):
    """The billing address as far as tax needs it: billing picks the tenant's tax rate by it."""

    model_config = ConfigDict(extra="forbid")

    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2, upper case"
    )
    region: Annotated[str, StringConstraints(min_length=1, max_length=50)] | None = Field(
        None, description="A state or province code, where the tax rate depends on it"
    )


class CustomerCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "name": "Ada Lovelace",
                    "phone": "+447700900123",
                    "marketing_opt_in": True,
                }
            ]
        },
    )

    email: EmailStr
    name: Name
    phone: Phone | None = None
    marketing_opt_in: StrictBool = False
    address: Address | None = None
    tenant_id: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None,
        description="Internal services name any tenant; others may only name their own "
        "(or leave it out: they always get their own).",
    )


def _no_default(schema: dict[str, Any]) -> None:
    # Left out means unchanged; the schema must not offer null, which is refused.
    schema.pop("default", None)


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Ada L."}]})

    # Only the phone may be cleared (null); the others are left out to keep them.
    name: Name = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]
    phone: Phone | None = Field(None, description="null removes the phone number")
    marketing_opt_in: StrictBool = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]
    address: Address | None = Field(None, description="null removes the address")


class Customer(BaseModel):
    id: UUID
    tenant_id: str | None
    email: str
    name: str | None
    phone: str | None
    marketing_opt_in: bool
    address: Address | None = None
    status: str
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None = None


CustomerPage = Page[Customer]
