"""The auth service's database handle and its transaction shape for OAuth requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

from paywall import db
from paywall.settings import get_settings
from transactional.auth.errors import OAuthError

T = TypeVar("T")


def engine() -> Engine:
    return db.engine(get_settings())


def oauth_transaction(work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction; an OAuthError rolls back unless it asks to commit."""
    with engine().connect() as conn:
        tx = conn.begin()
        try:
            result = work(conn)
        except OAuthError as exc:
            if exc.commit:
                tx.commit()
            else:
                tx.rollback()
            raise
        tx.commit()
        return result
