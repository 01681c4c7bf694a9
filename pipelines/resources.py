"""Resources, built once per environment from settings (never module globals).

Plain objects passed as `ResourceParam[...]`: their secrets stay out of Dagster's run
config and UI. Each builds its clients lazily, so loading the code location needs no
running servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import duckdb
from sqlalchemy import Engine

from assets.warehouse.base import Warehouse
from assets.warehouse.config import WarehouseConfig, warehouse_config
from assets.warehouse.loader import warehouse_from_config
from paywall import clients, db
from paywall.service_client import ServiceClient, TokenSource, service_tokens
from paywall.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

SENDER_EMAIL = "billing@paywall.dev"
SENDER_PHONE = "+15005550006"
SENDGRID_MAX_PERSONALIZATIONS = 1000


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
    def payment(self) -> ServiceClient:
        return ServiceClient("payment", self.settings, self.tokens)

    @cached_property
    def registration(self) -> ServiceClient:
        return ServiceClient("registration", self.settings, self.tokens)


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str
    dedupe_key: str


class Senders:
    """The real SendGrid and Twilio SDKs (pointed at the local sink when it runs)."""

    def __init__(self, settings: Settings, ops_email: str) -> None:
        self.settings = settings
        self.ops_email = ops_email

    def email_batch(self, emails: list[Email]) -> str:
        """Up to 1000 personalized emails in one SendGrid call; the batch's message id."""
        from sendgrid.helpers.mail import (
            Content,
            CustomArg,
            From,
            Mail,
            Personalization,
            Substitution,
            To,
        )

        if not 0 < len(emails) <= SENDGRID_MAX_PERSONALIZATIONS:
            raise ValueError(f"a batch holds 1 to {SENDGRID_MAX_PERSONALIZATIONS} emails")
        mail = Mail()
        mail.from_email = From(SENDER_EMAIL)
        # One body for all; each personalization carries its own subject and values.
        mail.add_content(Content("text/plain", "-body-"))
        for email in emails:
            p = Personalization()
            p.add_to(To(email.to))
            p.subject = email.subject
            p.add_substitution(Substitution("-body-", email.body))
            p.add_custom_arg(CustomArg("dedupe_key", email.dedupe_key))
            mail.add_personalization(p)
        resp = clients.sendgrid_client(self.settings).send(mail)
        return str(resp.headers.get("X-Message-Id", ""))

    def sms(self, to: str, body: str) -> str:
        sent = clients.twilio_client(self.settings).messages.create(
            to=to, from_=SENDER_PHONE, body=body
        )
        return str(sent.sid)

    def alert(self, subject: str, body: str) -> str:
        return self.email_batch([Email(self.ops_email, subject, body, f"alert:{subject}")])


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource the code location needs, for the environment `settings` describe."""
    return {
        "database": Database(settings),
        "lake": Lake(settings),
        "services": Services(settings),
        "senders": Senders(settings, settings.ops_alert_email),
        "warehouse": WarehouseResource(settings),
        "dbt": dbt_resource(settings),
    }


class WarehouseResource:
    """The analytics warehouse (DuckDB file locally, Redshift when REDSHIFT_DSN is set): the
    loader's `Warehouse`, the environment dbt runs with, and read queries for the checks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def config(self) -> WarehouseConfig:
        return warehouse_config(self.settings)

    @cached_property
    def warehouse(self) -> Warehouse:
        return warehouse_from_config(self.settings, self.config)

    def dbt_env(self) -> dict[str, str]:
        """What dbt's profiles.yml reads from the environment, from settings."""
        dsn = self.config.redshift_dsn
        if dsn is None:
            return {"DBT_TARGET": "duckdb", "WAREHOUSE_PATH": str(self.config.duckdb_path)}
        return {
            "DBT_TARGET": "redshift",
            "DBT_REDSHIFT_HOST": dsn.host,
            "DBT_REDSHIFT_PORT": str(dsn.port),
            "DBT_REDSHIFT_USER": dsn.user,
            "DBT_REDSHIFT_PASSWORD": dsn.password,
            "DBT_REDSHIFT_DBNAME": dsn.database,
        }

    def query(self, sql: str) -> pd.DataFrame:
        """A read-only query as a DataFrame (for the data-quality checks)."""
        import pandas as pd

        dsn = self.config.redshift_dsn
        if dsn is None:
            with duckdb.connect(str(self.config.duckdb_path), read_only=True) as con:
                con.execute("SET TimeZone = 'UTC'")
                return con.execute(sql).df()
        from assets.warehouse.redshift import redshift_connect

        conn = redshift_connect(dsn)
        try:
            cur = conn.cursor()
            cur.execute(sql)
            names = [d[0] for d in cur.description]
            return pd.DataFrame.from_records(list(cur.fetchall()), columns=names)
        finally:
            conn.close()


def dbt_resource(settings: Settings) -> Any:
    """dagster-dbt's CLI resource on the repo's dbt project, on the warehouse's target."""
    from dagster_dbt import DbtCliResource

    from assets.warehouse.assets import DBT_EXECUTABLE, dbt_project

    return DbtCliResource(
        project_dir=dbt_project,
        target=warehouse_config(settings).kind,
        dbt_executable=DBT_EXECUTABLE,
    )
