"""Offsets and offset-range reads over confluent-kafka, for the Python Kafka source.

The local broker (tansu) answers ListOffsets with a wrong high watermark (the first
offset of the last record batch + 1), but every Fetch response carries the true one.
So the end of a partition is read from the consumer's cached watermark after one fetch;
on a real Kafka broker the same probe returns the same number ListOffsets would.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from paywall.kafka_security import KafkaSecurity

TopicOffsets = dict[str, dict[str, int]]  # {topic: {partition (as str): next offset}}
_PROBE_TIMEOUT_S = 15.0


def _consumer(bootstrap: str, security: KafkaSecurity | None, **extra: Any) -> Consumer:
    # Never joins a group or commits: Spark's checkpoint is the only record of progress.
    conf = {
        "bootstrap.servers": bootstrap,
        **(security or KafkaSecurity()).librdkafka(),
        "group.id": "paywall-lake-reader",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "log_level": 3,
        **extra,
    }
    return Consumer(conf)


def partitions_of(
    bootstrap: str, topics: Iterable[str], security: KafkaSecurity | None = None
) -> list[tuple[str, int]]:
    """Existing partitions of the topics, sorted; a missing topic has none yet."""
    consumer = _consumer(bootstrap, security, **{"allow.auto.create.topics": False})
    try:
        found: list[tuple[str, int]] = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            found.extend((topic, p) for p in meta.partitions)
        return sorted(found)
    finally:
        consumer.close()


def earliest_offsets(
    bootstrap: str, partitions: Iterable[tuple[str, int]], security: KafkaSecurity | None = None
) -> TopicOffsets:
    consumer = _consumer(bootstrap, security)
    try:
        out: TopicOffsets = {}
        for topic, part in partitions:
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
            out.setdefault(topic, {})[str(part)] = max(low, 0)
        return out
    finally:
        consumer.close()


def end_offsets(
    bootstrap: str,
    partitions: Iterable[tuple[str, int]],
    known: dict[tuple[str, int], int] | None = None,
    security: KafkaSecurity | None = None,
) -> TopicOffsets:
    """The true next offset of each partition, from the watermark of one real fetch.

    `known` holds offsets already seen to exist (a batch's start, the last end); the probe
    fetches from there, so a caught-up stream fetches nothing but the watermark.
    """
    wanted = list(partitions)
    if not wanted:
        return {}
    consumer = _consumer(
        bootstrap,
        security,
        **{
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # One fetch per partition is all the probe needs; tiny fetch sizes made it
            # slower (many round trips), so only the wait is short.
            "fetch.wait.max.ms": 10,
            "max.partition.fetch.bytes": 256 * 1024,
        },
    )
    try:
        starts = []
        for topic, part in wanted:
            # ListOffsets' answer is at most the true end here: start the probe fetch there.
            low, reported = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
            hint = (known or {}).get((topic, part), 0)
            starts.append(TopicPartition(topic, part, max(low, reported - 1, hint, 0)))
        consumer.assign(starts)
        pending = set(wanted)
        deadline = time.monotonic() + _PROBE_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no fetch answer from Kafka for {sorted(pending)}")
            msg = consumer.poll(0.2)
            if msg is not None:
                _raise_unless_eof(msg)
                pending.discard((msg.topic(), msg.partition()))  # type: ignore[arg-type]
            # Any fetch answer sets the cached watermark, even an empty one: tansu backed by
            # S3 often answers a short-wait fetch with no records and no EOF, but the true
            # high watermark is in that answer all the same.
            pending = {tp for tp in pending if _cached_high(consumer, *tp) < 0}
        out: TopicOffsets = {}
        for topic, part in wanted:
            out.setdefault(topic, {})[str(part)] = _cached_high(consumer, topic, part)
        return out
    finally:
        consumer.close()


def read_range(
    bootstrap: str,
    topic: str,
    partition: int,
    start: int,
    end: int,
    stall_timeout_s: float = 60.0,
    security: KafkaSecurity | None = None,
) -> Iterator[list[Message]]:
    """Messages with start <= offset < end, in chunks; fails rather than return fewer."""
    if start >= end:
        return
    consumer = _consumer(
        bootstrap, security, **{"auto.offset.reset": "error", "fetch.wait.max.ms": 50}
    )
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        position, last_progress = start, time.monotonic()
        while position < end:
            batch = consumer.consume(num_messages=min(end - position, 10_000), timeout=1.0)
            chunk = []
            for msg in batch:
                if msg.error():
                    raise KafkaException(msg.error())
                offset = msg.offset()
                if offset is not None and position <= offset < end:
                    chunk.append(msg)
                    position = offset + 1
            if chunk:
                last_progress = time.monotonic()
                yield chunk
                continue
            # Offsets can have gaps (compaction, transaction markers): trust the position.
            tp = consumer.position([TopicPartition(topic, partition)])[0]
            if tp.offset >= end:
                return
            position = max(position, tp.offset)
            if time.monotonic() - last_progress > stall_timeout_s:
                raise TimeoutError(
                    f"{topic}[{partition}] stalled at offset {position} before {end}"
                )
    finally:
        consumer.close()


def _cached_high(consumer: Consumer, topic: str, partition: int) -> int:
    """The high watermark of the last fetch answer, or -1 before the first one."""
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    return int(high)


def _raise_unless_eof(msg: Message) -> None:
    err = msg.error()
    if err is not None and err.code() != KafkaError._PARTITION_EOF:
        raise KafkaException(err)
