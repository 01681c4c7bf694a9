"""Crypto-shredding: personal fields in events are sealed with a key per customer.

Events go to append-only places (outbox, Kafka topics, the hash-chained audit log, its S3
archive, Datadog, the lake) that erasure cannot edit without breaking what they promise.
So the email, phone and name in an event are AES-256-GCM ciphertext under the customer's
own key, kept in Postgres (`privacy.customer_keys`; production would wrap it with a KMS).
Erasure deletes the key: every copy of every event becomes unreadable at once, and the
audit chain, which hashes what is stored (the ciphertext), still verifies.

A sealed value is `pii1:<base64url(nonce | ciphertext)>`; the customer id and the field
name are the associated data, so a value cannot be replayed under another customer or
field. After the key is gone `unseal` yields None for every sealed field.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, text

PERSONAL_FIELDS = ("email", "phone", "name")
PREFIX = "pii1:"
# What a field holds when it was sealed after the customer was erased: no key, no value.
SHREDDED = PREFIX + "shredded"


def _key(conn: Connection, customer_id: str) -> bytes | None:
    """The customer's key, made on first use; None once erased (never made again)."""
    conn.execute(
        text(
            "INSERT INTO privacy.customer_keys (customer_id, key) VALUES (:c, :k) "
            "ON CONFLICT (customer_id) DO NOTHING"
        ),
        {"c": customer_id, "k": AESGCM.generate_key(bit_length=256)},
    )
    return _stored_key(conn, customer_id)


def _stored_key(conn: Connection, customer_id: str) -> bytes | None:
    found = conn.execute(
        text("SELECT key FROM privacy.customer_keys WHERE customer_id = :c"), {"c": customer_id}
    ).scalar()
    return bytes(found) if found is not None else None


def _aad(customer_id: str, field: str) -> bytes:
    return f"{customer_id}\n{field}".encode()


def seal(conn: Connection, customer_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` whose personal fields (not null) are sealed under the customer's key,
    with `sealed` naming them; in the producer's transaction, so the key commits with it."""
    key = _key(conn, customer_id)
    out = dict(data)
    sealed = []
    for field in PERSONAL_FIELDS:
        value = data.get(field)
        if value is None:
            continue
        if key is None:
            out[field] = SHREDDED
        else:
            nonce = os.urandom(12)
            cipher = AESGCM(key).encrypt(nonce, str(value).encode(), _aad(customer_id, field))
            out[field] = PREFIX + base64.urlsafe_b64encode(nonce + cipher).decode()
        sealed.append(field)
    out["sealed"] = sealed
    return out


def unseal(conn: Connection, customer_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` with its sealed fields opened; None where the key was erased.

    Data without `sealed` (a version 1 event, written before sealing) is returned as is.
    """
    fields = data.get("sealed")
    if not isinstance(fields, list) or not fields:
        return dict(data)
    key = _stored_key(conn, customer_id)
    out = dict(data)
    for field in fields:
        out[field] = _open(key, customer_id, field, data.get(field))
    return out


def _open(key: bytes | None, customer_id: str, field: str, value: Any) -> str | None:
    if key is None or not isinstance(value, str) or not value.startswith(PREFIX):
        return None
    try:
        raw = base64.urlsafe_b64decode(value[len(PREFIX) :])
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], _aad(customer_id, field))
    except (ValueError, InvalidTag):
        return None  # the shredded marker, or a value sealed under another key
    return plain.decode()


def shred(conn: Connection, customer_id: str) -> None:
    """Erase the customer's key for good; a tombstone row keeps a new one from being made."""
    conn.execute(
        text(
            "INSERT INTO privacy.customer_keys (customer_id, key, shredded_at) "
            "VALUES (:c, NULL, now()) ON CONFLICT (customer_id) DO UPDATE "
            "SET key = NULL, shredded_at = coalesce(privacy.customer_keys.shredded_at, now())"
        ),
        {"c": customer_id},
    )
