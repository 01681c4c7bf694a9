"""Resources several domains share: the Postgres database, the lake bucket and the services'
HTTP clients. A domain's own resources live beside its assets (`assets/<domain>/`); the code
location (`pipelines/resources.py`) builds them all, once, for the environment settings
describe.

Plain objects passed as `ResourceParam[...]`: their secrets stay out of Dagster's run
config and UI. Each builds its clients lazily, so loading the code location needs no
running servers.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from paywall import clients, db
from paywall.service_client import ServiceClient, TokenSource, service_tokens
from paywall.settings import Settings


class Database:
    """The platform's Postgres; each asset touches only its own domain's schema."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        return db.engine(self.settings)


class Lake:
    """The S3 data lake bucket (moto locally)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.lake_bucket

    @cached_property
    def client(self) -> Any:
        if not self.settings.is_production:
            clients.ensure_bucket(self.settings, self.bucket)  # real buckets come from IaC
        return clients.s3_client(self.settings)


class Services:
    """Typed HTTP clients for the services, as the code location's own client (billing's)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.payment_concurrency = settings.billing_payment_concurrency

    @cached_property
    def tokens(self) -> TokenSource:
        return service_tokens(self.settings, "billing")

    @cached_property
    def subscription(self) -> ServiceClient:
        return ServiceClient("subscription", self.settings, self.tokens)

    @cached_property
    def customer(self) -> ServiceClient:
        return ServiceClient("customer", self.settings, self.tokens)

    @cached_property
    def payment(self) -> ServiceClient:
        return ServiceClient("payment", self.settings, self.tokens)

    @cached_property
    def registration(self) -> ServiceClient:
        return ServiceClient("registration", self.settings, self.tokens)

    @cached_property
    def billing(self) -> ServiceClient:
        return ServiceClient("billing", self.settings, self.tokens)
