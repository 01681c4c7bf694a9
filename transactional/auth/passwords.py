"""Argon2id hashing for user passwords and client secrets.

The cost of new hashes comes from the settings (ARGON2_MEMORY_KIB, ARGON2_TIME_COST,
ARGON2_PARALLELISM; see paywall/settings.py for the defaults and why). A stored hash
names its own parameters, so hashes made under earlier settings still verify, and
`needs_rehash` says when a login should store the password again under the current ones.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from paywall.settings import get_settings


def hash_secret(secret: str) -> str:
    return _hasher().hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """True when `secret` matches. A missing hash still costs one verification, so a
    caller cannot tell "no such account" from "wrong password" by the response time."""
    hasher = _hasher()
    try:
        return hasher.verify(stored_hash or _dummy_hash(hasher), secret) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when `stored_hash` was made with other parameters than the current ones."""
    try:
        return _hasher().check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def _hasher() -> PasswordHasher:
    settings = get_settings()
    return _hasher_for(
        settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
    )


@lru_cache(maxsize=4)
def _hasher_for(memory_kib: int, time_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


@lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash under the current parameters, so a miss costs what a real check costs."""
    return hasher.hash("not a real secret; only spends the same time")
