"""Erasure in registration: the signups' stored request and answer lose the person.

A finished signup's key still answers a replay (with the scrubbed answer) until it
expires; the fingerprint is a digest and stays, so the same key with other details is
still refused. An unfinished signup keeps what it needs to resume, except the contact
details: its customer is erased, so resuming has nothing to make.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

PERSONAL = ("email", "phone", "name")


def forget(conn: Connection, customer_id: str) -> int:
    """Scrub the customer's signups; how many rows still held personal data."""
    drop = " - ".join(f"'{field}'" for field in PERSONAL)
    changed = conn.execute(
        text(
            "UPDATE registration.registrations SET email = 'erased+' || customer_id || "
            f"'@invalid', request = request - {drop}, response_body = response_body - {drop}, "
            "updated_at = now() WHERE customer_id = CAST(:c AS uuid) AND email NOT LIKE 'erased+%'"
        ),
        {"c": customer_id},
    )
    return changed.rowcount
