"""How the local broker serves the read patterns the lake source can use, on a fresh stack.

    .venv/bin/python bench/broker_reads.py [--events 100000] [--growth 3]

Baseline, measured in the same run on the same events: one confluent-kafka consumer
assigned every partition (what bench/lake_ingest.py calls raw consume); the faster of two
reads is kept. Measured against it: the lake source's reads (`read_range`, one consumer
per partition) one partition after another, then all partitions at once from as many
threads, as Spark's tasks would. Then, as the topic grows by `--events` at a time, the
raw read of the newest events. This is why the lake reads one task per partition
(`LAKE_MIN_PARTITIONS=1`) and why each lake run gets a baseline of its own events.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fresh_stack import fresh_stack  # noqa: E402
from bench.lake_ingest import PARTITIONS, end_offsets, produce, raw_rate_of  # noqa: E402
from streaming.lake.kafka_offsets import read_range  # noqa: E402


def ranges_rate(bootstrap: str, topic: str, ends: list[int], threads: int) -> float:
    """Events/s reading each partition with its own consumer, `threads` at a time."""

    def one(partition: int) -> int:
        return sum(
            len(chunk) for chunk in read_range(bootstrap, topic, partition, 0, ends[partition])
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(one, range(PARTITIONS)))
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--growth", type=int, default=3, help="times the topic grows")
    args = parser.parse_args()

    with fresh_stack("broker-bench-") as (_, settings):
        bootstrap = settings.kafka_bootstrap_servers
        assert bootstrap
        topic = f"bench.broker.{uuid.uuid4().hex[:6]}"
        produce(settings, topic, args.events)
        ends = end_offsets(settings, topic)

        raw = raw_rate_of(settings, topic, args.events)
        print(f"baseline, one consumer for all {PARTITIONS} partitions: {raw:,.0f} msgs/s")
        for label, threads in (("one after another", 1), ("all at once", PARTITIONS)):
            rate = max(ranges_rate(bootstrap, topic, ends, threads) for _ in range(2))
            print(f"a consumer per partition, {label}: {rate:,.0f} msgs/s, ratio {rate / raw:.3f}x")

        print(f"raw read of the newest {args.events} events as the topic grows:")
        print(f"  {args.events:>9,} in the topic: {raw:,.0f} msgs/s")
        for step in range(1, args.growth + 1):
            before = end_offsets(settings, topic)
            produce(settings, topic, args.events, first=args.events * step)
            rate = raw_rate_of(settings, topic, args.events, before)
            held = args.events * (step + 1)
            print(f"  {held:>9,} in the topic: {rate:,.0f} msgs/s, ratio {rate / raw:.3f}x")


if __name__ == "__main__":
    main()
