"""Secrets we must read back, kept sealed at rest.

A webhook's signing secret cannot be stored as a hash the way client secrets are: the
worker needs the secret itself to compute each HMAC. So it is stored sealed with
AES-256-GCM under WEBHOOK_SECRETS_KEY (32 random bytes, base64; in production from the
`paywall-secrets` Secret, never the public local default), bound to its row by the
associated data: a database dump, a replica or a backup leaks no signing secret, and a
sealed value copied onto another endpoint does not open there.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paywall.errors import ConfigError
from paywall.settings import Settings

PREFIX = "sealed1:"
SETTING = "WEBHOOK_SECRETS_KEY"


def aead_key(settings: Settings, name: str) -> bytes:
    """The AES-256 key in setting `name`: 32 random bytes, base64; else one line naming it."""
    raw = settings.own_secret(name).get_secret_value()
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError(name, "must be 32 random bytes, base64 (openssl rand -base64 32)")
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(aead_key(settings, SETTING))

    def seal(self, plain: str, bound_to: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain.encode(), bound_to.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, bound_to: str) -> str:
        """The secret; a value stored before sealing began is returned as it is."""
        if not stored.startswith(PREFIX):
            return stored
        raw = base64.b64decode(stored.removeprefix(PREFIX))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except InvalidTag as exc:
            raise ConfigError(SETTING, "a sealed secret does not open: another key?") from exc
