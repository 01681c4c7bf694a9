"""What the admin API takes and answers: tenants, and the clients an operator manages."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from transactional.auth.clients import check_redirect_uri
from transactional.common.security import PARTNER_SCOPES

TENANT_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        pattern=TENANT_ID,
        description="Lower-case letters, digits and dashes; the `tenant_id` in its tokens",
        examples=["acme"],
    )
    name: str = Field(min_length=1, max_length=200, examples=["Acme Inc."])


class Tenant(BaseModel):
    id: str = Field(examples=["acme"])
    name: str = Field(examples=["Acme Inc."])
    created_at: datetime


class TenantPage(BaseModel):
    data: list[Tenant]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class ClientCreate(BaseModel):
    """A confidential client for a partner's backend (grant client_credentials), or, with
    `redirect_uris`, a login client for its web or mobile app (see that field)."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(
        pattern=TENANT_ID,
        description="The tenant it acts for; none only for an operator client (scope admin)",
        examples=["acme"],
    )
    name: str = Field(min_length=1, max_length=200, examples=["Acme backend"])
    scopes: list[str] = Field(
        default_factory=lambda: sorted(PARTNER_SCOPES),
        min_length=1,
        max_length=20,
        description="A tenant's client: partner scopes; an operator client: admin",
        examples=[["registrations:write", "subscriptions:read"]],
    )
    redirect_uris: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="A login client: the tenant's customers sign in through it (authorization "
        "code with PKCE, refresh tokens; no secret) and are sent back only to these URIs. It "
        "holds its users' scopes, so `scopes` is left out. Empty: a backend client.",
        examples=[["https://app.acme.com/callback"]],
    )

    @field_validator("redirect_uris")
    @classmethod
    def _absolute(cls, uris: list[str]) -> list[str]:
        for uri in uris:
            check_redirect_uri(uri)
        return list(dict.fromkeys(uris))

    @model_validator(mode="after")
    def _login_client(self) -> ClientCreate:
        if self.redirect_uris and self.tenant_id is None:
            raise ValueError("a login client (redirect_uris) belongs to a tenant")
        if self.redirect_uris and "scopes" in self.model_fields_set:
            raise ValueError("a login client holds its users' scopes: leave scopes out")
        return self


class ClientOut(BaseModel):
    client_id: str = Field(examples=["acme-3f9c1a2b7d"])
    name: str = Field(examples=["Acme backend"])
    tenant_id: str | None = Field(examples=["acme"])
    scopes: list[str] = Field(examples=[["registrations:write", "subscriptions:read"]])
    grant_types: list[str] = Field(examples=[["client_credentials"]])
    redirect_uris: list[str] = Field(default_factory=list, examples=[[]])
    created_at: datetime
    disabled_at: datetime | None = None


class ClientWithSecret(ClientOut):
    client_secret: str | None = Field(
        description="Shown once, here: only its hash is kept. A replayed create answers "
        "null (rotate the secret if the first answer was lost), as does a login client, "
        "which has none.",
        examples=["kq1V7m2Yd4…"],
    )


class ClientPage(BaseModel):
    data: list[ClientOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")
