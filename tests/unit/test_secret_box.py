"""Webhook signing secrets sealed at rest (paywall/secret_box.py)."""

from __future__ import annotations

import base64

import pytest

from paywall.errors import ConfigError
from paywall.secret_box import PREFIX, SecretBox
from paywall.settings import Settings


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


def test_a_sealed_secret_opens_only_for_its_own_endpoint_and_key() -> None:
    box = SecretBox.from_settings(settings())
    sealed = box.seal("whsec_abc", "endpoint-1")
    assert sealed.startswith(PREFIX) and "whsec_abc" not in sealed
    assert sealed != box.seal("whsec_abc", "endpoint-1")  # a fresh nonce each time
    assert box.open(sealed, "endpoint-1") == "whsec_abc"
    with pytest.raises(ConfigError, match="does not open"):
        box.open(sealed, "endpoint-2")
    other = base64.b64encode(bytes(range(32))).decode()
    with pytest.raises(ConfigError, match="does not open"):
        SecretBox.from_settings(settings(WEBHOOK_SECRETS_KEY=other)).open(sealed, "endpoint-1")
    assert box.open("whsec_written_before", "endpoint-1") == "whsec_written_before"


@pytest.mark.parametrize("key", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_key_that_is_not_32_bytes_of_base64_is_one_line_naming_it(key: str) -> None:
    with pytest.raises(ConfigError, match=r"^WEBHOOK_SECRETS_KEY: must be 32 random bytes"):
        SecretBox.from_settings(settings(WEBHOOK_SECRETS_KEY=key))


def test_production_refuses_the_public_local_key() -> None:
    with pytest.raises(ConfigError, match=r"^WEBHOOK_SECRETS_KEY: production must set its own"):
        SecretBox.from_settings(settings(PAYWALL_ENV="production"))
