"""Audit log → Datadog logs, at least once and in order, whatever Datadog does meanwhile.

The audit log is the forwarding outbox: `audit.forwarded` holds the last `seq` Datadog
accepted, and a forward sends the rows after it, in `seq` order, in batches within the
intake's limits (1000 entries, 5 MB uncompressed), moving the cursor in the transaction
that holds it (FOR UPDATE SKIP LOCKED: one forwarder at a time, a second one skips).
Datadog answering anything but 2xx, a timeout, a refused connection: the cursor stays,
the rows are sent again after a backoff. A batch that reached Datadog while its answer
was lost is sent twice; each log carries `event_id` (and `seq`) to deduplicate on.

Forwarding never fails the audit consumer's delivery: the event is already in the audit
log, so a Datadog outage neither slows the log to the retry pace nor dead-letters events
that were recorded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import Engine, text

from paywall.logs import get_logger
from paywall.settings import Settings

log = get_logger(__name__)
FORWARDED = Counter("paywall_audit_forwarded_total", "Audit rows Datadog accepted")
PENDING = Gauge("paywall_audit_forward_pending", "Audit rows not yet accepted by Datadog")
FORWARD_FAILURES = Counter(
    "paywall_audit_forward_failures_total", "Datadog log intake calls that failed", ["reason"]
)
DESTINATION = "datadog"
MAX_ENTRIES = 1000  # the intake's limit per request
# The intake takes 5 MB uncompressed; the margin covers the JSON array around the entries.
MAX_BATCH_BYTES = 4_500_000
MAX_BACKOFF_SECONDS = 60.0


class ForwardFailed(Exception):
    """Datadog did not accept a batch; it stays behind the cursor."""


@dataclass
class DatadogForwarder:
    engine: Engine
    settings: Settings
    timeout: float = 10.0
    backoff: float = 1.0

    def __post_init__(self) -> None:
        from datadog_api_client import ApiClient, Configuration
        from datadog_api_client.v2.api.logs_api import LogsApi

        key = self.settings.datadog_api_key
        assert key is not None
        config = Configuration(request_timeout=self.timeout)
        config.api_key["apiKeyAuth"] = key.get_secret_value()
        config.server_variables["site"] = self.settings.datadog_site
        if self.settings.datadog_logs_url:
            # The SDK's second server for this operation is "{protocol}://{name}".
            protocol, _, name = self.settings.datadog_logs_url.rstrip("/").partition("://")
            config.server_operation_index["submit_log"] = 1
            config.server_operation_variables["submit_log"] = {
                "protocol": protocol,
                "name": name,
            }
        self.api = LogsApi(ApiClient(config))
        self._failures = 0
        self._retry_at = 0.0

    def forward_due(self) -> int:
        """Forward what is pending unless backing off after a failure; rows accepted.

        Failures are logged and counted, never raised: the rows wait behind the cursor.
        """
        if time.monotonic() < self._retry_at:
            return 0
        try:
            sent = self.forward_pending()
        except ForwardFailed as exc:
            self._failures += 1
            delay = min(self.backoff * 2 ** (self._failures - 1), MAX_BACKOFF_SECONDS)
            self._retry_at = time.monotonic() + delay
            PENDING.set(self.pending())
            log.warning("audit.datadog_failed", error=str(exc), retry_in=delay)
            return 0
        self._failures, self._retry_at = 0, 0.0
        return sent

    def forward_pending(self) -> int:
        """Send every row after the cursor, batch by batch; rows accepted. Raises
        ForwardFailed at the first batch Datadog did not accept."""
        sent = 0
        while True:
            with self.engine.begin() as conn:
                cursor = conn.execute(
                    text(
                        "SELECT seq FROM audit.forwarded WHERE destination = :d "
                        "FOR UPDATE SKIP LOCKED"
                    ),
                    {"d": DESTINATION},
                ).scalar_one_or_none()
                if cursor is None:
                    return sent  # another forwarder holds the cursor
                rows = conn.execute(
                    text(
                        "SELECT seq, event_id, event_type, envelope FROM audit.log "
                        "WHERE seq > :s ORDER BY seq LIMIT :n"
                    ),
                    {"s": cursor, "n": MAX_ENTRIES},
                ).all()
                batch = _within_limits(rows)
                if not batch:
                    PENDING.set(0)
                    return sent
                self._submit(batch)
                conn.execute(
                    text(
                        "UPDATE audit.forwarded SET seq = :s, forwarded_at = now() "
                        "WHERE destination = :d"
                    ),
                    {"s": batch[-1].seq, "d": DESTINATION},
                )
            sent += len(batch)
            FORWARDED.inc(len(batch))

    def pending(self) -> int:
        """Audit rows Datadog has not accepted yet."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT coalesce(max(l.seq), 0) - f.seq FROM audit.forwarded f "
                        "LEFT JOIN audit.log l ON true WHERE f.destination = :d GROUP BY f.seq"
                    ),
                    {"d": DESTINATION},
                ).scalar_one()
            )

    def _submit(self, rows: list[Any]) -> None:
        from datadog_api_client.exceptions import ApiException
        from datadog_api_client.v2.model.content_encoding import ContentEncoding
        from datadog_api_client.v2.model.http_log import HTTPLog
        from urllib3.exceptions import HTTPError

        items = [_log_item(row) for row in rows]
        try:
            self.api.submit_log(body=HTTPLog(items), content_encoding=ContentEncoding.GZIP)
        except ApiException as exc:
            FORWARD_FAILURES.labels(str(exc.status)).inc()
            raise ForwardFailed(f"datadog answered {exc.status} {exc.reason}") from exc
        except (HTTPError, OSError) as exc:
            # Timeouts, refused and dropped connections: urllib3's, not the SDK's.
            FORWARD_FAILURES.labels(type(exc).__name__).inc()
            raise ForwardFailed(f"datadog unreachable: {type(exc).__name__}") from exc


def _log_item(row: Any) -> Any:
    from datadog_api_client.v2.model.http_log_item import HTTPLogItem

    return HTTPLogItem(
        ddsource="paywall",
        service="audit",
        ddtags=f"event_type:{row.event_type}",
        message=_message(row),
        event_id=str(row.event_id),
        seq=int(row.seq),
    )


def _message(row: Any) -> str:
    return json.dumps(row.envelope, sort_keys=True, separators=(",", ":"))


def _within_limits(rows: list[Any]) -> list[Any]:
    """The longest prefix of `rows` under the intake's payload size (at least one row:
    Datadog accepts a log over 1 MB and truncates it)."""
    size, batch = 0, list[Any]()
    for row in rows:
        size += len(_message(row).encode()) + 200  # the item's other fields, generously
        if batch and size > MAX_BATCH_BYTES:
            break
        batch.append(row)
    return batch
