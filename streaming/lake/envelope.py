"""One Kafka message → one lake row or one reject, in plain Python, in the lake's Python tasks.

Consumers ignore fields they do not know; a message is rejected only when the lake
cannot file it: not JSON, not an object, or missing what the layout and the warehouse
need (event id, a path-safe event type, version, a parseable time, `data` object).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from streaming.lake.pii import hash_personal_fields, redact_text

# Event types become S3 path segments: no slashes, no "..", bounded length.
EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ParsedRow = dict[str, Any]
FIELDS = (
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at_us",
    "producer",
    "key",
    "data",
    "reject_reason",
    "raw_value",
)


def parse_message(value: bytes | None, salt: str) -> ParsedRow:
    if value is None:
        return _reject("empty message (tombstone)", None)
    try:
        envelope = _loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _reject(f"malformed JSON: {exc}", _redacted_text(value))
    if not isinstance(envelope, dict):
        return _reject("envelope is not a JSON object", _json_text(envelope, salt, value))
    micros = _micros(envelope.get("occurred_at"))
    problem = _problem(envelope, micros)
    if problem:
        return _reject(problem, _json_text(envelope, salt, value))
    return {
        "event_id": envelope["event_id"],
        "event_type": envelope["event_type"],
        "schema_version": envelope["schema_version"],
        "occurred_at_us": micros,
        "producer": _str_or_none(envelope.get("producer")),
        "key": _str_or_none(envelope.get("key")),
        "data": _json_text(envelope["data"], salt, value, ("data",)),
        "reject_reason": None,
        "raw_value": None,
    }


def _problem(envelope: dict[str, Any], micros: int | None) -> str | None:
    event_id, event_type = envelope.get("event_id"), envelope.get("event_type")
    version = envelope.get("schema_version")
    if not isinstance(event_id, str) or not event_id:
        return "missing event_id"
    if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
        return "missing or unsafe event_type"
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 2**31:
        return "schema_version is not a positive integer"
    if micros is None:
        return "occurred_at is not an ISO-8601 timestamp"
    if not isinstance(envelope.get("data"), dict):
        return "data is not a JSON object"
    return None


def _micros(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:  # the contract says UTC; a bare time is read as UTC
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _loads(value: bytes) -> Any:
    try:
        return orjson.loads(value)  # several times faster than json
    except orjson.JSONDecodeError:
        return json.loads(value)  # json also takes NaN/Infinity; it raises on the rest


def _json_text(value: Any, salt: str, raw: bytes, path: tuple[str, ...] = ()) -> str:
    """`value` (found at `path` in `raw`) as compact JSON text, personal fields hashed."""
    text = _dumps(hash_personal_fields(value, salt))
    if "e+" in text:
        # orjson reads integers past 64 bits as floats, which print with an exponent:
        # read the message again with json, which keeps such integers exact.
        exact = json.loads(raw)
        for key in path:
            exact = exact[key]
        text = _dumps(hash_personal_fields(exact, salt))
    return text


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # an integer past 64 bits, as json reads it
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _redacted_text(value: bytes) -> str:
    return redact_text(value.decode("utf-8", errors="replace"))


def _reject(reason: str, raw: str | None) -> ParsedRow:
    row: ParsedRow = dict.fromkeys(FIELDS)
    row["reject_reason"] = reason
    row["raw_value"] = raw
    return row
