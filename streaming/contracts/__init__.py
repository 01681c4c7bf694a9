"""Versioned event contracts (JSON Schema), kept in the repo: one file per type and version.

`schemas/<event_type>.v<N>.json` describes the envelope's `data` at schema_version N;
`envelope.json` the envelope. Producers refuse what breaks its schema; consumers check
only the envelope and ignore fields they do not know.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

HERE = Path(__file__).parent
SCHEMAS = HERE / "schemas"
_FILE = re.compile(r"^(?P<type>[a-z_]+\.[a-z_]+)\.v(?P<version>\d+)\.json$")


class ContractError(ValueError):
    """An event does not match its contract (or has none)."""


@dataclass(frozen=True)
class Contract:
    event_type: str
    version: int
    schema: dict[str, Any]
    path: Path


@cache
def contracts() -> dict[tuple[str, int], Contract]:
    found = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        match = _FILE.match(path.name)
        if match is None:
            raise ContractError(f"{path.name}: not named <event_type>.v<N>.json")
        key = (match["type"], int(match["version"]))
        found[key] = Contract(*key, json.loads(path.read_text()), path)
    return found


def versions(event_type: str) -> list[Contract]:
    return sorted(
        (c for (t, _), c in contracts().items() if t == event_type), key=lambda c: c.version
    )


def latest_version(event_type: str) -> int:
    found = versions(event_type)
    if not found:
        raise ContractError(f"no contract for event type {event_type!r}")
    return found[-1].version


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FormatChecker())


# Built once each: every outbox write validates its event, and building a validator costs
# more than validating with it.
@cache
def _envelope_validator() -> Draft202012Validator:
    return _validator(json.loads((HERE / "envelope.json").read_text()))


@cache
def _contract_validator(key: tuple[str, int]) -> Draft202012Validator:
    return _validator(contracts()[key].schema)


def _errors(validator: Draft202012Validator, value: Any) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]


def check_envelope(envelope: Any) -> None:
    """What every consumer checks: the envelope's shape, not the data it carries."""
    problems = _errors(_envelope_validator(), envelope)
    if problems:
        raise ContractError("; ".join(problems))


def validate(envelope: dict[str, Any]) -> None:
    """What producers check before an event leaves: envelope and data, strictly."""
    check_envelope(envelope)
    key = (envelope["event_type"], envelope["schema_version"])
    if key not in contracts():
        raise ContractError(f"no contract for {key[0]} v{key[1]}")
    problems = _errors(_contract_validator(key), envelope["data"])
    if problems:
        raise ContractError(f"{key[0]} v{key[1]}: " + "; ".join(problems))


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in `new` would break a reader written against `old`."""
    out = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for field in old.get("required", []):
        if field not in new.get("required", []):
            out.append(f"required field {field!r} removed or made optional")
    for field, spec in old_props.items():
        if field in new_props and _types(new_props[field]) - _types(spec):
            out.append(
                f"field {field!r} changed type {sorted(_types(spec))} → "
                f"{sorted(_types(new_props[field]))}"
            )
        if field in new_props and "enum" in spec:
            # A reader of `old` knows the values it lists; `new` may add some (a new
            # version, readers ignore what they do not know) but never take one away.
            dropped = set(spec["enum"]) - set(new_props[field].get("enum", spec["enum"]))
            if dropped:
                out.append(f"field {field!r} no longer allows {sorted(dropped)}")
    return out


def _types(spec: dict[str, Any]) -> set[str]:
    kind = spec.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)
