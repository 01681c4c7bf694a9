"""`paywall topics sync`: create every declared topic that the broker lacks."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from paywall.clients import kafka_config
from paywall.errors import PaywallError
from paywall.settings import Settings
from streaming.topics import ALL_TOPICS, Topic


def new_topic(topic: Topic, settings: Settings) -> NewTopic:
    """A declared topic with the environment's durability (KAFKA_REPLICATION_FACTOR, ...)."""
    return NewTopic(
        topic.name,
        topic.partitions,
        settings.replication_factor,
        config={
            "retention.ms": str(topic.retention_ms),
            "min.insync.replicas": str(settings.min_insync_replicas),
        },
    )


def sync_topics(settings: Settings) -> list[str]:
    """Create the missing topics; the names created (existing ones are left alone)."""
    # log_level 0: an unreachable broker is one error from us, not a log line per retry.
    admin = AdminClient(kafka_config(settings, log_level=0))
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [new_topic(t, settings) for t in ALL_TOPICS if t.name not in existing]
    created = []
    for name, future in admin.create_topics(wanted).items() if wanted else []:
        try:
            future.result(15)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:  # a racing sync
                continue
            if err.code() in (KafkaError.INVALID_REPLICATION_FACTOR, KafkaError.INVALID_CONFIG):
                raise PaywallError(
                    f"KAFKA_REPLICATION_FACTOR / KAFKA_MIN_INSYNC_REPLICAS: the broker refused "
                    f"{name}: {err.str()}"
                ) from exc
            raise
    return created
