"""Which Kafka errors a consumer lives through and which stop it (no broker needed: the
errors are handed to the loop as librdkafka would hand them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError

from paywall.settings import Settings
from paywall.stack.process import free_port
from streaming.consumers import runner
from streaming.consumers.runner import ConsumerLoop, ConsumerStopped


@pytest.fixture
def loop() -> Iterator[ConsumerLoop]:
    nowhere = Settings(_env_file=None, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")  # type: ignore[call-arg]
    consumer = ConsumerLoop(nowhere, "audit", ["paywall.auth"], lambda _: None, backoff=0)
    yield consumer
    consumer.close()


@pytest.mark.parametrize(
    ("during", "code"),
    [
        ("commit", KafkaError.UNKNOWN_MEMBER_ID),
        ("commit", KafkaError.REBALANCE_IN_PROGRESS),
        ("commit", KafkaError._WAIT_COORD),
        ("poll", KafkaError._TRANSPORT),
        ("poll", KafkaError._ALL_BROKERS_DOWN),
        ("assignment", KafkaError._STATE),
    ],
)
def test_passing_errors_are_lived_through(loop: ConsumerLoop, during: str, code: int) -> None:
    loop._kafka_error(during, KafkaError(code))


@pytest.mark.parametrize(
    "code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.SASL_AUTHENTICATION_FAILED]
)
def test_errors_no_retry_can_fix_stop_the_consumer(loop: ConsumerLoop, code: int) -> None:
    with pytest.raises(ConsumerStopped, match=KafkaError(code).name()):
        loop._kafka_error("poll", KafkaError(code))


def test_a_topic_missing_for_longer_than_the_grace_stops_the_consumer(
    loop: ConsumerLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    loop._kafka_error("poll", missing)  # maybe `paywall topics sync` is running
    monkeypatch.setattr(runner, "UNKNOWN_TOPIC_GRACE_SECONDS", -1.0)
    with pytest.raises(ConsumerStopped, match="UNKNOWN_TOPIC_OR_PART"):
        loop._kafka_error("poll", missing)
