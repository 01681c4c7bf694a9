"""Password hashing: cost from the settings, old hashes still verify and ask for a rehash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher, extract_parameters
from pydantic import ValidationError

from paywall.settings import Settings, reset_settings
from transactional.auth.passwords import hash_secret, needs_rehash, verify_secret

SECRET = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()


def test_new_hashes_use_the_configured_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    params = extract_parameters(hash_secret(SECRET))
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19 * 1024, 2, 1)

    monkeypatch.setenv("ARGON2_MEMORY_KIB", "12288")
    monkeypatch.setenv("ARGON2_TIME_COST", "3")
    reset_settings()
    params = extract_parameters(hash_secret(SECRET))
    assert (params.memory_cost, params.time_cost, params.parallelism) == (12288, 3, 1)


def test_a_hash_made_under_other_parameters_verifies_and_needs_a_rehash() -> None:
    old = PasswordHasher().hash(SECRET)  # RFC 9106 low-memory: 64 MiB, 3 passes, 4 lanes
    assert extract_parameters(old).memory_cost == 64 * 1024
    assert verify_secret(old, SECRET)
    assert not verify_secret(old, SECRET + "!")
    assert needs_rehash(old)

    new = hash_secret(SECRET)
    assert verify_secret(new, SECRET)
    assert not needs_rehash(new)


def test_a_missing_or_broken_hash_never_verifies() -> None:
    assert not verify_secret(None, SECRET)
    assert not verify_secret("not a hash", SECRET)
    assert needs_rehash("not a hash")


@pytest.mark.parametrize(
    ("name", "value"),
    [("ARGON2_MEMORY_KIB", "4096"), ("ARGON2_TIME_COST", "0"), ("ARGON2_PARALLELISM", "0")],
)
def test_a_cost_below_the_floor_is_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **{name: value})  # type: ignore[call-arg, arg-type]
    assert info.value.errors()[0]["loc"] == (name,)
