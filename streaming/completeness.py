"""Completeness: every event an outbox published reached the audit log, per UTC day.

The audit consumer reads every event topic, so an outbox row marked published whose event
id is not in `audit.log` was lost on the way: a broker that acknowledged it and then
dropped it (the local broker did, once in 11,264 events across two kills), a record
deleted by retention before anyone read it. `check` finds those gaps for one day (rows by
their outbox `created_at`); `repair` marks their rows unpublished again, so the relay sends
them once more and every consumer, idempotent by event id, keeps the first copy it gets.

An event published within the grace period may still be on its way (relay batches,
consumer lag) and is not judged yet. A consumer that is far behind shows as gaps too;
repairing those only sends duplicates that consumers drop, and the consumer-lag alert is
the signal for it. Times are the database's clock, the one the relay stamps rows with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, text

from paywall.logs import get_logger
from streaming.topics import EVENT_TOPICS

log = get_logger(__name__)


@dataclass(frozen=True)
class SchemaCounts:
    """One service's outbox for the day: what it published and what the audit log holds."""

    schema: str
    published: int  # published before the grace cutoff: the events judged
    audited: int  # of those, in audit.log
    in_flight: int  # published within the grace period: not judged yet
    unpublished: int  # still waiting in the outbox for the relay
    missing: tuple[str, ...]  # event ids published, not audited (the gaps), in outbox order


@dataclass(frozen=True)
class Report:
    day: date
    checked_at: datetime
    grace_seconds: float
    schemas: tuple[SchemaCounts, ...]

    @property
    def gaps(self) -> int:
        return sum(len(s.missing) for s in self.schemas)

    @property
    def complete(self) -> bool:
        return self.gaps == 0

    def totals(self) -> dict[str, int]:
        return {
            "published": sum(s.published for s in self.schemas),
            "audited": sum(s.audited for s in self.schemas),
            "in_flight": sum(s.in_flight for s in self.schemas),
            "unpublished": sum(s.unpublished for s in self.schemas),
            "gaps": self.gaps,
        }


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, UTC)
    return start, start + timedelta(days=1)


def check(engine: Engine, day: date, grace_seconds: float) -> Report:
    """Count the day's events per outbox against the audit log; list the missing ids."""
    start, end = day_bounds(day)
    counts = []
    with engine.connect() as conn:
        checked_at: datetime = conn.execute(text("SELECT now()")).scalar_one()
        cutoff = checked_at - timedelta(seconds=grace_seconds)
        for schema in EVENT_TOPICS:
            row = conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE o.published_at < :cutoff) AS published, "
                    "count(a.event_id) FILTER (WHERE o.published_at < :cutoff) AS audited, "
                    "count(*) FILTER (WHERE o.published_at >= :cutoff) AS in_flight, "
                    "count(*) FILTER (WHERE o.published_at IS NULL) AS unpublished, "
                    "array_agg(o.id::text ORDER BY o.seq) FILTER "
                    "(WHERE o.published_at < :cutoff AND a.event_id IS NULL) AS missing "
                    f"FROM {schema}.outbox o LEFT JOIN audit.log a ON a.event_id = o.id::text "
                    "WHERE o.created_at >= :start AND o.created_at < :end"
                ),
                {"cutoff": cutoff, "start": start, "end": end},
            ).one()
            counts.append(
                SchemaCounts(
                    schema,
                    row.published,
                    row.audited,
                    row.in_flight,
                    row.unpublished,
                    tuple(row.missing or ()),
                )
            )
    return Report(day, checked_at, grace_seconds, tuple(counts))


def repair(engine: Engine, report: Report) -> dict[str, int]:
    """Mark the report's missing events unpublished again; how many per schema.

    Each row is looked at again first: one audited or republished since the check stays
    as it is, so a repair racing the consumer (or another repair) sends nothing twice.
    """
    requeued: dict[str, int] = {}
    cutoff = report.checked_at - timedelta(seconds=report.grace_seconds)
    with engine.begin() as conn:
        for counts in report.schemas:
            if not counts.missing:
                continue
            done = conn.execute(
                text(
                    f"UPDATE {counts.schema}.outbox o SET published_at = NULL "
                    "WHERE o.id = ANY(CAST(:ids AS uuid[])) AND o.published_at < :cutoff "
                    "AND NOT EXISTS (SELECT 1 FROM audit.log a WHERE a.event_id = o.id::text)"
                ),
                {"ids": list(counts.missing), "cutoff": cutoff},
            )
            requeued[counts.schema] = done.rowcount
    for schema, n in requeued.items():
        log.warning("events.requeued", day=report.day.isoformat(), schema=schema, events=n)
    return requeued
