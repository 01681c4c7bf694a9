"""Kafka TLS, SASL and MSK IAM settings: what each client gets, and what is refused."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError

from paywall.clients import kafka_config
from paywall.kafka_security import KafkaSecurity
from paywall.settings import Settings
from paywall.stack.process import free_port
from streaming.lake.config import lake_config

REPO = Path(__file__).resolve().parents[2]
SCRAM = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "paywall",
    "KAFKA_SASL_PASSWORD": 'pa"ss\\word',
}
IAM = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"}


def make(**env: str) -> Settings:
    base = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    return Settings(_env_file=None, **{**base, **env})  # type: ignore[call-arg, arg-type]


def security(settings: Settings) -> dict[str, Any]:
    conf = kafka_config(settings)
    conf.pop("bootstrap.servers")
    return conf


def test_the_local_broker_stays_plaintext() -> None:
    settings = make()
    assert security(settings) == {}
    assert lake_config(settings).security.spark_kafka_options() == {}


def test_scram_over_tls() -> None:
    settings = make(**SCRAM, KAFKA_SSL_CA_LOCATION="/etc/ssl/msk-ca.pem")
    assert security(settings) == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/etc/ssl/msk-ca.pem",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "paywall",
        "sasl.password": 'pa"ss\\word',
    }
    assert lake_config(settings).security.spark_kafka_options() == {
        "kafka.security.protocol": "SASL_SSL",
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.location": "/etc/ssl/msk-ca.pem",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
        'required username="paywall" password="pa\\"ss\\\\word";',
    }
    assert "word" not in repr(KafkaSecurity.from_settings(settings))


def test_plain_and_tls_only() -> None:
    plain = make(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="PLAIN",
                 KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD="p")  # fmt: skip
    assert security(plain)["sasl.mechanism"] == "PLAIN"
    spark = lake_config(plain).security.spark_kafka_options()
    assert spark["kafka.sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
    )
    assert security(make(KAFKA_SECURITY_PROTOCOL="SSL")) == {"security.protocol": "SSL"}


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys for signing only: MSK IAM tokens are presigned locally, no AWS call."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")


def test_msk_iam_signs_a_token_from_the_aws_credentials_chain(aws_credentials: None) -> None:
    settings = make(**IAM)
    conf = security(settings)
    oauth_cb = conf.pop("oauth_cb")
    assert conf == {"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}
    token, expires_at = oauth_cb("")
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect")
    assert "X-Amz-Signature=" in url
    assert time.time() < expires_at < time.time() + 3600  # seconds, as librdkafka wants
    spark = lake_config(settings).security.spark_kafka_options()
    assert spark["kafka.sasl.mechanism"] == "AWS_MSK_IAM"
    assert spark["kafka.sasl.client.callback.handler.class"].endswith("IAMClientCallbackHandler")


@pytest.mark.parametrize("env", [{}, SCRAM, IAM, {"KAFKA_SECURITY_PROTOCOL": "SSL"}])
def test_librdkafka_takes_each_configuration(env: dict[str, str], aws_credentials: None) -> None:
    # With MSK IAM a client asks for its first token as it is made: that works too.
    settings = make(**env)
    Producer(kafka_config(settings)).flush(0)
    Consumer(kafka_config(settings, **{"group.id": "g"})).close()
    AdminClient(kafka_config(settings))


def test_the_python_lake_source_gets_the_same_settings_as_string_options() -> None:
    carried = lake_config(make(**SCRAM)).security
    options = carried.as_options()
    assert all(isinstance(v, str) for v in options.values())
    assert KafkaSecurity.from_options(options) == carried
    # Spark redacts option values whose keys match spark.redaction.regex ("password").
    assert [k for k, v in options.items() if v == SCRAM["KAFKA_SASL_PASSWORD"]] == [
        "kafka_security_password"
    ]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM"),
        ({**SCRAM, "KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD"),
        ({**IAM, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL"),
        ({**IAM, "KAFKA_SASL_USERNAME": "someone"}, "KAFKA_SASL_USERNAME"),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SSL_CA_LOCATION": "/ca.pem"}, "KAFKA_SSL_CA_LOCATION"),
        (
            {
                "PAYWALL_ENV": "production",
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
            },
            "KAFKA_SECURITY_PROTOCOL",
        ),
    ],
)
def test_bad_combinations_are_refused_naming_the_variable(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(ValidationError) as info:
        make(**env)
    (error,) = info.value.errors()
    assert error["msg"].removeprefix("Value error, ").startswith(f"{variable}: ")


def test_the_cli_refuses_a_bad_combination_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PAYWALL_STATE_DIR": str(tmp_path), **IAM, "KAFKA_SASL_PASSWORD": "x"}
    env.pop("KAFKA_SASL_USERNAME", None)
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "paywall"), "config"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: KAFKA_SASL_USERNAME: AWS_MSK_IAM signs with the AWS credentials chain; "
        "unset KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
    ]
    assert "x" not in done.stdout
