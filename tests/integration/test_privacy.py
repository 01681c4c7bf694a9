"""Crypto-shredding (paywall/privacy.py) on the real Postgres: sealed, opened, shredded."""

from __future__ import annotations

import json
import uuid

import pytest

from paywall import privacy
from paywall.db import engine
from paywall.settings import Settings

pytestmark = pytest.mark.integration

DATA = {"customer_id": "", "email": "ada@example.com", "phone": "+447700900123", "name": None}


def test_sealed_fields_open_only_for_their_customer_and_field(settings: Settings) -> None:
    ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
    with engine(settings).begin() as conn:
        sealed = privacy.seal(conn, ada, {**DATA, "customer_id": ada})
        assert sealed["sealed"] == ["email", "phone"]  # null stays null, unsealed
        assert sealed["name"] is None
        assert "ada@example.com" not in json.dumps(sealed)
        assert "447700900123" not in json.dumps(sealed)
        assert sealed["email"].startswith(privacy.PREFIX)
        assert privacy.unseal(conn, ada, sealed) == {**DATA, "customer_id": ada, **_sealed()}
        # The same value sealed twice differs (a fresh nonce): no equality leaks.
        assert privacy.seal(conn, ada, DATA)["email"] != sealed["email"]
        # Moved to another customer, or to another field, it opens to nothing.
        privacy.seal(conn, bob, DATA)
        assert privacy.unseal(conn, bob, sealed)["email"] is None
        swapped = {**sealed, "phone": sealed["email"]}
        assert privacy.unseal(conn, ada, swapped)["phone"] is None


def test_a_shredded_key_opens_nothing_and_is_never_made_again(settings: Settings) -> None:
    ada = str(uuid.uuid4())
    with engine(settings).begin() as conn:
        sealed = privacy.seal(conn, ada, DATA)
        privacy.shred(conn, ada)
        privacy.shred(conn, ada)  # a second erasure changes nothing
        opened = privacy.unseal(conn, ada, sealed)
        assert (opened["email"], opened["phone"]) == (None, None)
        late = privacy.seal(conn, ada, DATA)  # an event written after the erasure
        assert late["email"] == late["phone"] == privacy.SHREDDED
        assert privacy.unseal(conn, ada, late)["email"] is None
        assert privacy._stored_key(conn, ada) is None


def test_version_1_data_is_read_as_it_is(settings: Settings) -> None:
    with engine(settings).connect() as conn:
        assert privacy.unseal(conn, "c1", DATA) == DATA


def _sealed() -> dict[str, list[str]]:
    return {"sealed": ["email", "phone"]}
