"""Request and response bodies of the webhooks API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from streaming.webhooks.store import PARTNER_DOMAINS
from transactional.common.pagination import Page

# An event type (`subscription.canceled`) or a whole domain (`subscription.*`), of the
# domains partners hear of (streaming/webhooks/store.py).
EventType = Annotated[
    str,
    StringConstraints(pattern=rf"^({'|'.join(PARTNER_DOMAINS)})\.([a-z_]+|\*)$", max_length=100),
]
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _iso_only(value: Any) -> Any:
    # pydantic reads a number as Unix time; the API documents RFC 3339 date-times only.
    if isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("an RFC 3339 date-time with its offset, such as 2026-11-30T00:00:00Z")
    return value


# A moment as partners name one: an RFC 3339 date-time with its offset.
Moment = Annotated[AwareDatetime, BeforeValidator(_iso_only)]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://partner.example.com/paywall/webhooks",
                    "event_types": ["subscription.*", "invoice.paid"],
                    "contact_email": "ops@partner.example.com",
                }
            ]
        },
    )

    url: AnyHttpUrl = Field(description="Where events are POSTed (https in production)")
    description: Annotated[str, StringConstraints(max_length=200)] | None = None
    event_types: list[EventType] = Field(
        default_factory=list,
        max_length=50,
        description="Event types, or `domain.*`; empty: every partner event",
    )
    contact_email: EmailStr | None = Field(
        None, description="Told by email if the endpoint is disabled after repeated failures"
    )
    tenant_id: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None,
        description="Internal services name any tenant; others may only name their own "
        "(or leave it out: they always get their own).",
    )

    @field_validator("url")
    @classmethod
    def _short_url(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(url)) > 2000:
            raise ValueError("at most 2000 characters")
        return url

    @field_validator("event_types")
    @classmethod
    def _once_each(cls, types: list[str]) -> list[str]:
        return sorted(set(types))


class Endpoint(BaseModel):
    id: UUID
    tenant_id: str
    url: str
    description: str | None
    event_types: list[str]
    contact_email: str | None
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(Endpoint):
    secret: str | None = Field(
        description="The signing secret (Standard Webhooks, `whsec_…`), shown once, here and "
        "on rotation. A replayed create answers null (rotate it if the first answer was lost).",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


EndpointPage = Page[Endpoint]


class ReplayEvent(BaseModel):
    """One event again, to this endpoint."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"event_id": "0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d"}]},
    )

    event_id: UUID


class ReplayRange(BaseModel):
    """Every event of the tenant that occurred in [since, until), to this endpoint."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"since": "2026-11-30T00:00:00Z", "until": "2026-11-30T12:00:00Z"}]
        },
    )

    since: Moment = Field(description="Events that occurred at or after")
    until: Moment | None = Field(None, description="Events that occurred before (default: now)")


Replay = ReplayEvent | ReplayRange


class Replayed(BaseModel):
    deliveries: int = Field(description="Deliveries queued (the event(s) the endpoint takes)")


class Attempt(BaseModel):
    event_id: UUID
    event_type: str
    attempt: int
    status_code: int | None
    duration_ms: int
    error: str | None
    attempted_at: datetime


AttemptPage = Page[Attempt]


class Event(BaseModel):
    id: UUID
    type: str
    schema_version: int
    occurred_at: datetime
    data: dict[str, Any]


EventPage = Page[Event]
