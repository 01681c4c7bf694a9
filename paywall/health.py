"""Is each part of the stack reachable with the configured settings?

A failure names the setting to fix, in one line; nothing here writes anything except
the lake bucket, which a fresh local S3 does not have yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from paywall.errors import ConfigError
from paywall.settings import Settings


@dataclass
class Health:
    part: str
    ok: bool
    detail: str
    seconds: float


def check_postgres(settings: Settings) -> str:
    import psycopg

    url = _required(settings.database_url, "DATABASE_URL")
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise ConfigError("DATABASE_URL", _first_line(exc)) from exc
    return f"PostgreSQL {row[0] if row else '?'}"


def check_redis(settings: Settings) -> str:
    import redis

    url = _required(settings.redis_url, "REDIS_URL")
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        client.set("paywall:health", "ok", ex=10)
        info = client.info("server")
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError("REDIS_URL", _first_line(exc)) from exc
    return f"Redis {info.get('redis_version', '?')}"


def check_kafka(settings: Settings) -> str:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    servers = _required(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    from paywall.clients import kafka_config

    # log_level 0: an unreachable broker is reported once, by us, not retried on stderr.
    admin = AdminClient(kafka_config(settings, log_level=0))
    try:
        meta = admin.list_topics(timeout=5)
    except KafkaException as exc:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS", f"no broker answers at {servers}") from exc
    return f"{len(meta.brokers)} broker(s), {len(meta.topics)} topic(s)"


def check_s3(settings: Settings) -> str:
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    from paywall.clients import ensure_bucket

    try:
        ensure_bucket(settings, settings.lake_bucket)
    except EndpointConnectionError as exc:
        raise ConfigError("S3_ENDPOINT_URL", _first_line(exc)) from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        setting = "AWS_SECRET_ACCESS_KEY" if "Signature" in code else "AWS_ACCESS_KEY_ID"
        raise ConfigError(setting, f"S3 refused the credentials ({code})") from exc
    except BotoCoreError as exc:
        raise ConfigError("S3_ENDPOINT_URL", _first_line(exc)) from exc
    return f"bucket {settings.lake_bucket} ready"


def check_stripe(settings: Settings) -> str:
    import stripe

    from paywall.clients import stripe_client

    try:
        stripe_client(settings).v1.customers.list(params={"limit": 1})
    except stripe.AuthenticationError as exc:
        raise ConfigError("STRIPE_API_KEY", "Stripe rejected the key") from exc
    except stripe.APIConnectionError as exc:
        setting = "STRIPE_API_BASE" if settings.stripe_api_base else "STRIPE_API_KEY"
        raise ConfigError(setting, "Stripe is unreachable") from exc
    where = settings.stripe_api_base or "api.stripe.com"
    return f"Stripe API at {where}"


def check_messaging(settings: Settings) -> str:
    """The local sink answers, or the real SendGrid accepts the key."""
    host = settings.sendgrid_api_host
    key = settings.sendgrid_api_key
    if host and "sendgrid.com" not in host:
        try:
            httpx.get(f"{host}/healthz", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise ConfigError("SENDGRID_API_HOST", f"sink unreachable at {host}") from exc
        return f"email/SMS sink at {host}"
    if key is None:
        raise ConfigError("SENDGRID_API_KEY", "unset; run `paywall stack up` or set it")
    resp = httpx.get(
        "https://api.sendgrid.com/v3/scopes",
        headers={"Authorization": f"Bearer {key.get_secret_value()}"},
        timeout=10,
    )
    if resp.status_code in (401, 403):
        raise ConfigError("SENDGRID_API_KEY", "SendGrid rejected the key")
    return "SendGrid API"


CHECKS: dict[str, Callable[[Settings], str]] = {
    "postgres": check_postgres,
    "redis": check_redis,
    "kafka": check_kafka,
    "s3": check_s3,
    "stripe": check_stripe,
    "email/sms": check_messaging,
}


def check_all(settings: Settings) -> list[Health]:
    out = []
    for part, check in CHECKS.items():
        start = time.perf_counter()
        try:
            detail, ok = check(settings), True
        except ConfigError as exc:
            detail, ok = str(exc), False
        out.append(Health(part, ok, detail, time.perf_counter() - start))
    return out


def _required(value: str | None, setting: str) -> str:
    if not value:
        raise ConfigError(setting, "unset; run `paywall stack up` or set it")
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
