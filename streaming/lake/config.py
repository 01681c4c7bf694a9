"""The lake job's settings, read once: the env vars below are not yet in `Settings`.

`LAKE_PII_SALT` is read here and nowhere else; production refuses to run without it,
because a salt everyone knows makes the hashed emails guessable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from paywall.errors import ConfigError
from paywall.settings import Settings, state_dir
from streaming.topics import EVENT_TOPICS

PII_SALT_ENV = "LAKE_PII_SALT"
LOCAL_PII_SALT = "paywall-local-lake-salt"
SOURCE_ENV = "LAKE_SOURCE"  # "python" (confluent-kafka data source) or "kafka" (connector jar)
SINK_ENV = "LAKE_SINK"  # "python" (pyarrow writer + manifests) or "parquet" (Spark file sink)
MAX_OFFSETS_ENV = "LAKE_MAX_OFFSETS_PER_TRIGGER"
TRIGGER_SECONDS_ENV = "LAKE_TRIGGER_SECONDS"

SourceKind = Literal["python", "kafka"]
SinkKind = Literal["python", "parquet"]


def pii_salt(settings: Settings | None = None) -> str:
    """The salt for hashing personal fields; local default outside production."""
    salt = os.environ.get(PII_SALT_ENV, "").strip()
    if salt:
        return salt
    if settings is not None and settings.is_production:
        raise ConfigError(PII_SALT_ENV, "unset; production must not use the public default")
    return LOCAL_PII_SALT


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
    source: SourceKind = "python"
    sink: SinkKind = "python"
    spark_conf: dict[str, str] = field(default_factory=dict)


def default_checkpoint() -> Path:
    return state_dir() / "checkpoints" / "lake"


def lake_config(
    settings: Settings,
    checkpoint: Path | str | None = None,
    *,
    topics: Sequence[str] | None = None,
    max_offsets_per_trigger: int | None = None,
) -> LakeConfig:
    if not settings.kafka_bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS", "unset; run `paywall stack up` or set it")
    source = os.environ.get(SOURCE_ENV, "python")
    sink = os.environ.get(SINK_ENV, "python")
    if source not in ("python", "kafka"):
        raise ConfigError(SOURCE_ENV, f"{source!r} is neither 'python' nor 'kafka'")
    if sink not in ("python", "parquet"):
        raise ConfigError(SINK_ENV, f"{sink!r} is neither 'python' nor 'parquet'")
    limit = max_offsets_per_trigger or _positive_int(MAX_OFFSETS_ENV, 50_000)
    return LakeConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=tuple(topics) if topics else tuple(t.name for t in EVENT_TOPICS.values()),
        bucket=settings.lake_bucket,
        s3=S3Access.from_settings(settings),
        checkpoint=str(checkpoint or default_checkpoint()),
        pii_salt=pii_salt(settings),
        max_offsets_per_trigger=limit,
        trigger_seconds=float(os.environ.get(TRIGGER_SECONDS_ENV, "5")),
        source=source,  # type: ignore[arg-type]
        sink=sink,  # type: ignore[arg-type]
    )


def _positive_int(env: str, default: int) -> int:
    raw = os.environ.get(env)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(env, f"{raw!r} is not an integer") from None
    if value < 1:
        raise ConfigError(env, "must be at least 1")
    return value
