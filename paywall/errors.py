"""Expected failures: the CLI prints them as one line, never as a traceback."""

from __future__ import annotations

import sys

from pydantic import ValidationError


class PaywallError(Exception):
    """An expected error with a message a person can act on."""


class ConfigError(PaywallError):
    """A setting is wrong: the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


def error_lines(exc: ValidationError) -> list[str]:
    """A model's refusals, a line each: where, then why (a check across fields names its
    fields itself, with no location)."""
    lines = []
    for err in exc.errors():
        where = ".".join(map(str, err["loc"]))
        why = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {why}" if where else why)
    return lines


def invalid(exc: ValidationError) -> PaywallError:
    """A model's refusal of what the command was given, as one line."""
    return PaywallError(error_lines(exc)[0])


def unreachable(exc: BaseException) -> ConfigError | None:
    """A failure to reach a configured server, as the one-line error naming its setting.

    Anything else is None: an unexpected error keeps its traceback, which is how a bug
    gets reported. Only libraries already imported are looked at.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for module, names, setting in _UNREACHABLE:
            lib = sys.modules.get(module)
            kinds = tuple(getattr(lib, name) for name in names if lib and hasattr(lib, name))
            if kinds and isinstance(current, kinds) and _is_unreachable(current):
                return ConfigError(setting, _first_line(current))
        current = current.__cause__ or current.__context__
    return None


# (module, exception classes, setting). Drivers' own classes, not their wrappers' (the walk
# down the cause chain finds psycopg's error under SQLAlchemy's): the line is the server's.
_UNREACHABLE = (
    ("psycopg", ("OperationalError",), "DATABASE_URL"),
    ("redis.exceptions", ("ConnectionError", "TimeoutError"), "REDIS_URL"),
    ("confluent_kafka", ("KafkaException",), "KAFKA_BOOTSTRAP_SERVERS"),
    ("botocore.exceptions", ("EndpointConnectionError",), "S3_ENDPOINT_URL"),
    ("botocore.exceptions", ("NoCredentialsError",), "AWS_ACCESS_KEY_ID"),
    ("stripe", ("APIConnectionError",), "STRIPE_API_BASE"),
)


def _is_unreachable(exc: BaseException) -> bool:
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        # The server's own errors (deadlock, statement timeout) carry a SQLSTATE; a
        # connection that failed or dropped has none.
        return getattr(exc, "sqlstate", None) is None
    kafka = sys.modules.get("confluent_kafka")
    if kafka is not None and isinstance(exc, kafka.KafkaException):
        # Only a broker that cannot be reached; a refused request is something else.
        code_of = getattr(exc.args[0] if exc.args else None, "code", None)
        code = code_of() if callable(code_of) else None
        return code in {
            kafka.KafkaError._TRANSPORT,
            kafka.KafkaError._ALL_BROKERS_DOWN,
            kafka.KafkaError._TIMED_OUT,
            kafka.KafkaError._RESOLVE,
        }
    return True


def _first_line(exc: BaseException) -> str:
    # A KafkaError prints as its repr; its own text is what a person can read.
    text_of = getattr(exc.args[0] if exc.args else None, "str", None)
    text = str(text_of()) if callable(text_of) else str(exc)
    text = text.strip() or type(exc).__name__
    return text.splitlines()[0]
