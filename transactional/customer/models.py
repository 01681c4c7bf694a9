"""Request and response bodies of the customer API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# E.164: a plus and up to 15 digits, what Twilio accepts.
Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]


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
    marketing_opt_in: bool = False
    tenant_id: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None,
        description="Internal services name any tenant; others may only name their own "
        "(or leave it out: they always get their own).",
    )


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Ada L."}]})

    name: Name | None = None
    phone: Phone | None = Field(None, description="null removes the phone number")
    marketing_opt_in: bool | None = None

    @model_validator(mode="after")
    def _only_phone_may_be_cleared(self) -> CustomerUpdate:
        for field in ("name", "marketing_opt_in"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class Customer(BaseModel):
    id: UUID
    tenant_id: str | None
    email: str
    name: str | None
    phone: str | None
    marketing_opt_in: bool
    status: str
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None = None


class CustomerPage(BaseModel):
    data: list[Customer]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")
