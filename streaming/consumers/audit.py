"""Audit consumer: every event appended once to a hash-chained, append-only log.

Each row holds the hash of the one before, so editing or removing any row breaks the
chain from there on; `paywall audit verify` recomputes it. Forwarded to Datadog logs
when DD_API_KEY is set (streaming/consumers/datadog.py: the log is the forwarding outbox).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam

from paywall.logs import get_logger
from paywall.settings import Settings
from streaming.consumers.datadog import DatadogForwarder
from streaming.consumers.runner import Delivery

log = get_logger(__name__)
GENESIS = "0" * 64
CHAIN_LOCK = 7_261_002


def chain_hash(prev_hash: str, envelope: dict[str, Any]) -> str:
    canonical = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def append(engine: Engine, delivery: Delivery) -> bool:
    """Append the event unless it is already in the log; True when appended."""
    env = delivery.envelope
    with engine.begin() as conn:
        # One writer at a time extends the chain; a second audit consumer waits here.
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK})
        seen = conn.execute(
            text("SELECT 1 FROM audit.log WHERE event_id = :e"), {"e": env["event_id"]}
        ).first()
        if seen:
            return False
        last = conn.execute(
            text("SELECT seq, hash FROM audit.log ORDER BY seq DESC LIMIT 1")
        ).first()
        prev = last.hash if last else GENESIS
        conn.execute(
            text(
                "INSERT INTO audit.log (seq, event_id, event_type, occurred_at, topic, "
                'partition, "offset", envelope, prev_hash, hash) VALUES (:seq, :e, :t, :o, '
                ":topic, :p, :off, :env, :prev, :hash)"
            ).bindparams(bindparam("env", type_=JSONB)),
            {
                "seq": (last.seq + 1) if last else 1,
                "e": env["event_id"],
                "t": env["event_type"],
                "o": env["occurred_at"],
                "topic": delivery.topic,
                "p": delivery.partition,
                "off": delivery.offset,
                "env": env,
                "prev": prev,
                "hash": chain_hash(prev, env),
            },
        )
    return True


@dataclass
class Verification:
    rows: int
    first_broken_seq: int | None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


def verify(engine: Engine, batch: int = 5000) -> Verification:
    prev, rows, after = GENESIS, 0, 0
    with engine.connect() as conn:
        while True:
            page = conn.execute(
                text(
                    "SELECT seq, envelope, prev_hash, hash FROM audit.log WHERE seq > :a "
                    "ORDER BY seq LIMIT :n"
                ),
                {"a": after, "n": batch},
            ).all()
            for row in page:
                expected_seq = rows + 1
                if (
                    row.seq != expected_seq
                    or row.prev_hash != prev
                    or row.hash != chain_hash(prev, row.envelope)
                ):
                    return Verification(rows, row.seq)
                prev, rows = row.hash, rows + 1
            if len(page) < batch:
                return Verification(rows, None)
            after = page[-1].seq


class AuditHandler:
    """Appends each delivery to the log, then forwards what Datadog still lacks: whether
    or not this delivery appended (a redelivery after a crash finds its row committed,
    and the row may not have reached Datadog)."""

    def __init__(self, engine: Engine, forwarder: DatadogForwarder | None) -> None:
        self.engine = engine
        self.forwarder = forwarder

    def __call__(self, delivery: Delivery) -> None:
        append(self.engine, delivery)
        self.idle()

    def idle(self) -> None:
        if self.forwarder is not None:
            self.forwarder.forward_due()


def handler(engine: Engine, settings: Settings) -> AuditHandler:
    forwarder = DatadogForwarder(engine, settings) if settings.datadog_api_key else None
    if forwarder is None:
        log.info("audit.datadog_disabled", reason="DD_API_KEY unset")
    return AuditHandler(engine, forwarder)
