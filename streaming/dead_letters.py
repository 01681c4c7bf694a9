"""Dead-lettered messages: read them back, and replay them into their own consumer.

A consumer parks a message it could not handle in `paywall.dlq.<consumer>` with the
original key, value and headers, plus `dlq_reason` and `dlq_source` (topic/partition/
offset). Reading never joins a group or commits: the topic is read from its first to its
last offset each time. Replaying hands a message to the consumer's own handler in this
process (as Kafka Connect's DLQ tooling re-feeds one connector, not every reader of the
original topic): the other groups never see it again, and the handler dedupes by event
id, so a replay that already succeeded does nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from paywall.clients import kafka_config
from paywall.kafka_security import KafkaSecurity
from paywall.settings import Settings
from streaming import contracts
from streaming.consumers.runner import Delivery, Handler, Retryable
from streaming.lake import kafka_offsets as ko
from streaming.topics import DEAD_LETTER_TOPICS, EVENT_ID_HEADER, EVENT_TYPE_HEADER


@dataclass(frozen=True)
class DeadLetter:
    consumer: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    def header(self, name: str) -> str:
        return self.headers.get(name, b"").decode(errors="replace")

    @property
    def reason(self) -> str:
        return self.header("dlq_reason")

    @property
    def source(self) -> tuple[str, int, int] | None:
        """Where the consumer read it: (topic, partition, offset)."""
        topic, _, rest = self.header("dlq_source").rpartition("/")
        topic, _, partition = topic.rpartition("/")
        try:
            return topic, int(partition), int(rest)
        except ValueError:
            return None

    @property
    def envelope(self) -> dict[str, Any] | None:
        try:
            parsed = json.loads(self.value or b"")
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    @property
    def event_id(self) -> str:
        return self.header(EVENT_ID_HEADER) or str((self.envelope or {}).get("event_id", ""))

    @property
    def event_type(self) -> str:
        return self.header(EVENT_TYPE_HEADER) or str((self.envelope or {}).get("event_type", ""))


@dataclass(frozen=True)
class Filters:
    offset: int | None = None
    event_id: str | None = None
    event_type: str | None = None
    reason: str | None = None  # a substring of dlq_reason
    since: datetime | None = None

    def match(self, letter: DeadLetter) -> bool:
        return (
            (self.offset is None or letter.offset == self.offset)
            and (self.event_id is None or letter.event_id == self.event_id)
            and (self.event_type is None or letter.event_type == self.event_type)
            and (self.reason is None or self.reason.lower() in letter.reason.lower())
            and (
                self.since is None
                or (letter.timestamp is not None and letter.timestamp >= self.since)
            )
        )


def dead_letter_topic(consumer: str) -> str:
    """The consumer's dead-letter topic; KeyError for a consumer that has none."""
    return DEAD_LETTER_TOPICS[consumer].name


def read(settings: Settings, consumer: str, filters: Filters | None = None) -> Iterator[DeadLetter]:
    """The consumer's dead letters in offset order (every partition, first to last)."""
    topic = dead_letter_topic(consumer)
    bootstrap = kafka_config(settings)["bootstrap.servers"]
    security = KafkaSecurity.from_settings(settings)
    partitions = ko.partitions_of(bootstrap, [topic], security)
    starts = ko.earliest_offsets(bootstrap, partitions, security).get(topic, {})
    ends = ko.end_offsets(bootstrap, partitions, security=security).get(topic, {})
    wanted = filters or Filters()
    for _, partition in partitions:
        start, end = starts.get(str(partition), 0), ends.get(str(partition), 0)
        for chunk in ko.read_range(bootstrap, topic, partition, start, end, security=security):
            for msg in chunk:
                letter = _letter(consumer, msg)
                if wanted.match(letter):
                    yield letter


def replay(letters: Iterable[DeadLetter], handler: Handler) -> list[tuple[DeadLetter, str | None]]:
    """Hand each letter to the consumer's handler once: (letter, None) when handled, else
    (letter, why not). A failure is reported, not parked again: it is still in the topic."""
    results: list[tuple[DeadLetter, str | None]] = []
    for letter in letters:
        envelope = letter.envelope
        try:
            if envelope is None:
                raise contracts.ContractError("not a JSON object")
            contracts.check_envelope(envelope)
            source = letter.source or ("", letter.partition, letter.offset)
            handler(Delivery(envelope, *source))
        except (contracts.ContractError, Retryable) as exc:
            results.append((letter, f"{type(exc).__name__}: {exc}"[:300]))
            continue
        results.append((letter, None))
    return results


def _letter(consumer: str, msg: Message) -> DeadLetter:
    kind, millis = msg.timestamp()
    when = None if kind == TIMESTAMP_NOT_AVAILABLE else datetime.fromtimestamp(millis / 1000, UTC)
    headers = {str(h[0]): (h[1] or b"") for h in (msg.headers() or [])}
    return DeadLetter(
        consumer,
        msg.partition() or 0,
        msg.offset() or 0,
        when,
        msg.key(),
        msg.value(),
        {k: v if isinstance(v, bytes) else str(v).encode() for k, v in headers.items()},
    )
