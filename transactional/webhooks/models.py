"""Request and response bodies of the webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from streaming.webhooks.store import PARTNER_DOMAINS

# An event type (`subscription.canceled`) or a whole domain (`subscription.*`).
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.([a-z_]+|\*)$", max_length=100)]
PAGE_NOTE = "Pass as `cursor` for the next page"


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
    def _partner_types(cls, types: list[str]) -> list[str]:
        for kind in types:
            if kind.split(".", 1)[0] not in PARTNER_DOMAINS:
                raise ValueError(f"{kind}: partners hear of {', '.join(PARTNER_DOMAINS)} events")
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


class EndpointPage(BaseModel):
    data: list[Endpoint]
    next_cursor: str | None = Field(None, description=PAGE_NOTE)


class Replay(BaseModel):
    """One event again, or every event of a time range, to this endpoint."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"since": "2026-11-30T00:00:00Z", "until": "2026-11-30T12:00:00Z"}]
        },
    )

    event_id: UUID | None = None
    since: datetime | None = Field(None, description="Events that occurred at or after")
    until: datetime | None = Field(None, description="Events that occurred before (default: now)")

    @model_validator(mode="after")
    def _one_way(self) -> Replay:
        if (self.event_id is None) == (self.since is None):
            raise ValueError("name either event_id or since (and maybe until)")
        if self.since and self.until and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


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


class AttemptPage(BaseModel):
    data: list[Attempt]
    next_cursor: str | None = Field(None, description=PAGE_NOTE)


class Event(BaseModel):
    id: UUID
    type: str
    schema_version: int
    occurred_at: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    data: list[Event]
    next_cursor: str | None = Field(None, description=PAGE_NOTE)
