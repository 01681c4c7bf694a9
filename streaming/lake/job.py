"""The lake job: Kafka → lake rows (parse.py) → S3 Parquet, one Structured Streaming query.

Source and sink are chosen by config (streaming.lake.config): here the Python Kafka
source and the Python lake sink; a cluster with the connector jars sets LAKE_SOURCE=kafka
(native `kafka` source) and may set LAKE_SINK=parquet (Spark's file sink, exactly once
through its own `_spark_metadata` log, Hive-style `event_type=` folders, no manifests).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from paywall.settings import Settings, get_settings
from streaming.lake.bucket import sink_options
from streaming.lake.config import LakeConfig, lake_config

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

QUERY_NAME = "paywall-lake"


def run_lake_stream(
    settings: Settings,
    available_now: bool = False,
    checkpoint: Path | str | None = None,
    *,
    topics: list[str] | None = None,
    max_offsets_per_trigger: int | None = None,
    starting_offsets: str = "earliest",
) -> None:
    """Run the lake stream: until caught up (`available_now`), or until SIGTERM/Ctrl-C."""
    cfg = lake_config(
        settings,
        checkpoint,
        topics=topics,
        max_offsets_per_trigger=max_offsets_per_trigger,
        starting_offsets=starting_offsets,
    )
    if not settings.is_production:
        from paywall.clients import ensure_bucket

        ensure_bucket(settings, cfg.bucket)
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None
    spark = lake_spark_session(cfg)
    try:
        queries = start_lake_queries(spark, cfg, available_now)
        _await(queries, stop_on_signal=not available_now, grace=cfg.stop_grace_seconds)
    finally:
        if owned:
            spark.stop()


def lake_spark_session(cfg: LakeConfig | None = None) -> SparkSession:
    """A small local session (2 cores, UI off, UTC), or the cluster's when spark-submitted."""
    from pyspark.sql import SparkSession

    _worker_python()
    builder = SparkSession.builder.appName(QUERY_NAME)
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):  # spark-submit chose the master already
        builder = builder.master(get_settings().spark_master)
    conf = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **(_s3a_conf(cfg) if cfg is not None and cfg.sink == "parquet" else {}),
        **(cfg.spark_conf if cfg is not None else {}),
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    for key in ("spark.sql.shuffle.partitions", "spark.sql.session.timeZone"):
        spark.conf.set(key, conf[key])  # a reused session keeps its own otherwise
    return spark


def _worker_python() -> None:
    """Python workers run this interpreter (with pyarrow, confluent-kafka, this repo),
    through spark_python.sh unless the deployment set PYSPARK_PYTHON itself."""
    if os.environ.get("PYSPARK_PYTHON"):
        return
    import pyspark

    os.environ["PAYWALL_SPARK_PYTHON"] = sys.executable
    os.environ["PAYWALL_PYSPARK_LIB"] = str(Path(pyspark.__file__).parent / "python" / "lib")
    os.environ["PYSPARK_PYTHON"] = str(Path(__file__).with_name("spark_python.sh"))


def start_lake_queries(
    spark: SparkSession, cfg: LakeConfig, available_now: bool
) -> list[StreamingQuery]:
    from streaming.lake.parse import RECORD_COLUMNS, accepted, lake_columns, parse_events, rejected

    records = read_kafka(spark, cfg)
    if cfg.sink == "python":
        from streaming.lake.sink import PII_SALT_OPTION, SINK_NAME, LakeSink

        spark.dataSource.register(LakeSink)
        # The sink parses the records itself (parse.lake_rows).
        writer = (
            records.select(*RECORD_COLUMNS)
            .writeStream.format(SINK_NAME)
            .queryName(QUERY_NAME)
            .options(**sink_options(cfg.bucket, cfg.s3))
            .option(PII_SALT_OPTION, cfg.pii_salt)
            .option("checkpointLocation", cfg.checkpoint)
        )
        return [_trigger(writer, cfg, available_now).start()]
    parsed = parse_events(records, salt=cfg.pii_salt)
    # Spark's file sink takes one output per query: events and rejects run side by side,
    # each exactly once through its own checkpoint and `_spark_metadata` log.
    events = accepted(parsed).select(*lake_columns(), "event_date")
    bad = rejected(parsed).select(
        "topic", "partition", "offset", "key", "reject_reason", "raw_value", "ingested_at"
    )
    out = []
    for name, frame, path, partition_by in (
        ("events", events, "events", ["event_type", "event_date"]),
        ("rejects", bad, "_rejects/events", []),
    ):
        writer = (
            frame.writeStream.format("parquet")
            .queryName(f"{QUERY_NAME}-{name}")
            .option("path", f"s3a://{cfg.bucket}/{path}")
            .option("checkpointLocation", f"{cfg.checkpoint.rstrip('/')}/{name}")
            .partitionBy(*partition_by)
        )
        out.append(_trigger(writer, cfg, available_now).start())
    return out


def read_kafka(spark: SparkSession, cfg: LakeConfig) -> DataFrame:
    """Kafka records with the native source's columns, from whichever source is configured."""
    if cfg.source == "kafka":
        return (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", cfg.bootstrap_servers)
            .option("subscribe", ",".join(cfg.topics))
            .option("startingOffsets", cfg.starting_offsets)
            .option("maxOffsetsPerTrigger", str(cfg.max_offsets_per_trigger))
            .option("minPartitions", str(cfg.min_partitions))
            .option("failOnDataLoss", "true")
            .options(**cfg.security.spark_kafka_options())
            .load()
        )
    from streaming.lake.source import SOURCE_NAME, KafkaSource

    spark.dataSource.register(KafkaSource)
    return (
        spark.readStream.format(SOURCE_NAME)
        .option("bootstrap_servers", cfg.bootstrap_servers)
        .option("topics", ",".join(cfg.topics))
        .option("max_offsets_per_trigger", str(cfg.max_offsets_per_trigger))
        .option("min_partitions", str(cfg.min_partitions))
        .option("starting_offsets", cfg.starting_offsets)
        .options(**cfg.security.as_options())
        .load()
    )


def _trigger(writer, cfg: LakeConfig, available_now: bool):  # type: ignore[no-untyped-def]
    if available_now:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=f"{cfg.trigger_seconds} seconds")


def _s3a_conf(cfg: LakeConfig) -> dict[str, str]:
    conf = {"spark.hadoop.fs.s3a.path.style.access": "true"}
    if cfg.s3.endpoint_url:
        conf["spark.hadoop.fs.s3a.endpoint"] = cfg.s3.endpoint_url
    if cfg.s3.access_key_id:
        conf["spark.hadoop.fs.s3a.access.key"] = cfg.s3.access_key_id
        conf["spark.hadoop.fs.s3a.secret.key"] = cfg.s3.secret_access_key or ""
    return conf


def _await(queries: list[StreamingQuery], stop_on_signal: bool, grace: float) -> None:
    stopping: list[int] = []
    if stop_on_signal:

        def stop(signum: int, frame: FrameType | None) -> None:
            # Only a flag: a py4j call from the handler would cut into the main thread's
            # own call (awaitTermination) on the gateway, which then fails.
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and any(q.isActive for q in queries):
            for q in queries:
                q.awaitTermination(1)
    except KeyboardInterrupt:
        stopping.append(signal.SIGINT)
    if stopping:
        log.info("lake stream stopping on signal %s", stopping[0])
        for q in queries:
            _between_batches(q, grace)
            q.stop()
        return
    for q in queries:
        if q.exception() is not None:
            raise RuntimeError(f"lake query {q.name} failed: {q.exception()}")


def _between_batches(query: StreamingQuery, grace: float) -> None:
    """Wait until `query` is not in a trigger (up to `grace` seconds): Spark writes a
    batch's commit log before it ends the trigger, so a stop then cuts no batch."""
    deadline = time.monotonic() + grace
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.05)
