"""`paywall topics sync`: create every declared topic that the broker lacks."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from paywall.clients import kafka_config
from paywall.settings import Settings
from streaming.topics import ALL_TOPICS


def sync_topics(settings: Settings) -> list[str]:
    """Create the missing topics; the names created (existing ones are left alone)."""
    # log_level 0: an unreachable broker is one error from us, not a log line per retry.
    admin = AdminClient(kafka_config(settings, log_level=0))
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(t.name, t.partitions, 1, config={"retention.ms": str(t.retention_ms)})
        for t in ALL_TOPICS
        if t.name not in existing
    ]
    created = []
    for name, future in admin.create_topics(wanted).items() if wanted else []:
        try:
            future.result(15)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a racing sync
                raise
    return created
