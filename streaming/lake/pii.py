"""Personal fields never reach the lake in clear text: they become salted SHA-256 hashes.

hash = "sha256:" + hex(sha256(salt + lower(trim(value)))), so the warehouse can hash a
known email the same way (SQL `sha2`) to find a person's rows without storing the email.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any

PERSONAL_KEYS = frozenset({"email", "phone", "name"})
PERSONAL_SUFFIXES = ("_email", "_phone")
HASH_PREFIX = "sha256:"

# For text that is not JSON (a rejected message): blank anything that looks like an
# email or a phone number rather than keep clear personal data in the rejects.
_EMAIL = re.compile(r"[^\s\"'<>@,;:]+@[^\s\"'<>@,;:]+")
_PHONE = re.compile(r"\+?\d[\d ().-]{6,}\d")


@lru_cache(maxsize=4096)  # events repeat a few hundred keys; lower() per leaf adds up
def is_personal_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in PERSONAL_KEYS or lowered.endswith(PERSONAL_SUFFIXES)


def hash_value(value: Any, salt: str) -> str:
    return _hash(_salted(salt), value)


def hash_personal_fields(obj: Any, salt: str) -> Any:
    """A copy of a JSON value with every personal field's value hashed, at any depth."""
    return _hash_fields(obj, _salted(salt))


@lru_cache(maxsize=8)
def _salted(salt: str) -> Any:
    # A sha256 that has already taken the salt: each value then costs a copy, not a rehash.
    return hashlib.sha256(salt.encode("utf-8"))


def _hash(salted: Any, value: Any) -> str:
    digest = salted.copy()
    digest.update(str(value).strip().lower().encode("utf-8"))
    return HASH_PREFIX + digest.hexdigest()


def _hash_fields(obj: Any, salted: Any) -> Any:
    # Scalars outside personal keys are kept as they are without a call each: most of an
    # event's leaves are such scalars.
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if is_personal_key(k):
                out[k] = _hash_all(v, salted)
            elif isinstance(v, (dict, list)):
                out[k] = _hash_fields(v, salted)
            else:
                out[k] = v
        return out
    if isinstance(obj, list):
        return [_hash_fields(v, salted) if isinstance(v, (dict, list)) else v for v in obj]
    return obj


def _hash_all(value: Any, salted: Any) -> Any:
    # Under a personal key every leaf is personal (e.g. "email": {"work": ..., "home": ...}).
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _hash_all(v, salted) for k, v in value.items()}
    if isinstance(value, list):
        return [_hash_all(v, salted) for v in value]
    return _hash(salted, value)


def redact_text(text: str) -> str:
    return _PHONE.sub("<redacted>", _EMAIL.sub("<redacted>", text))
