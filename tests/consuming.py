"""Consumer groups for tests that share the session's topics.

Every test of the session publishes to the same topics, so a new group reading from the
earliest offset would handle every event the session produced before it (tens of thousands
late in a run) and the test's time would grow with its place in the run. A group made here
starts where the topics end when it is made: it handles the events of its own test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from confluent_kafka import Consumer, TopicPartition

from paywall.clients import kafka_config
from paywall.kafka_security import KafkaSecurity
from paywall.settings import Settings
from streaming.consumers.runner import ConsumerLoop, Handler
from streaming.lake import kafka_offsets as ko
from streaming.topics import EVENT_TOPICS


def event_topic_names() -> list[str]:
    return [t.name for t in EVENT_TOPICS.values()]


def topic_ends(settings: Settings, topics: Sequence[str] | None = None) -> ko.TopicOffsets:
    """The next offset of every partition of the topics (all event topics by default)."""
    assert settings.kafka_bootstrap_servers
    bootstrap, security = settings.kafka_bootstrap_servers, KafkaSecurity.from_settings(settings)
    found = ko.partitions_of(bootstrap, topics or event_topic_names(), security)
    return ko.end_offsets(bootstrap, found, security=security)


def lake_start(settings: Settings, topics: Sequence[str] | None = None) -> str:
    """The lake job's `starting_offsets` for a new checkpoint that skips what is there now."""
    return json.dumps(topic_ends(settings, topics))


def group_from_now(settings: Settings, prefix: str, topics: Sequence[str] | None = None) -> str:
    """A new group id whose committed offsets are the topics' current ends."""
    group_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    ends = [
        TopicPartition(topic, int(partition), offset)
        for topic, parts in topic_ends(settings, topics).items()
        for partition, offset in parts.items()
    ]
    consumer = Consumer(
        kafka_config(
            settings, **{"group.id": group_id, "enable.auto.commit": False, "log_level": 3}
        )
    )
    try:
        # A group with no members takes a plain commit: no join, no rebalance to wait for.
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()
    return group_id


def consume_until_idle(
    settings: Settings,
    name: str,
    handler: Handler,
    group_id: str,
    *,
    topics: Sequence[str] | None = None,
    idle_polls: int = 6,
    backoff: float = 0.05,
) -> ConsumerLoop:
    """Run consumer `name`'s loop under `group_id` until it has had nothing for a while."""
    loop = ConsumerLoop(
        settings, name, list(topics or event_topic_names()), handler,
        backoff=backoff, group_id=group_id,
    )  # fmt: skip
    idle = 0
    try:
        while idle < idle_polls:
            got = loop.poll_once(0.5)
            # Idle only counts once the group has given us partitions (tansu joins slowly).
            idle = 0 if got or not loop.consumer.assignment() else idle + 1
    finally:
        loop.close()
    return loop
