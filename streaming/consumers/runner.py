"""The consume loop every consumer shares: envelope check, dead letters, manual commits.

Delivery is at least once: an offset is committed only after its message was handled
(or parked in the dead-letter topic), so handlers must be idempotent by event id.

The loop outlives the broker's bad moments. A commit refused because the group moved on
(UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS after a broker restart) or lost in transport is
logged and skipped: librdkafka rejoins the group, and the uncommitted message comes again
to whoever owns its partition, where the handler finds its event id already done.
Transient poll and assignment errors back off and retry; only errors no retry can fix
(credentials, permissions, a topic that stays missing) stop the consumer, with one line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from prometheus_client import Counter, Gauge

from paywall.clients import kafka_config
from paywall.errors import PaywallError
from paywall.logs import get_logger
from paywall.settings import Settings
from streaming import contracts
from streaming.heartbeat import Heartbeat
from streaming.topics import DEAD_LETTER_TOPICS

log = get_logger(__name__)
PROCESSED = Counter(
    "paywall_consumer_processed_total", "Messages handled by consumers", ["group", "result"]
)
LAG = Gauge(
    "paywall_consumer_lag_messages", "Messages behind the end of the topic", ["group", "topic"]
)
KAFKA_ERRORS = Counter(
    "paywall_consumer_kafka_errors_total",
    "Kafka errors a consumer survived (commit, poll, assignment)",
    ["group", "during"],
)
LAG_EVERY_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 10.0
# Errors no retry can fix: wrong credentials or missing permissions.
FATAL_ERRORS = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)
# A subscribed topic that does not exist may be being created (`paywall topics sync`):
# fatal only once it has been missing this long.
UNKNOWN_TOPIC_ERRORS = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})
UNKNOWN_TOPIC_GRACE_SECONDS = 60.0


class Retryable(Exception):
    """A passing failure (a provider's 5xx, a timeout): retry, then dead-letter."""


class ConsumerStopped(PaywallError):
    """A Kafka error that retrying cannot fix; the consumer stops."""


@dataclass
class Delivery:
    envelope: dict[str, Any]
    topic: str
    partition: int
    offset: int


Handler = Callable[[Delivery], None]


@dataclass
class ConsumerLoop:
    settings: Settings
    group: str
    topics: list[str]
    handler: Handler
    retries: int = 3
    backoff: float = 0.5
    group_id: str | None = None  # the Kafka group; defaults to `group`
    # The handler's own work for quiet moments (the audit handler's pending forwards).
    on_idle: Callable[[], None] | None = None
    # Touched on progress (a message handled, or caught up): the liveness probe reads it.
    heartbeat: Heartbeat = field(default_factory=lambda: Heartbeat(None))
    stats: dict[str, int] = field(default_factory=lambda: {"ok": 0, "dead_letter": 0})

    def __post_init__(self) -> None:
        self.consumer = Consumer(
            kafka_config(
                self.settings,
                **{
                    "group.id": self.group_id or self.group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    # tansu joins a group in about half the session timeout: keep it short.
                    "session.timeout.ms": 6000,
                    "log_level": 3,
                },
            )
        )
        self.dead_letters = Producer(
            kafka_config(
                self.settings, **{"enable.idempotence": True, "acks": "all", "log_level": 3}
            )
        )
        self.dlq_topic = DEAD_LETTER_TOPICS[self.group].name
        self.consumer.subscribe(self.topics, on_assign=self._assigned, on_revoke=self._revoked)
        self._lag_measured = time.monotonic()
        self._failures = 0  # Kafka errors in a row: the backoff grows with them
        self._topic_missing_since: float | None = None
        self._behind: int | None = None  # messages left on our partitions, when measured

    def poll_once(self, timeout: float = 0.5) -> bool:
        """Handle at most one message; True when one was handled (and its commit tried)."""
        if time.monotonic() - self._lag_measured > LAG_EVERY_SECONDS:
            try:
                self.measure_lag()
            except KafkaException as exc:
                self._kafka_error("assignment", exc.args[0])
        try:
            msg = self.consumer.poll(timeout)
        except KafkaException as exc:
            self._kafka_error("poll", exc.args[0])
            return False
        if msg is None:
            if self._behind == 0 and self.consumer.assignment():
                self.heartbeat.beat()  # caught up: nothing to do is progress too
            if self.on_idle is not None:
                self.on_idle()
            return False
        err = msg.error()
        if err is not None:
            self._kafka_error("poll", err)
            return False
        self._failures, self._topic_missing_since = 0, None
        self._handle(msg)
        self._commit(msg)
        self.heartbeat.beat()
        return True

    def measure_lag(self) -> dict[str, int]:
        """Lag per topic from the fetch responses' high watermarks (cached: no extra calls).

        Fetch responses carry the true end offset even where a broker's offset listing
        does not (tansu's), so this is right on both.
        """
        self._lag_measured = time.monotonic()
        lag: dict[str, int] = {}
        for tp in self.consumer.assignment():
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            position = self.consumer.position([tp])[0].offset
            if high >= 0 and position >= 0:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(high - position, 0)
        for topic, behind in lag.items():
            LAG.labels(self.group, topic).set(behind)
        self._behind = sum(lag.values()) if lag else None
        return lag

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Several processes in one group share the partitions: each says which it holds.
        held = sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)
        log.info("consumer.assigned", group=self.group, partitions=held)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("consumer.revoked", group=self.group, partitions=len(partitions))

    def run(self, stop: Callable[[], bool]) -> None:
        """Poll until `stop()` is true; Kafka's passing errors back off inside poll_once."""
        try:
            while not stop():
                self.poll_once()
        finally:
            self.close()

    def _commit(self, msg: Message) -> None:
        try:
            committed = self.consumer.commit(message=msg, asynchronous=False) or []
        except KafkaException as exc:
            self._kafka_error("commit", exc.args[0], msg)
            return
        failed = next((tp.error for tp in committed if tp.error is not None), None)
        if failed is not None:
            self._kafka_error("commit", failed, msg)

    def _kafka_error(self, during: str, err: KafkaError, msg: Message | None = None) -> None:
        """One line per error, no payload; stop on what cannot pass, else back off."""
        fields: dict[str, Any] = {"group": self.group, "during": during, "error": err.name()}
        if msg is not None:
            fields.update(topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
        if self._is_fatal(err):
            log.error("consumer.fatal", **fields, reason=err.str())
            raise ConsumerStopped(f"consumer {self.group}: {during}: {err.name()}: {err.str()}")
        KAFKA_ERRORS.labels(self.group, during).inc()
        if during == "commit":
            # Handled, not committed: it comes again after the rebalance and is deduplicated.
            log.warning("consumer.commit_failed", **fields)
            return
        self._failures += 1
        delay = min(self.backoff * 2 ** (self._failures - 1), MAX_BACKOFF_SECONDS)
        log.warning("consumer.kafka_error", **fields, retry_in=delay)
        time.sleep(delay)

    def _is_fatal(self, err: KafkaError) -> bool:
        if err.fatal() or err.code() in FATAL_ERRORS:
            return True
        if err.code() not in UNKNOWN_TOPIC_ERRORS:
            return False
        now = time.monotonic()
        if self._topic_missing_since is None:
            self._topic_missing_since = now
        return now - self._topic_missing_since > UNKNOWN_TOPIC_GRACE_SECONDS

    def close(self) -> None:
        self.consumer.close()
        self.dead_letters.flush(10)

    def _handle(self, msg: Message) -> None:
        try:
            envelope = json.loads(msg.value() or b"")
            contracts.check_envelope(envelope)
        except (ValueError, contracts.ContractError) as exc:
            self._dead_letter(msg, f"poison: {exc}")
            return
        delivery = Delivery(envelope, msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        for attempt in range(self.retries):
            try:
                self.handler(delivery)
                self.stats["ok"] += 1
                PROCESSED.labels(self.group, "ok").inc()
                return
            except Retryable as exc:
                log.warning(
                    "consumer.retry",
                    group=self.group,
                    attempt=attempt + 1,
                    event_id=envelope["event_id"],
                    error=str(exc),
                )
                time.sleep(self.backoff * 2**attempt)
        self._dead_letter(msg, f"gave up after {self.retries} attempts")

    def _dead_letter(self, msg: Message, reason: str) -> None:
        original = msg.headers() or []
        headers: list[tuple[str, str | bytes | None]] = [(str(h[0]), h[1]) for h in original]
        headers += [
            ("dlq_reason", reason[:500].encode()),
            ("dlq_source", f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode()),
        ]
        self.dead_letters.produce(self.dlq_topic, key=msg.key(), value=msg.value(), headers=headers)
        if self.dead_letters.flush(15):
            # Not parked: do not commit past it; the loop stops and the message returns.
            raise RuntimeError("dead-letter topic unavailable")
        self.stats["dead_letter"] += 1
        PROCESSED.labels(self.group, "dead_letter").inc()
        log.warning("consumer.dead_letter", group=self.group, reason=reason[:200])
