"""Erasure in auth: the customer's logins keep their ids, lose their address and password.

The email becomes a tombstone no one can type (`erased+<id>@invalid`), the password hash
one that verifies nothing, and every refresh family is revoked with the access tokens
issued beside it. Each statement finds nothing left to do on a second run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

from transactional.auth import tokens

# Not an argon2 hash: verify_secret answers False for it (and costs the dummy hash's time).
NO_PASSWORD = "!erased"


def forget(conn: Connection, customer_id: str) -> int:
    """Tombstone the customer's users and revoke their tokens; how many users changed."""
    users = conn.execute(
        text(
            "UPDATE auth.users SET email = 'erased+' || id || '@invalid', password_hash = :p "
            "WHERE customer_id = :c AND password_hash <> :p RETURNING id"
        ),
        {"c": customer_id, "p": NO_PASSWORD},
    ).all()
    families: Sequence[Any] = (
        conn.execute(
            text(
                "SELECT DISTINCT t.family_id FROM auth.refresh_tokens t JOIN auth.users u "
                "ON u.id = t.user_id WHERE u.customer_id = :c AND t.revoked_at IS NULL"
            ),
            {"c": customer_id},
        )
        .scalars()
        .all()
    )
    for family in families:
        tokens.revoke_family(conn, uuid.UUID(str(family)))
    conn.execute(
        text(
            "DELETE FROM auth.authorization_codes WHERE user_id IN "
            "(SELECT id FROM auth.users WHERE customer_id = :c)"
        ),
        {"c": customer_id},
    )
    return len(users)
