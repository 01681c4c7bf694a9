"""The delivery worker: due deliveries → signed POSTs → the log, retries and disabling.

A delivery is claimed in a short transaction (FOR UPDATE SKIP LOCKED, so several workers
share the work) and leased: its next try moves past the POST's timeout, so a worker that
dies mid-POST leaves it to be tried again (at least once; the receiver dedupes by
`webhook-id`, the event id). The POST runs with no transaction open; its outcome is
written in a second one. Order per subscription (else per customer) and endpoint: a
delivery is not claimed while an earlier one of its key is still pending, retries
included, so a receiver never sees `subscription.canceled` before `subscription.created`.

Signatures follow the Standard Webhooks spec, made by its reference library: headers
`webhook-id`, `webhook-timestamp`, `webhook-signature` over the exact body sent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter
from sqlalchemy import Engine, text
from standardwebhooks import Webhook

from paywall import webhook_targets
from paywall.logs import get_logger
from paywall.secret_box import SecretBox
from paywall.settings import Settings
from streaming.heartbeat import Heartbeat
from streaming.webhooks import disabling
from streaming.webhooks.schedule import retry_delay

log = get_logger(__name__)
DELIVERIES = Counter(
    "paywall_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered (2xx), failed (will be retried), "
    "gave_up (the 3-day schedule ran out)",
    ["outcome"],
)
BATCH = 20
# POSTs in flight at once per worker; a batch at worst takes one timeout, not twenty.
CONCURRENCY = 8
USER_AGENT = "paywall-webhooks/1"
# The lease past the POST's timeout: time to write the outcome before another may claim.
LEASE_MARGIN = timedelta(seconds=30)

_CLAIM = text(
    """
    WITH due AS (
        SELECT d.id FROM webhooks.deliveries d
        JOIN webhooks.endpoints e ON e.id = d.endpoint_id AND e.disabled_at IS NULL
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
          AND NOT EXISTS (
            SELECT 1 FROM webhooks.deliveries p
            WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key
              AND p.status = 'pending' AND (p.occurred_at, p.id) < (d.occurred_at, d.id))
        ORDER BY d.next_attempt_at, d.occurred_at, d.id
        LIMIT :n FOR UPDATE OF d SKIP LOCKED)
    UPDATE webhooks.deliveries d
    SET attempts = d.attempts + 1, next_attempt_at = now() + :lease
    FROM due, webhooks.endpoints e, webhooks.events ev
    WHERE d.id = due.id AND e.id = d.endpoint_id AND ev.event_id = d.event_id
    RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.give_up_at, e.url, e.secret,
              ev.envelope
    """
)


@dataclass(frozen=True)
class Due:
    id: int
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    attempts: int
    give_up_at: datetime
    url: str
    secret: str
    envelope: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    duration_ms: int
    error: str | None


def body_of(envelope: dict[str, Any]) -> str:
    """What a partner receives: the Standard Webhooks payload shape, plus the event's id."""
    return json.dumps(
        {
            "id": envelope["event_id"],
            "type": envelope["event_type"],
            "timestamp": envelope["occurred_at"],
            "schema_version": envelope["schema_version"],
            "data": envelope["data"],
        },
        separators=(",", ":"),
    )


def signed_headers(secret: str, event_id: str, body: str, at: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(event_id, at, body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def claim(engine: Engine, settings: Settings, limit: int = BATCH) -> list[Due]:
    """Deliveries due now, leased to this worker, with their endpoints' secrets unsealed."""
    lease = timedelta(seconds=settings.webhook_timeout_seconds) + LEASE_MARGIN
    with engine.begin() as conn:
        rows = conn.execute(_CLAIM, {"n": limit, "lease": lease}).mappings().all()
    box = SecretBox.from_settings(settings) if rows else None
    return [
        Due(**{**row, "secret": box.open(row["secret"], str(row["endpoint_id"]))})
        for row in sorted(rows, key=lambda r: r["id"])
        if box is not None
    ]


def send(client: httpx.Client, due: Due) -> Outcome:
    """One signed POST; any 2xx is delivered, anything else (or no answer) failed."""
    body = body_of(due.envelope)
    headers = signed_headers(due.secret, str(due.event_id), body, datetime.now(UTC))
    started = time.monotonic()
    try:
        answer = client.post(due.url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        # The class and message only: never the request (its headers hold the signature).
        return Outcome(False, None, _ms_since(started), f"{type(exc).__name__}: {exc}"[:300])
    ok = 200 <= answer.status_code < 300
    error = None if ok else f"HTTP {answer.status_code}"
    return Outcome(ok, answer.status_code, _ms_since(started), error)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def settle(engine: Engine, settings: Settings, due: Due, outcome: Outcome) -> str:
    """Log the attempt and move the delivery on; the outcome's metric label."""
    now = datetime.now(UTC)
    if outcome.ok:
        label, status, next_at = "delivered", "delivered", now
    else:
        next_at = now + retry_delay(due.attempts, settings.webhook_schedule_scale)
        gave_up = next_at >= due.give_up_at
        label, status = ("gave_up", "failed") if gave_up else ("failed", "pending")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhooks.attempts (delivery_id, endpoint_id, event_id, attempt, "
                "status_code, duration_ms, error) VALUES (:d, :e, :ev, :n, :code, :ms, :err)"
            ),
            {
                "d": due.id,
                "e": due.endpoint_id,
                "ev": due.event_id,
                "n": due.attempts,
                "code": outcome.status_code,
                "ms": outcome.duration_ms,
                "err": outcome.error,
            },
        )
        conn.execute(
            text(
                "UPDATE webhooks.deliveries SET status = :s, next_attempt_at = :next, "
                "delivered_at = CASE WHEN :s = 'delivered' THEN now() END WHERE id = :d"
            ),
            {"s": status, "next": next_at, "d": due.id},
        )
        disabled = disabling.count(conn, settings, due.endpoint_id, outcome.ok)
    DELIVERIES.labels(label).inc()
    log.info(
        "webhook.attempt",
        endpoint_id=str(due.endpoint_id),
        event_id=str(due.event_id),
        attempt=due.attempts,
        outcome=label,
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
    )
    if disabled is not None:
        disabling.notify(settings, disabled)
    return label


def drain(
    engine: Engine,
    settings: Settings,
    client: httpx.Client,
    progress: Callable[[], None] | None = None,
) -> int:
    """Try every delivery due now, batch by batch; how many attempts were made.

    A batch's deliveries are POSTed side by side: a claim never holds two of one ordering
    key (the later one waits for the earlier), so order is kept, and one slow receiver
    does not hold up the others. `progress` is called after each batch (the heartbeat).
    """
    tried = 0
    with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="webhook") as pool:
        while batch := claim(engine, settings):
            list(pool.map(lambda due: settle(engine, settings, due, send(client, due)), batch))
            tried += len(batch)
            if progress is not None:
                progress()
    return tried


def make_client(settings: Settings) -> httpx.Client:
    return webhook_targets.guarded_client(
        settings.allows_private_webhook_targets, settings.webhook_timeout_seconds
    )


def run(
    engine: Engine,
    settings: Settings,
    stop: Callable[[], bool],
    heartbeat: Heartbeat | None = None,
    idle_sleep: float = 0.5,
) -> int:
    """Deliver until `stop()`; each finished pass beats `heartbeat` (the liveness probe's)."""
    heartbeat = heartbeat or Heartbeat(None)
    tried = 0
    with make_client(settings) as client:
        while not stop():
            moved = drain(engine, settings, client, heartbeat.beat)
            tried += moved
            heartbeat.beat()
            if moved == 0:
                time.sleep(idle_sleep)
    return tried
