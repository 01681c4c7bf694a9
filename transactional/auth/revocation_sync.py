"""Keeps Redis's copy of auth.revoked_tokens whole, so verifiers may trust it.

The protocol (keys, watermark, what verifiers do without it) is in
`transactional/common/revocations.py`. Every auth process runs one sync thread; several
at once only write the same keys twice.

Each pass reads the record and writes it to Redis. While Redis is known whole, a pass
reads only what was recently revoked (again and again, REREAD_SECONDS back: a revocation
that missed Redis, or whose transaction committed well after its clock time, is pushed
by a later pass) and refreshes the watermark if it is still there. Otherwise (the first
pass, any error, or a watermark gone because Redis restarted empty) it writes every
unexpired revocation and then sets the watermark.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import redis
from sqlalchemy.exc import SQLAlchemyError

from paywall.db import engine
from paywall.logs import get_logger
from paywall.settings import get_settings
from transactional.auth import repository
from transactional.common import revocations
from transactional.common.redis_client import redis_client
from transactional.common.security import LEEWAY_SECONDS

log = get_logger(__name__)

INTERVAL_SECONDS = 1.0
REREAD_SECONDS = 60


class RevocationSync:
    def __init__(self) -> None:
        # Since when (database clock) passes read; None: Redis is not known to be whole.
        self._since: datetime | None = None

    def run_once(self) -> None:
        """One pass; errors are logged and make the next pass copy everything."""
        client = redis_client(timeout_seconds=1.0)
        if client is None:
            return
        try:
            if self._since is None or not self._push(client, self._since):
                self._push(client, None)
                log.info("auth.revocations.synced")
        except (redis.RedisError, SQLAlchemyError) as exc:
            if self._since is not None:
                log.warning("auth.revocations.sync_failed", error=str(exc).splitlines()[0][:200])
            self._since = None

    def _push(self, client: redis.Redis, since: datetime | None) -> bool:
        """Copy revocations made since `since` (all when None); False if Redis was not whole."""
        with engine(get_settings()).connect() as conn:
            # Verifiers accept a token `leeway` past its expiry: so long it is kept.
            read_at, rows = repository.revocations_since(
                conn, since, timedelta(seconds=LEEWAY_SECONDS)
            )
        whole = revocations.publish(
            client,
            rows,
            LEEWAY_SECONDS,
            synced_at=read_at.timestamp(),
            watermark_must_exist=since is not None,
        )
        self._since = read_at - timedelta(seconds=REREAD_SECONDS) if whole else None
        return whole


@contextmanager
def running(interval: float = INTERVAL_SECONDS) -> Iterator[RevocationSync]:
    """The sync on a daemon thread for as long as the block runs (an app's lifespan)."""
    sync = RevocationSync()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                sync.run_once()
            except Exception as exc:  # the thread must outlive any one bad pass
                log.warning("auth.revocations.sync_failed", error=str(exc)[:200])
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="auth-revocation-sync", daemon=True)
    thread.start()
    try:
        yield sync
    finally:
        stop.set()
        thread.join(timeout=10)
