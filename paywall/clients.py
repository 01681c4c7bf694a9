"""Clients for the stack's servers, built from settings only (one way to reach each)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from paywall.settings import Settings

if TYPE_CHECKING:
    import stripe


def s3_client(settings: Settings) -> Any:
    import boto3

    secret = settings.aws_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
    )


def ensure_bucket(settings: Settings, bucket: str) -> None:
    client = s3_client(settings)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


def kafka_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for every producer, consumer and admin client: the brokers,
    then TLS and SASL (paywall/kafka_security.py), then the client's own."""
    from paywall.kafka_security import KafkaSecurity

    if not settings.kafka_bootstrap_servers:
        from paywall.errors import ConfigError

        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS", "unset; run `paywall stack up` or set it")
    security = KafkaSecurity.from_settings(settings).librdkafka()
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, **security, **extra}


# Stripe's test numbers: one it charges, one it attaches but declines when charged (402).
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"


def make_test_card(settings: Settings, number: str = GOOD_CARD) -> str:
    """A new test payment method (pm_…) for the card `number` on the configured Stripe."""
    method = stripe_client(settings).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return str(method.id)


def stripe_client(settings: Settings) -> stripe.StripeClient:
    import stripe

    from paywall.settings import LOCAL_STRIPE_KEY

    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else None
    base = settings.stripe_api_base
    if base:
        return stripe.StripeClient(
            key or LOCAL_STRIPE_KEY,
            base_addresses={"api": base, "files": base, "connect": base},
            max_network_retries=2,
        )
    if not key:
        from paywall.errors import ConfigError

        raise ConfigError("STRIPE_API_KEY", "unset; run `paywall stack up` or set it")
    return stripe.StripeClient(key, max_network_retries=2)


def sendgrid_client(settings: Settings) -> Any:
    from sendgrid import SendGridAPIClient

    key = settings.sendgrid_api_key
    if key is None:
        from paywall.errors import ConfigError

        raise ConfigError("SENDGRID_API_KEY", "unset; run `paywall stack up` or set it")
    host = settings.sendgrid_api_host or "https://api.sendgrid.com"
    return SendGridAPIClient(api_key=key.get_secret_value(), host=host)


def twilio_client(settings: Settings) -> Any:
    token = settings.twilio_auth_token
    if not settings.twilio_account_sid or token is None:
        from paywall.errors import ConfigError

        raise ConfigError("TWILIO_AUTH_TOKEN", "unset; run `paywall stack up` or set it")
    return twilio_rest_client(
        settings.twilio_account_sid, token.get_secret_value(), settings.twilio_api_base
    )


def twilio_rest_client(account_sid: str, auth_token: str, api_base: str | None = None) -> Any:
    """A real `twilio.rest.Client`; with `api_base`, every request goes there instead of
    *.twilio.com (TWILIO_API_BASE: the local sink, or a proxy)."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    if not api_base:
        return Client(account_sid, auth_token)
    base = api_base.rstrip("/")

    class RebasedHttpClient(TwilioHttpClient):
        # Rewriting at the transport keeps every SDK resource working; the SDK has no base
        # URL setting, and patching one domain's base_url would miss the others.
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            parts = urlsplit(url)
            if parts.hostname and parts.hostname.endswith("twilio.com"):
                url = base + parts.path + (f"?{parts.query}" if parts.query else "")
            return super().request(method, url, *args, **kwargs)

    return Client(account_sid, auth_token, http_client=RebasedHttpClient())
