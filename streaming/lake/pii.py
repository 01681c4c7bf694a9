"""Personal fields never reach the lake in clear text: they become salted SHA-256 hashes.

hash = "sha256:" + hex(sha256(salt + lower(trim(value)))), so the warehouse can hash a
known email the same way (SQL `sha2`) to find a person's rows without storing the email.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

PERSONAL_KEYS = frozenset({"email", "phone", "name"})
PERSONAL_SUFFIXES = ("_email", "_phone")
HASH_PREFIX = "sha256:"

# For text that is not JSON (a rejected message): blank anything that looks like an
# email or a phone number rather than keep clear personal data in the rejects.
_EMAIL = re.compile(r"[^\s\"'<>@,;:]+@[^\s\"'<>@,;:]+")
_PHONE = re.compile(r"\+?\d[\d ().-]{6,}\d")


def is_personal_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in PERSONAL_KEYS or lowered.endswith(PERSONAL_SUFFIXES)


def hash_value(value: Any, salt: str) -> str:
    normalized = str(value).strip().lower()
    return HASH_PREFIX + hashlib.sha256((salt + normalized).encode("utf-8")).hexdigest()


def hash_personal_fields(obj: Any, salt: str) -> Any:
    """A copy of a JSON value with every personal field's value hashed, at any depth."""
    if isinstance(obj, dict):
        return {
            k: _hash_all(v, salt) if is_personal_key(k) else hash_personal_fields(v, salt)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [hash_personal_fields(v, salt) for v in obj]
    return obj


def _hash_all(value: Any, salt: str) -> Any:
    # Under a personal key every leaf is personal (e.g. "email": {"work": ..., "home": ...}).
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _hash_all(v, salt) for k, v in value.items()}
    if isinstance(value, list):
        return [_hash_all(v, salt) for v in value]
    return hash_value(value, salt)


def redact_text(text: str) -> str:
    return _PHONE.sub("<redacted>", _EMAIL.sub("<redacted>", text))
