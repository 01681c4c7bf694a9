"""A server that cannot be reached is a one-line error naming its setting; a bug is not."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from confluent_kafka import KafkaError, KafkaException

from paywall.errors import unreachable


def _wrapped_connection_failure() -> BaseException:
    try:
        try:
            raise psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 1 failed\n'
                "\tIs the server running on that host?"
            )
        except psycopg.OperationalError as exc:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, exc) from exc
    except sqlalchemy.exc.OperationalError as outer:
        return outer


def test_a_database_that_cannot_be_reached_names_database_url() -> None:
    problem = unreachable(_wrapped_connection_failure())
    assert problem is not None
    assert str(problem) == (
        'DATABASE_URL: connection failed: connection to server at "127.0.0.1", port 1 failed'
    )


def test_a_broker_that_cannot_be_reached_names_its_setting_in_words() -> None:
    exc = KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
    problem = unreachable(exc)
    assert problem is not None
    assert str(problem) == "KAFKA_BOOTSTRAP_SERVERS: Failed to get metadata"


@pytest.mark.parametrize(
    "exc",
    [
        KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not allowed")),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        ValueError("a bug"),
        RuntimeError("wrapped"),
    ],
)
def test_anything_else_keeps_its_traceback(exc: BaseException) -> None:
    assert unreachable(exc) is None
