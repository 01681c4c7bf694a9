"""The one settings object: every URL and secret comes from the environment.

Values left unset fall back to what `paywall stack up` started, which it records in
`<state_dir>/stack.env`; a variable set in the environment always wins, so pointing a
variable at a real server is the only change needed to run against it.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from paywall.shards import MAX_SHARDS

STATE_DIR_ENV = "PAYWALL_STATE_DIR"
LOCAL_STRIPE_KEY = "sk_test_paywall_local"
LOCAL_PII_SALT = "paywall-local-lake-salt"
# Twilio's magic "From" number: valid with test credentials only (and with the local sink).
TWILIO_TEST_FROM = "+15005550006"
# Public (they are in this file): fine on a laptop, refused in production where used.
LOCAL_SECRETS = {
    "LAKE_PII_SALT": LOCAL_PII_SALT,
    # 32 bytes, base64: public, so production refuses it (Settings.own_secret).
    "WEBHOOK_SECRETS_KEY": "cGF5d2FsbC1sb2NhbC13ZWJob29rLXNlY3JldHMtayE=",
    "PORTAL_SECRET_KEY": "cGF5d2FsbC1sb2NhbC1wb3J0YWwtc2VjcmV0LWtleSE=",
    **{
        f"{service.upper()}_CLIENT_SECRET": f"paywall-local-{service}-secret"
        for service in ("registration", "billing", "subscription", "payment")
    },
}


def state_dir() -> Path:
    """Where the local stack keeps its data, logs and pids (git-ignored)."""
    return Path(os.environ.get(STATE_DIR_ENV, ".paywall")).resolve()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file_encoding="utf-8")

    env: Literal["local", "test", "production"] = Field("local", alias="PAYWALL_ENV")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    log_format: Literal["auto", "json", "console"] = Field("auto", alias="LOG_FORMAT")

    api_host: str = Field("127.0.0.1", alias="API_HOST")
    api_port: int = Field(8000, alias="API_PORT", ge=1, le=65535)
    # Where services find each other; unset means all run in one `paywall serve` process.
    auth_issuer: str | None = Field(None, alias="AUTH_ISSUER")
    customer_service_url: str | None = Field(None, alias="CUSTOMER_SERVICE_URL")
    subscription_service_url: str | None = Field(None, alias="SUBSCRIPTION_SERVICE_URL")
    payment_service_url: str | None = Field(None, alias="PAYMENT_SERVICE_URL")
    auth_service_url: str | None = Field(None, alias="AUTH_SERVICE_URL")
    registration_service_url: str | None = Field(None, alias="REGISTRATION_SERVICE_URL")
    billing_service_url: str | None = Field(None, alias="BILLING_SERVICE_URL")
    # The first-party web app (auth's client `web`): where it may be sent back after a
    # login, comma-separated. Browsers may call the APIs from CORS_ALLOW_ORIGINS
    # (comma-separated; unset: the origins of those redirect URIs), a partner's web app
    # included.
    web_redirect_uris: Annotated[list[str], NoDecode] = Field(
        ["http://localhost:3000/callback"], alias="WEB_REDIRECT_URIS", min_length=1
    )
    cors_allow_origins: Annotated[list[str] | None, NoDecode] = Field(
        None, alias="CORS_ALLOW_ORIGINS"
    )
    # The customer portal (transactional/portal): its public base URL (unset: the API's),
    # the key that seals its session cookies and the links emails carry into it, and how
    # long such a link stays good.
    portal_url: str | None = Field(None, alias="PORTAL_URL")
    portal_secret_key: SecretStr = Field(
        SecretStr(LOCAL_SECRETS["PORTAL_SECRET_KEY"]), alias="PORTAL_SECRET_KEY"
    )
    portal_link_days: int = Field(7, alias="PORTAL_LINK_DAYS", ge=1, le=30)

    # The registration service's own OAuth client (client credentials) for calling the others.
    registration_client_id: str = Field("svc-registration", alias="REGISTRATION_CLIENT_ID")
    registration_client_secret: SecretStr = Field(
        SecretStr(LOCAL_SECRETS["REGISTRATION_CLIENT_SECRET"]), alias="REGISTRATION_CLIENT_SECRET"
    )
    # Billing's own OAuth client (the billing service's, and the billing runs' in Dagster),
    # and how many charges a billing run has in flight.
    billing_client_id: str = Field("svc-billing", alias="BILLING_CLIENT_ID")
    billing_client_secret: SecretStr = Field(
        SecretStr(LOCAL_SECRETS["BILLING_CLIENT_SECRET"]), alias="BILLING_CLIENT_SECRET"
    )
    # The subscription and payment services' own clients: each looks up the customer a
    # request names (customers:read internal) to check its tenant.
    subscription_client_id: str = Field("svc-subscription", alias="SUBSCRIPTION_CLIENT_ID")
    subscription_client_secret: SecretStr = Field(
        SecretStr(LOCAL_SECRETS["SUBSCRIPTION_CLIENT_SECRET"]), alias="SUBSCRIPTION_CLIENT_SECRET"
    )
    payment_client_id: str = Field("svc-payment", alias="PAYMENT_CLIENT_ID")
    payment_client_secret: SecretStr = Field(
        SecretStr(LOCAL_SECRETS["PAYMENT_CLIENT_SECRET"]), alias="PAYMENT_CLIENT_SECRET"
    )
    # At most 16: each charge in flight holds a database connection while it records.
    billing_payment_concurrency: int = Field(8, alias="BILLING_PAYMENT_CONCURRENCY", ge=1, le=16)
    # How many shards a billing day splits into, each its own Dagster run (paywall/shards.py).
    # Read when the code location loads; change it between billing days, not during one.
    billing_shards: int = Field(4, alias="BILLING_SHARDS", ge=1, le=MAX_SHARDS)
    # The first billing day Dagster's daily partitions offer (the go-live date in
    # production); unset, the first of last month, so a new install shows weeks, not years.
    partitions_start: date | None = Field(None, alias="PARTITIONS_START")
    # Stripe operations a second that billing's charges may spend, shared by every thread
    # and pod of every billing run (assets/billing/pacing.py); unset, the environment
    # decides (see stripe_ops_per_second).
    stripe_rate_limit: int | None = Field(None, alias="STRIPE_RATE_LIMIT", ge=1, le=10_000)
    # The Dagster UI's login (oauth2-proxy in front of it, deploy/k8s/base/dagster): an
    # authorization-code client of our auth service, registered when its secret is set.
    # Only users of the operators' tenant can log in through it.
    dagster_ui_client_secret: SecretStr | None = Field(None, alias="DAGSTER_UI_CLIENT_SECRET")
    dagster_ui_tenant: str = Field("paywall-operations", alias="DAGSTER_UI_TENANT")
    ops_alert_email: str = Field("ops@paywall.dev", alias="OPS_ALERT_EMAIL")
    service_timeout_seconds: float = Field(10.0, alias="SERVICE_TIMEOUT_SECONDS", gt=0)
    # Argon2id cost of new password and client-secret hashes. The defaults are OWASP's
    # Password Storage Cheat Sheet minimum (19 MiB, 2 passes, 1 lane): about 20 ms of one
    # core. RFC 9106's low-memory choice (64 MiB, 3 passes, 4 lanes) cost ~110 ms of CPU
    # per signup and login. Stored hashes carry their own parameters, so they verify after
    # any change here; a login rehashes a password whose parameters differ.
    argon2_memory_kib: int = Field(19 * 1024, alias="ARGON2_MEMORY_KIB", ge=7 * 1024)
    argon2_time_cost: int = Field(2, alias="ARGON2_TIME_COST", ge=1, le=20)
    argon2_parallelism: int = Field(1, alias="ARGON2_PARALLELISM", ge=1, le=16)

    database_url: str | None = Field(None, alias="DATABASE_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    kafka_bootstrap_servers: str | None = Field(None, alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_storage_bucket: str = Field("paywall-kafka", alias="KAFKA_STORAGE_BUCKET")
    # How clients reach the brokers (paywall/kafka_security.py): the local broker is
    # PLAINTEXT; MSK is SASL_SSL with SCRAM or AWS_MSK_IAM (credentials from the AWS chain,
    # e.g. IRSA), or SSL. KAFKA_SSL_CA_LOCATION: a PEM bundle, unset for the system's.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM"] | None
    ) = Field(None, alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_ca_location: str | None = Field(None, alias="KAFKA_SSL_CA_LOCATION")
    # Topic durability, applied by `paywall topics sync`; unset, the environment decides
    # (see replication_factor and min_insync_replicas).
    kafka_replication_factor: int | None = Field(None, alias="KAFKA_REPLICATION_FACTOR", ge=1)
    kafka_min_insync_replicas: int | None = Field(None, alias="KAFKA_MIN_INSYNC_REPLICAS", ge=1)
    # The daily completeness check leaves events published this recently alone: they may
    # still be in a relay batch or behind a consumer (streaming/completeness.py).
    events_grace_seconds: float = Field(300.0, alias="EVENTS_GRACE_SECONDS", ge=0)
    # Published outbox rows are deleted after this many days (`paywall housekeeping
    # outbox`); at least 2: the daily completeness check repairs yesterday from them.
    outbox_retention_days: int = Field(7, alias="OUTBOX_RETENTION_DAYS", ge=2)

    s3_endpoint_url: str | None = Field(None, alias="S3_ENDPOINT_URL")
    aws_region: str = Field("us-east-1", alias="AWS_DEFAULT_REGION")
    aws_access_key_id: str | None = Field(None, alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(None, alias="AWS_SECRET_ACCESS_KEY")
    lake_bucket: str = Field("paywall-lake", alias="LAKE_BUCKET")
    # Personal fields reach the lake only as salted hashes; production needs its own salt.
    lake_pii_salt: SecretStr = Field(SecretStr(LOCAL_PII_SALT), alias="LAKE_PII_SALT")
    lake_source: Literal["python", "kafka"] = Field("python", alias="LAKE_SOURCE")
    lake_sink: Literal["python", "parquet"] = Field("python", alias="LAKE_SINK")
    lake_max_offsets_per_trigger: int = Field(50_000, alias="LAKE_MAX_OFFSETS_PER_TRIGGER", ge=1)
    lake_trigger_seconds: float = Field(5.0, alias="LAKE_TRIGGER_SECONDS", gt=0)
    # How long a stopping stream waits for its running batch to commit: inside the pod's
    # grace period (30 s by default). A batch cut short is replayed, and writes its files
    # and manifest again.
    lake_stop_grace_seconds: float = Field(20.0, alias="LAKE_STOP_GRACE_SECONDS", ge=0)
    # Tasks per micro-batch at least; above the partition count, large Kafka ranges are split.
    # 1 (a task per partition, as the native source) is faster on the local broker, which
    # serves concurrent readers slowly (bench/lake_ingest.py: 4 → 1 took
    # a warm run from 12,400-13,000 to 14,700-16,400 events/s).
    lake_min_partitions: int = Field(1, alias="LAKE_MIN_PARTITIONS", ge=1)
    spark_master: str = Field("local[2]", alias="SPARK_MASTER")

    # The warehouse: DuckDB locally (dbt's duckdb target reads the same file), Redshift when
    # a DSN is given (loads COPY from the lake with the IAM role).
    warehouse_path: Path | None = Field(None, alias="WAREHOUSE_PATH")
    redshift_dsn: SecretStr | None = Field(None, alias="REDSHIFT_DSN")
    redshift_iam_role: str | None = Field(None, alias="REDSHIFT_IAM_ROLE")

    stripe_api_key: SecretStr | None = Field(None, alias="STRIPE_API_KEY")
    stripe_api_base: str | None = Field(None, alias="STRIPE_API_BASE")
    stripe_webhook_secret: SecretStr | None = Field(None, alias="STRIPE_WEBHOOK_SECRET")

    sendgrid_api_key: SecretStr | None = Field(None, alias="SENDGRID_API_KEY")
    sendgrid_api_host: str | None = Field(None, alias="SENDGRID_API_HOST")
    twilio_account_sid: str | None = Field(None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, alias="TWILIO_AUTH_TOKEN")
    twilio_api_base: str | None = Field(None, alias="TWILIO_API_BASE")
    # Who notices (real-time and batched) come from; production sets its own phone number.
    notify_from_email: str = Field("billing@paywall.dev", alias="NOTIFY_FROM_EMAIL")
    notify_from_phone: str = Field(TWILIO_TEST_FROM, alias="NOTIFY_FROM_PHONE")

    # Outbound webhooks (streaming/webhooks): one POST's timeout; the retry schedule
    # (3 days) multiplied by the scale (tests shrink it, nothing sleeps through it); an
    # endpoint is disabled after this many failed attempts in a row spanning these hours.
    webhook_timeout_seconds: float = Field(10.0, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=60)
    webhook_schedule_scale: float = Field(1.0, alias="WEBHOOK_SCHEDULE_SCALE", gt=0, le=1)
    webhook_disable_after_failures: int = Field(50, alias="WEBHOOK_DISABLE_AFTER_FAILURES", ge=1)
    webhook_disable_after_hours: float = Field(24.0, alias="WEBHOOK_DISABLE_AFTER_HOURS", ge=0)
    # Webhooks to private, loopback and link-local addresses (paywall/webhook_targets.py):
    # unset, refused in production and allowed elsewhere (local receivers are on loopback).
    webhook_private_targets: bool | None = Field(None, alias="WEBHOOK_PRIVATE_TARGETS")
    # Events (for GET /v1/events and replays) and delivery logs are kept this long (Stripe
    # keeps 30 days); `paywall housekeeping webhooks` deletes what is older.
    webhook_retention_days: int = Field(30, alias="WEBHOOK_RETENTION_DAYS", ge=4)
    # Seals endpoints' signing secrets at rest (paywall/secret_box.py).
    webhook_secrets_key: SecretStr = Field(
        SecretStr(LOCAL_SECRETS["WEBHOOK_SECRETS_KEY"]), alias="WEBHOOK_SECRETS_KEY"
    )

    datadog_api_key: SecretStr | None = Field(None, alias="DD_API_KEY")
    # Where batch runs (billing) push their metrics for Prometheus; unset: not pushed.
    pushgateway_url: str | None = Field(None, alias="PUSHGATEWAY_URL")
    # Datadog's site (datadoghq.eu, us5.datadoghq.com, ...), or the log intake's whole URL
    # (a proxy, or the loopback stand-in in paywall/stack/datadog_intake.py).
    datadog_site: str = Field("datadoghq.com", alias="DD_SITE")
    datadog_logs_url: str | None = Field(None, alias="DD_LOGS_URL")

    @field_validator(
        "database_url",
        "redis_url",
        "kafka_bootstrap_servers",
        "s3_endpoint_url",
        "stripe_api_base",
        "sendgrid_api_host",
        "twilio_api_base",
        "pushgateway_url",
        "datadog_logs_url",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_ca_location",
        "partitions_start",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://", "postgresql+")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @field_validator("stripe_api_key")
    @classmethod
    def _stripe_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        # A publishable key (pk_) here would leak into logs and fail every call.
        if value and not value.get_secret_value().startswith(("sk_", "rk_")):
            raise ValueError("must be a secret (sk_…) or restricted (rk_…) key")
        return value

    def own_secret(self, name: str) -> SecretStr:
        """The secret set in variable `name`; production refuses its public local default.

        Checked where a secret is used, not when settings load: each pod gets only the
        secrets it needs, and one without (say) billing's secret must still start.
        """
        field = _FIELDS_BY_ALIAS[name]
        value: SecretStr = getattr(self, field)
        if self.is_production and value.get_secret_value() == LOCAL_SECRETS[name]:
            from paywall.errors import ConfigError

            raise ConfigError(name, "production must set its own; the local default is public")
        return value

    def service_client(self, service: str) -> tuple[str, SecretStr]:
        """A service's own OAuth client: (client id, secret), for client credentials."""
        client_id: str = getattr(self, f"{service}_client_id")
        return client_id, self.own_secret(f"{service.upper()}_CLIENT_SECRET")

    @model_validator(mode="after")
    def _acknowledged_writes_survive_a_broker(self) -> Settings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                "KAFKA_MIN_INSYNC_REPLICAS: more than KAFKA_REPLICATION_FACTOR; "
                "every acks=all write would be refused"
            )
        if self.is_production and self.min_insync_replicas < 2:
            raise ValueError(
                "KAFKA_MIN_INSYNC_REPLICAS: production needs 2 or more, or one broker's "
                "loss can lose acknowledged events"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_is_coherent(self) -> Settings:
        from paywall.kafka_security import refusal

        problem = refusal(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def first_partition_day(self) -> date:
        if self.partitions_start is not None:
            return self.partitions_start
        # Unset (a laptop, the demo): the first of the month three months back, where the
        # demo's story starts (paywall/cli/demo_story.py). Production sets its go-live day.
        first = datetime.now(UTC).date().replace(day=1)
        for _ in range(3):
            first = (first - timedelta(days=1)).replace(day=1)
        return first

    @property
    def replication_factor(self) -> int:
        """Copies of each topic: production keeps 3 and, with the producers' acks=all,
        acknowledges a write once `min_insync_replicas` (2) hold it, so one lost broker
        loses no acknowledged event. Elsewhere the default is the local broker's only copy:
        PAYWALL_ENV already names the environment (the deploy ConfigMap sets both too)."""
        return self.kafka_replication_factor or (3 if self.is_production else 1)

    @property
    def min_insync_replicas(self) -> int:
        return self.kafka_min_insync_replicas or (2 if self.is_production else 1)

    @field_validator("web_redirect_uris", "cors_allow_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        for origin in value or []:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return value

    @property
    def cors_origins(self) -> list[str]:
        """The browser origins the APIs answer (CORS)."""
        if self.cors_allow_origins is not None:
            return self.cors_allow_origins
        origins = (urlsplit(uri) for uri in self.web_redirect_uris)
        return list(dict.fromkeys(f"{o.scheme}://{o.netloc}" for o in origins))

    @property
    def allows_private_webhook_targets(self) -> bool:
        if self.webhook_private_targets is not None:
            return self.webhook_private_targets
        return not self.is_production

    @property
    def stripe_ops_per_second(self) -> int:
        """Stripe's global limit for the mode the environment's key is in: 100 operations a
        second in live mode (production), 25 in test mode (everywhere else). An account
        that Stripe has granted more, or that must leave room for signups, sets its own."""
        return self.stripe_rate_limit or (100 if self.is_production else 25)

    @property
    def api_base_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def issuer(self) -> str:
        """The OIDC issuer: tokens carry it, verifiers insist on it."""
        return (self.auth_issuer or self.api_base_url).rstrip("/")

    @property
    def portal_base_url(self) -> str:
        """Where customers reach the portal (its pages live under /portal)."""
        return (self.portal_url or self.api_base_url).rstrip("/")

    def service_url(self, service: str) -> str:
        given: str | None = getattr(self, f"{service}_service_url")
        return (given or self.api_base_url).rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def masked(self) -> dict[str, str]:
        """Every setting by its environment name, secrets and URL passwords hidden."""
        out: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            key = field.alias or name.upper()
            if value is None:
                out[key] = "(unset)"
            elif isinstance(value, SecretStr):
                out[key] = _mask(value.get_secret_value())
            else:
                out[key] = _mask_url_password(str(value))
        return out


_FIELDS_BY_ALIAS = {f.alias: name for name, f in Settings.model_fields.items() if f.alias}


def _mask(secret: str) -> str:
    return "****" if len(secret) <= 8 else f"{secret[:4]}…****"


def _mask_url_password(value: str) -> str:
    # postgresql://user:secret@host → postgresql://user:****@host
    scheme, sep, rest = value.partition("://")
    if not sep or "@" not in rest:
        return value
    creds, _, host = rest.rpartition("@")
    if ":" not in creds:
        return value
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:****@{host}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, then from what the local stack started."""
    return Settings(_env_file=state_dir() / "stack.env")  # type: ignore[call-arg]


def reset_settings() -> None:
    """Forget the cached settings (after the stack wrote new URLs, or in tests)."""
    get_settings.cache_clear()
