"""Outbox retention: rows the relay published long ago are deleted; none unpublished.

The outboxes are a queue, not a record (the audit log and the lake are): once a row is
on Kafka and the daily completeness check has had its day with it, it has no reader left.
Deleted in batches, oldest first, so a long backlog never holds one huge transaction.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text

from streaming.topics import EVENT_TOPICS

BATCH = 10_000


def purge_published(engine: Engine, older_than: timedelta) -> dict[str, int]:
    """Delete rows published more than `older_than` ago, per service schema."""
    deleted: dict[str, int] = {}
    for schema in EVENT_TOPICS:
        deleted[schema] = 0
        while True:
            with engine.begin() as conn:
                gone = conn.execute(
                    text(
                        f"DELETE FROM {schema}.outbox WHERE seq IN (SELECT seq FROM "
                        f"{schema}.outbox WHERE published_at < now() - :age ORDER BY seq "
                        "LIMIT :n)"
                    ),
                    {"age": older_than, "n": BATCH},
                ).rowcount
            deleted[schema] += gone
            if gone < BATCH:
                break
    return deleted
