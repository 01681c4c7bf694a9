from __future__ import annotations

from paywall.settings import Settings
from streaming.admin import new_topic
from streaming.topics import ALL_TOPICS


def test_topics_are_created_with_the_environments_durability() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, KAFKA_REPLICATION_FACTOR="3", KAFKA_MIN_INSYNC_REPLICAS="2"
    )
    for topic in ALL_TOPICS:
        created = new_topic(topic, settings)
        assert (created.topic, created.num_partitions) == (topic.name, topic.partitions)
        assert created.replication_factor == 3
        assert created.config == {
            "retention.ms": str(topic.retention_ms),
            "min.insync.replicas": "2",
        }
