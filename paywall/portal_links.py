"""Sealed, expiring values for the customer portal: its session cookie, its login state, and
the links that emails carry into it (a dunning notice's "update your card").

AES-256-GCM under PORTAL_SECRET_KEY: what a browser holds can be neither read (a session
holds the customer's access token) nor forged nor moved between uses (each value is bound to
its purpose, so a link is never a session). Unlike paywall.secret_box, which reads back our
own stored values, everything opened here came from a browser: anything that does not open,
or has expired, is simply None.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from typing import Any
from urllib.parse import urlencode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paywall.secret_box import aead_key
from paywall.settings import Settings

SETTING = "PORTAL_SECRET_KEY"
SESSION = "portal-session"
LOGIN = "portal-login"
LINK = "portal-link"
LINK_PATH = "/portal/link"
CALLBACK_PATH = "/portal/callback"
PORTAL_CLIENT_ID = "portal"


def portal_client_id(tenant_id: str | None) -> str:
    """The portal's login client for a tenant's customers (auth registers one per tenant,
    since a login finds only its client's tenant's users; "." is in no tenant id)."""
    return f"{PORTAL_CLIENT_ID}.{tenant_id}" if tenant_id else PORTAL_CLIENT_ID


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer:
        return cls(aead_key(settings, SETTING))

    def seal(self, purpose: str, value: dict[str, Any], ttl_seconds: float) -> str:
        body = json.dumps({"v": value, "exp": time.time() + ttl_seconds}).encode()
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, body, purpose.encode())
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, purpose: str, token: str | None) -> dict[str, Any] | None:
        """The value sealed for `purpose`; None when absent, tampered, foreign or expired."""
        if not token or len(token) > 8192:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            body = json.loads(self._aead.decrypt(raw[:12], raw[12:], purpose.encode()))
        except (binascii.Error, ValueError, InvalidTag):
            return None
        if not isinstance(body, dict) or float(body.get("exp", 0)) < time.time():
            return None
        value = body.get("v")
        return value if isinstance(value, dict) else None


def card_link(settings: Settings, customer_id: str, tenant_id: str | None) -> str:
    """The portal's card page for one customer, good for PORTAL_LINK_DAYS. It opens the
    login of the customer's tenant; it grants nothing without the customer's password."""
    value = {"customer_id": customer_id, "tenant_id": tenant_id, "next": "/portal/#card"}
    token = Sealer.from_settings(settings).seal(LINK, value, settings.portal_link_days * 86400)
    return f"{settings.portal_base_url}{LINK_PATH}?{urlencode({'t': token})}"
