"""Lake ingest rate (events/s) against raw confluent-kafka consume, on a fresh local stack.

    .venv/bin/python bench/lake_ingest.py [--events 100000] [--batch 50000] [--rounds 3]

Baseline, measured in the same run on the same topic: one confluent-kafka consumer
reading the same events (assign + consume, values touched), the cheapest possible read.
The faster of two reads is kept, and each measured run gets a baseline read of its own
events: the local broker reads a partition more slowly as it grows.

Measured: the lake job's available_now run over the same events (parse, hash, Parquet
to S3, manifests), with the SparkSession already up (its start-up is printed apart),
then, `--rounds` times, again over as many new events with its Python workers warm; of a
warm run, the batches after the first give the steady-state rate. Target: at least 0.5x
the baseline's rate. The floors: Spark reading through the same source into Spark's
`noop` sink (no parse, no hashing, no Parquet, no S3), which no lake job on that source
can beat; after each warm run, exactly that run's events in as many batches (issue 17's
floor: `lake, warm / floor`, target 0.8x, printed per round and as the median of the
rounds, since one round's ratio moves by a tenth between runs; each round writes a topic
of its own, as the local broker reads a growing partition more slowly); at the end, the
first run's events (against the raw read). Each round also prints the CPU-seconds per
100,000 events of the lake run and of its floor, per process: Spark's JVM, its Python
workers, the broker, the S3 server and this process (the driver).
Also printed, with the stream running on a 1 s trigger: Kafka → lake latency of single
events, and signup → lake latency (a signup over the HTTP API, its outbox rows relayed to
Kafka, until its `registration.completed` row is in a committed lake batch).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psutil  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from bench.cpu import CpuMeter  # noqa: E402
from bench.fresh_stack import fresh_stack  # noqa: E402
from paywall.clients import ensure_bucket, kafka_config  # noqa: E402
from paywall.settings import Settings  # noqa: E402
from paywall.stack.local import LocalStack  # noqa: E402
from streaming.lake.config import LakeConfig  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PARTITIONS = 3


def envelope(i: int) -> bytes:
    customer = f"cus_{i}"
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "customer.created",
            "schema_version": 1,
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "producer": "customer-service",
            "key": customer,
            "data": {
                "customer_id": customer,
                "tenant_id": None,
                "email": f"user{i}@example.com",
                "name": f"User {i}",
                "phone": "+15550100",
                "marketing_opt_in": False,
                "status": "active",
            },
        }
    ).encode()


def produce(settings: Settings, topic: str, count: int, first: int = 0) -> None:
    if first == 0:
        admin = AdminClient(kafka_config(settings))
        for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
            future.result()
    producer = Producer(kafka_config(settings, **{"linger.ms": 20}))
    for i in range(first, first + count):
        producer.produce(topic, envelope(i), key=f"cus_{i}")
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def raw_consume(
    settings: Settings, topic: str, count: int, starts: list[int] | None = None
) -> float:
    """Seconds to read `count` events from `starts` (per partition; default the beginning)."""
    consumer = Consumer(
        kafka_config(
            settings, **{"group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
    )
    first = starts or [0] * PARTITIONS
    consumer.assign([TopicPartition(topic, p, first[p]) for p in range(PARTITIONS)])
    seen, size = 0, 0
    start = time.perf_counter()
    while seen < count:
        for msg in consumer.consume(10_000, timeout=1.0):
            if msg.error() is None:
                size += len(msg.value() or b"")
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


class Manifests:
    """Lake manifests written since the last look: how the latency runs see a batch land."""

    def __init__(self, cfg: LakeConfig) -> None:
        from pyarrow.fs import FileSelector

        from streaming.lake.bucket import s3_filesystem, sink_options
        from streaming.lake.layout import MANIFESTS_PREFIX

        self.s3 = s3_filesystem(sink_options(cfg.bucket, cfg.s3))
        self.selector = FileSelector(
            f"{cfg.bucket}/{MANIFESTS_PREFIX}", allow_not_found=True, recursive=True
        )
        self.seen: set[str] = set()

    def new(self) -> list[dict[str, Any]]:
        from pyarrow.fs import FileType

        found = []
        for info in self.s3.get_file_info(self.selector):
            if info.type == FileType.File and info.path not in self.seen:
                self.seen.add(info.path)
                found.append(json.loads(self.s3.open_input_stream(info.path).read()))
        return found


def raw_rate_of(
    settings: Settings, topic: str, count: int, starts: list[int] | None = None
) -> float:
    """The baseline: the faster of two raw reads of the same events, in msgs/s.

    Each comparison gets its own: the local broker reads a partition more slowly as it
    grows, so a run over newer events is compared with a raw read of those events.
    """
    return count / min(raw_consume(settings, topic, count, starts) for _ in range(2))


def end_offsets(settings: Settings, topic: str) -> list[int]:
    from streaming.lake import kafka_offsets as ko

    assert settings.kafka_bootstrap_servers
    ends = ko.end_offsets(settings.kafka_bootstrap_servers, [(topic, p) for p in range(PARTITIONS)])
    return [ends[topic][str(p)] for p in range(PARTITIONS)]


def steady_rate(progress: list[dict[str, Any]]) -> float | None:
    """Events/s over a run's batches after its first (which starts the Python workers)."""
    steady = [p for p in progress if p["numInputRows"]][1:]
    if not steady:
        return None
    rows = sum(p["numInputRows"] for p in steady)
    return rows / (sum(p["durationMs"]["triggerExecution"] for p in steady) / 1000)


def read_only(spark: SparkSession, cfg: LakeConfig, checkpoint: Path) -> tuple[float, int, list]:
    """The source alone: the topic's events (from `cfg.starting_offsets`) into `noop`."""
    from streaming.lake.job import read_kafka

    t0 = time.perf_counter()
    query = (
        read_kafka(spark, cfg)
        .writeStream.format("noop")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    rows = sum(p["numInputRows"] for p in query.recentProgress)
    return time.perf_counter() - t0, rows, query.recentProgress


def latency(
    spark: SparkSession, cfg: LakeConfig, settings: Settings, topic: str, samples: int
) -> list[float]:
    """Seconds from produce to the event's manifest appearing, stream running (1 s trigger)."""
    from streaming.lake.job import start_lake_queries

    manifests = Manifests(cfg)
    query = start_lake_queries(spark, cfg, available_now=False)[0]
    producer = Producer(kafka_config(settings))
    out = []
    try:
        time.sleep(3)  # let the first (empty) trigger pass
        manifests.new()
        for i in range(samples):
            start = time.perf_counter()
            producer.produce(topic, envelope(10_000_000 + i))
            producer.flush(10)
            while not manifests.new():
                time.sleep(0.02)
            out.append(time.perf_counter() - start)
    finally:
        query.stop()
    return out


def signup_latency(spark: SparkSession, cfg: LakeConfig, samples: int) -> list[float]:
    """Seconds from a signup's request to its registration.completed row in a lake manifest."""
    import threading

    from paywall import db
    from paywall.cli.demo_flow import api_server, partner_token
    from paywall.clients import make_test_card
    from paywall.settings import get_settings
    from streaming import relay
    from streaming.admin import sync_topics
    from streaming.lake.job import start_lake_queries

    def completed() -> bool:
        return any(
            f["event_type"] == "registration.completed" for m in manifests.new() for f in m["files"]
        )

    settings = get_settings()
    db.upgrade(settings)
    sync_topics(settings)
    manifests = Manifests(cfg)
    out = []
    with api_server(settings) as base:
        settings = get_settings()
        headers = {"Authorization": f"Bearer {partner_token(base, settings)}"}
        stop = threading.Event()
        relaying = threading.Thread(
            target=relay.run, args=(db.engine(settings), settings, stop.is_set), daemon=True
        )
        relaying.start()
        query = start_lake_queries(spark, cfg, available_now=False)[0]
        try:
            time.sleep(3)  # let the first (empty) trigger pass
            manifests.new()
            for i in range(samples):
                body = {
                    "email": f"lake-bench-{uuid.uuid4().hex[:8]}@example.com",
                    "password": "bench password 1234",
                    "name": f"Bench {i}",
                    "plan_id": "basic-monthly",
                    "payment_method_id": make_test_card(settings),
                }
                start = time.perf_counter()
                resp = httpx.post(
                    f"{base}/v1/registrations",
                    json=body,
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                    timeout=60,
                )
                assert resp.status_code == 201, resp.text
                while not completed():
                    time.sleep(0.02)
                out.append(time.perf_counter() - start)
        finally:
            query.stop()
            stop.set()
            relaying.join(30)
    return out


PY = "python:"  # the meter's names for Python worker daemons


def process_pids(root: Path) -> dict[str, int]:
    """The processes whose CPU a round reads: Spark's JVM, each of its Python worker daemons
    (one per kind of work: tasks, the data source's planning, the sink's commits), and the
    stack's broker and S3 server. This process, the driver, is read as its own."""
    java = [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]
    assert len(java) == 1, f"expected one Spark JVM, found {len(java)}"
    daemons = {}
    for child in java[0].children():
        try:
            command = child.cmdline()
        except psutil.Error:  # a worker that exited (a zombie until the JVM reaps it)
            continue
        if "pyspark.daemon" in command:
            daemons[f"{PY}{command[-1]}"] = child.pid
    assert daemons, "no Python worker daemon under the JVM (spark.python.use.daemon)"
    parts = {p.name: p.pid for p in LocalStack(root / "stack").status() if p.pid is not None}
    return {"spark": java[0].pid, **daemons, "broker": parts["kafka"], "S3": parts["s3"]}


def cpu_line(cpu: dict[str, float], events: int) -> str:
    """CPU-seconds per 100,000 events: the JVM (without its Python workers), the Python
    workers, the broker, S3 and the driver."""
    python = sum(v for k, v in cpu.items() if k.startswith(PY))
    per = {
        "JVM": cpu["spark"] - python,
        "Python workers": python,
        **{k: v for k, v in cpu.items() if k != "spark" and not k.startswith(PY)},
    }
    scale = 100_000 / events
    parts = ", ".join(f"{k} {v * scale:.2f}" for k, v in per.items())
    return f"{sum(per.values()) * scale:.2f} ({parts})"


def warm_round(
    spark: SparkSession,
    cfg: LakeConfig,
    settings: Settings,
    topic: str,
    count: int,
    tmp: Path,
    meter: CpuMeter,
) -> tuple[float, float, float | None, float | None]:
    """`count` events to a new `topic` through the lake job (Python workers warm), then the
    floor over the same events: (lake events/s, floor events/s, each one's steady state).

    Each round has a topic of its own: the local broker reads a partition more slowly as it
    grows, so rounds on one topic would each be slower than the last."""
    from streaming.lake.job import start_lake_queries

    produce(settings, topic, count)
    raw_rate = raw_rate_of(settings, topic, count)
    print(f"baseline, raw consume of {topic}: {raw_rate:,.0f} msgs/s")
    lake_cfg = dataclasses.replace(cfg, topics=(topic,), checkpoint=str(tmp / f"lake-{topic}"))
    meter.start()
    t0 = time.perf_counter()
    query = start_lake_queries(spark, lake_cfg, available_now=True)[0]
    query.awaitTermination()
    warm = time.perf_counter() - t0
    lake_cpu = meter.stop()
    rows = sum(p["numInputRows"] for p in query.recentProgress)
    assert rows == count, f"lake read {rows} of {count}"
    warm_rate = count / warm
    print(
        f"lake job available_now, warm workers: {warm:.2f}s, "
        f"{warm_rate:,.0f} events/s, ratio {warm_rate / raw_rate:.3f}x"
    )
    warm_steady = steady_rate(query.recentProgress)
    if warm_steady:
        print(
            f"  steady state (batches after the first): "
            f"{warm_steady:,.0f} events/s, ratio {warm_steady / raw_rate:.3f}x"
        )
    meter.start()
    floor_secs, floor_rows, floor_progress = read_only(spark, lake_cfg, tmp / f"noop-{topic}")
    floor_cpu = meter.stop()
    assert floor_rows == count, f"floor read {floor_rows} of {count}"
    floor_rate = floor_rows / floor_secs
    print(
        f"floor, the source alone into Spark's noop sink over the same events: "
        f"{floor_secs:.2f}s, {floor_rate:,.0f} events/s"
    )
    print(f"CPU-s per 100,000 events, lake:  {cpu_line(lake_cpu, count)}")
    print(f"CPU-s per 100,000 events, floor: {cpu_line(floor_cpu, count)}")
    return warm_rate, floor_rate, warm_steady, steady_rate(floor_progress)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50_000, help="maxOffsetsPerTrigger")
    parser.add_argument("--latency-samples", type=int, default=5)
    parser.add_argument(
        "--rounds", type=int, default=3, help="warm runs, each against its own floor"
    )
    args = parser.parse_args()

    with fresh_stack("lake-bench-") as (tmp, settings):
        settings = settings.model_copy(update={"lake_bucket": "bench-lake"})
        ensure_bucket(settings, settings.lake_bucket)
        topic = f"bench.lake.{uuid.uuid4().hex[:6]}"
        t0 = time.perf_counter()
        produce(settings, topic, args.events)
        print(f"produced {args.events} events to {topic} in {time.perf_counter() - t0:.1f}s")

        raw_rate = raw_rate_of(settings, topic, args.events)
        print(f"baseline, raw confluent-kafka consume: {raw_rate:,.0f} msgs/s")

        from streaming.lake.config import lake_config
        from streaming.lake.job import lake_spark_session, start_lake_queries

        cfg = lake_config(
            settings,
            Path(tmp) / "checkpoint",
            topics=[topic],
            max_offsets_per_trigger=args.batch,
        )
        t0 = time.perf_counter()
        spark = lake_spark_session(cfg)
        print(f"SparkSession start-up: {time.perf_counter() - t0:.1f}s (not in the rate)")

        t0 = time.perf_counter()
        query = start_lake_queries(spark, cfg, available_now=True)[0]
        query.awaitTermination()
        lake = time.perf_counter() - t0
        rows = sum(p["numInputRows"] for p in query.recentProgress)
        assert rows == args.events, f"lake read {rows} of {args.events}"
        lake_rate = args.events / lake
        print(
            f"lake job available_now: {lake:.2f}s, {lake_rate:,.0f} events/s "
            f"({len(query.recentProgress)} batches)"
        )
        for p in query.recentProgress:
            print(
                f"  batch {p['batchId']}: {p['numInputRows']} rows, "
                f"{p['durationMs']['triggerExecution']} ms"
            )
        print(f"ratio lake / baseline: {lake_rate / raw_rate:.3f}x (target >= 0.5x)")

        # Runs over new events, Python workers warm, each against its own floor: the
        # source into `noop` over exactly that run's events, in as many batches, so that
        # both pay one query start over the same rows (issue 17's floor).
        ratios, steady_ratios = [], []
        meter = CpuMeter(process_pids(Path(tmp)), own="driver")
        for round_no in range(1, args.rounds + 1):
            warm_rate, floor_rate, warm_steady, floor_steady = warm_round(
                spark, cfg, settings, f"{topic}.r{round_no}", args.events, Path(tmp), meter
            )
            ratios.append(warm_rate / floor_rate)
            print(f"round {round_no}: lake, warm / floor: {ratios[-1]:.2f}x")
            if warm_steady and floor_steady:
                steady_ratios.append(warm_steady / floor_steady)
                print(
                    f"round {round_no}: lake, warm steady state / floor steady state: "
                    f"{steady_ratios[-1]:.2f}x"
                )
        print(
            f"lake, warm / floor: {statistics.median(ratios):.2f}x, the median of "
            f"{len(ratios)} rounds ({min(ratios):.2f}-{max(ratios):.2f}x; target >= 0.8x)"
        )
        if steady_ratios:
            print(
                "lake, warm steady state / floor steady state: "
                f"{statistics.median(steady_ratios):.2f}x, the median of {len(steady_ratios)}"
            )

        secs, rows, progress = read_only(spark, cfg, Path(tmp) / "checkpoint-noop")
        raw_rate = raw_rate_of(settings, topic, rows)
        print(f"baseline, raw consume of all {rows} events: {raw_rate:,.0f} msgs/s")
        print(
            f"floor, the source alone into Spark's noop sink: {rows} events in {secs:.2f}s, "
            f"{rows / secs:,.0f} events/s, ratio {rows / secs / raw_rate:.3f}x"
        )
        steady = steady_rate(progress)
        if steady:
            print(
                f"  steady state (batches after the first): "
                f"{steady:,.0f} events/s, ratio {steady / raw_rate:.3f}x"
            )

        if args.latency_samples > 0:
            live = dataclasses.replace(cfg, trigger_seconds=1.0)
            waits = latency(spark, live, settings, topic, args.latency_samples)
            print(
                f"Kafka -> lake latency (1 s trigger), {len(waits)} events: "
                f"median {statistics.median(waits):.2f}s, max {max(waits):.2f}s"
            )
            every_topic = dataclasses.replace(
                lake_config(settings, Path(tmp) / "checkpoint-all"), trigger_seconds=1.0
            )
            waits = signup_latency(spark, every_topic, args.latency_samples)
            print(
                f"signup -> lake latency (1 s trigger, relay polling 0.2 s), {len(waits)} "
                f"signups: median {statistics.median(waits):.2f}s, max {max(waits):.2f}s"
            )
        spark.stop()


if __name__ == "__main__":
    main()
