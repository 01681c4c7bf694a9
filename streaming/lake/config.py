"""The lake job's configuration, derived from `Settings` (LAKE_*, SPARK_MASTER)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from paywall.errors import ConfigError
from paywall.kafka_security import KafkaSecurity
from paywall.settings import Settings, get_settings, state_dir
from streaming.lake.bucket import s3_filesystem, sink_options
from streaming.topics import EVENT_TOPICS

if TYPE_CHECKING:
    from pyarrow import fs

SourceKind = Literal["python", "kafka"]
SinkKind = Literal["python", "parquet"]


def pii_salt(settings: Settings | None = None) -> str:
    """The salt for hashing personal fields (LAKE_PII_SALT)."""
    return (settings or get_settings()).own_secret("LAKE_PII_SALT").get_secret_value()


@dataclass(frozen=True)
class S3Access:
    """What executors need to reach the lake bucket; None means the default AWS chain."""

    endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Access:
        secret = settings.aws_secret_access_key
        return cls(
            settings.s3_endpoint_url,
            settings.aws_region,
            settings.aws_access_key_id,
            secret.get_secret_value() if secret else None,
        )


def lake_filesystem(settings: Settings) -> fs.S3FileSystem:
    """The lake bucket's filesystem as the sink sees it (readers, the warehouse load, tests)."""
    return s3_filesystem(sink_options(settings.lake_bucket, S3Access.from_settings(settings)))


@dataclass(frozen=True)
class LakeConfig:
    bootstrap_servers: str
    topics: tuple[str, ...]
    bucket: str
    s3: S3Access
    checkpoint: str
    pii_salt: str
    max_offsets_per_trigger: int = 50_000
    trigger_seconds: float = 5.0
    stop_grace_seconds: float = 20.0
    min_partitions: int = 1
    source: SourceKind = "python"
    sink: SinkKind = "python"
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    spark_conf: dict[str, str] = field(default_factory=dict)
    # Where a new checkpoint starts: "earliest", "latest", or Spark's JSON of
    # {topic: {partition: offset}}. A checkpoint that exists goes on from its own offsets.
    starting_offsets: str = "earliest"


def default_checkpoint() -> Path:
    return state_dir() / "checkpoints" / "lake"


def lake_config(
    settings: Settings,
    checkpoint: Path | str | None = None,
    *,
    topics: Sequence[str] | None = None,
    max_offsets_per_trigger: int | None = None,
    starting_offsets: str = "earliest",
) -> LakeConfig:
    if not settings.kafka_bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS", "unset; run `paywall stack up` or set it")
    return LakeConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=tuple(topics) if topics else tuple(t.name for t in EVENT_TOPICS.values()),
        bucket=settings.lake_bucket,
        s3=S3Access.from_settings(settings),
        checkpoint=str(checkpoint or default_checkpoint()),
        pii_salt=pii_salt(settings),
        max_offsets_per_trigger=max_offsets_per_trigger or settings.lake_max_offsets_per_trigger,
        trigger_seconds=settings.lake_trigger_seconds,
        stop_grace_seconds=settings.lake_stop_grace_seconds,
        min_partitions=settings.lake_min_partitions,
        source=settings.lake_source,
        sink=settings.lake_sink,
        security=KafkaSecurity.from_settings(settings),
        starting_offsets=starting_offsets,
    )
