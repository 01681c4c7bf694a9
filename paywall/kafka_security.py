"""How every Kafka client authenticates and encrypts: one description, three dialects.

From the KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_* settings, `KafkaSecurity`
gives librdkafka's settings (relay, consumers, admin, the Python lake source), the Java
client's `kafka.*` options for Spark's native source, and plain string options for the
Python source's executors. AWS MSK IAM is SASL/OAUTHBEARER for librdkafka, with a token
signed by `aws-msk-iam-sasl-signer-python` from the default AWS credentials chain (IRSA on
EKS), and the `AWS_MSK_IAM` mechanism of the aws-msk-iam-auth jar for the Java client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paywall.settings import Settings

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
IAM = "AWS_MSK_IAM"
MSK_IAM_PACKAGE = "software.amazon.msk.auth.iam"  # the aws-msk-iam-auth jar's
_JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
_OPTION_PREFIX = "kafka_security_"


def refusal(settings: Settings) -> str | None:
    """Why these settings cannot make a working, safe client (one line), or None."""
    protocol, mechanism = settings.kafka_security_protocol, settings.kafka_sasl_mechanism
    has_credentials = bool(settings.kafka_sasl_username or settings.kafka_sasl_password)
    if mechanism and protocol not in SASL_PROTOCOLS:
        return f"KAFKA_SASL_MECHANISM: {mechanism} needs KAFKA_SECURITY_PROTOCOL SASL_SSL"
    if protocol in SASL_PROTOCOLS and not mechanism:
        return f"KAFKA_SASL_MECHANISM: unset; {protocol} needs PLAIN, SCRAM-SHA-* or AWS_MSK_IAM"
    if mechanism == IAM:
        if protocol != "SASL_SSL":
            return "KAFKA_SECURITY_PROTOCOL: AWS_MSK_IAM works over SASL_SSL only"
        if has_credentials:
            return (
                "KAFKA_SASL_USERNAME: AWS_MSK_IAM signs with the AWS credentials chain; "
                "unset KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
    elif mechanism and not (settings.kafka_sasl_username and settings.kafka_sasl_password):
        return f"KAFKA_SASL_PASSWORD: {mechanism} needs KAFKA_SASL_USERNAME and the password"
    if has_credentials and not mechanism:
        return "KAFKA_SASL_MECHANISM: unset, yet KAFKA_SASL_USERNAME/PASSWORD are given"
    if settings.kafka_ssl_ca_location and protocol not in TLS_PROTOCOLS:
        return f"KAFKA_SSL_CA_LOCATION: {protocol} does not use TLS; use SSL or SASL_SSL"
    if settings.is_production and mechanism == "PLAIN" and protocol == "SASL_PLAINTEXT":
        return "KAFKA_SECURITY_PROTOCOL: PLAIN over SASL_PLAINTEXT sends the password in clear"
    return None


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_location: str | None = None
    region: str = "us-east-1"  # MSK IAM signs for the cluster's region

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        password = settings.kafka_sasl_password
        return cls(
            protocol=settings.kafka_security_protocol,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            ca_location=settings.kafka_ssl_ca_location,
            region=settings.aws_region,
        )

    def librdkafka(self) -> dict[str, Any]:
        """confluent-kafka (librdkafka) settings; nothing for the plaintext local broker."""
        conf: dict[str, Any] = {}
        if self.protocol == "PLAINTEXT":
            return conf
        conf["security.protocol"] = self.protocol
        if self.ca_location:
            conf["ssl.ca.location"] = self.ca_location
        if self.mechanism == IAM:
            conf["sasl.mechanism"] = "OAUTHBEARER"
            conf["oauth_cb"] = _msk_iam_token(self.region)
        elif self.mechanism:
            conf["sasl.mechanism"] = self.mechanism
            conf["sasl.username"] = self.username
            conf["sasl.password"] = self.password
        return conf

    def spark_kafka_options(self) -> dict[str, str]:
        """Options for Spark's native `kafka` source (the Java client, `kafka.` prefixed).

        Spark redacts option values whose keys match `spark.redaction.regex` (password,
        secret, token...); `kafka.sasl.jaas.config` holds the password, as Spark's Kafka
        guide has it, so keep it off anything that prints options."""
        if self.protocol == "PLAINTEXT":
            return {}
        options = {"kafka.security.protocol": self.protocol}
        if self.ca_location:
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.location"] = self.ca_location
        if self.mechanism == IAM:
            # Needs the aws-msk-iam-auth jar on the driver's and executors' classpath.
            options["kafka.sasl.mechanism"] = IAM
            options["kafka.sasl.jaas.config"] = f"{MSK_IAM_PACKAGE}.IAMLoginModule required;"
            options["kafka.sasl.client.callback.handler.class"] = (
                f"{MSK_IAM_PACKAGE}.IAMClientCallbackHandler"
            )
        elif self.mechanism:
            options["kafka.sasl.mechanism"] = self.mechanism
            options["kafka.sasl.jaas.config"] = (
                f"{_JAAS_MODULES[self.mechanism]} required "
                f'username="{_jaas_quote(self.username)}" '
                f'password="{_jaas_quote(self.password)}";'
            )
        return options

    def as_options(self) -> dict[str, str]:
        """Plain string options that carry this to the Python source's executors."""
        return {f"{_OPTION_PREFIX}{k}": str(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> KafkaSecurity:
        given = {
            key.removeprefix(_OPTION_PREFIX): value
            for key, value in options.items()
            if key.startswith(_OPTION_PREFIX)
        }
        return cls(**given)


def _jaas_quote(value: str | None) -> str:
    return (value or "").replace("\\", "\\\\").replace('"', '\\"')


def _msk_iam_token(region: str) -> Any:
    def token(_config: str) -> tuple[str, float]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        value, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return value, expiry_ms / 1000  # librdkafka wants seconds since the epoch

    return token
