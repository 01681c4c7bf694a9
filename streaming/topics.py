"""Every Kafka topic, its partitions and its key, declared once.

Each service's outbox feeds one topic named for the service; the key is the aggregate id
(order per aggregate), the value the JSON envelope, and the event id travels as a header.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    key: str
    retention_ms: int = 7 * 24 * 3600 * 1000


EVENT_TOPICS: dict[str, Topic] = {
    service: Topic(f"paywall.{service}", 3, f"{service} aggregate id")
    for service in ("auth", "customer", "subscription", "payment", "registration", "billing")
}
# Poison messages, with the reason in headers; one per consumer group.
DEAD_LETTER_TOPICS: dict[str, Topic] = {
    consumer: Topic(f"paywall.dlq.{consumer}", 1, "original key", 30 * 24 * 3600 * 1000)
    for consumer in ("notification", "audit", "analytics", "erasure", "webhooks")
}
ALL_TOPICS: tuple[Topic, ...] = (*EVENT_TOPICS.values(), *DEAD_LETTER_TOPICS.values())

EVENT_ID_HEADER = "event_id"
EVENT_TYPE_HEADER = "event_type"


def topic_for_service(service: str) -> str:
    return EVENT_TOPICS[service].name
