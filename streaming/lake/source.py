"""A Kafka streaming source on PySpark's Python Data Source API (no connector jar needed).

Offsets look like the native source's: {topic: {partition: next_offset}}. The driver
plans one input partition per topic-partition with new data, in sorted order, and splits
large ranges so a batch keeps at least `min_partitions` tasks busy (as the native source's
minPartitions does). The plan depends only on the batch's start and end, so a replayed
batch (same offsets from the offset log) gets the same task numbers; the sink names files
by them. Executors read their range with assign + seek.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import StructType

from paywall.kafka_security import KafkaSecurity
from streaming.lake import kafka_offsets as ko
from streaming.lake.parse import KAFKA_ARROW, KAFKA_SCHEMA

SOURCE_NAME = "paywall_kafka"
# Below this many offsets a range is not split: a task's fixed cost (a Python worker
# round trip, a consumer, one Parquet file per event type and day) would outweigh it.
MIN_SPLIT_OFFSETS = 5_000


@dataclass(frozen=True)
class OffsetRange(InputPartition):
    topic: str
    partition: int
    start: int
    end: int


class KafkaSource(DataSource):
    """Options: bootstrap_servers, topics (comma-separated), max_offsets_per_trigger,
    min_partitions, and kafka_security_* (KafkaSecurity.as_options: TLS and SASL)."""

    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> StructType:
        return KAFKA_SCHEMA

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        topics = [t for t in self.options["topics"].split(",") if t]
        limit = int(self.options.get("max_offsets_per_trigger", "0") or 0)
        min_partitions = int(self.options.get("min_partitions", "1") or 1)
        return KafkaStreamReader(
            self.options["bootstrap_servers"],
            topics,
            limit,
            min_partitions,
            KafkaSecurity.from_options(self.options),
            starting=self.options.get("starting_offsets", "earliest"),
        )


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        max_offsets: int,
        min_partitions: int = 1,
        security: KafkaSecurity | None = None,
        starting: str = "earliest",
    ) -> None:
        self.bootstrap = bootstrap
        self.starting = starting
        self.security = security or KafkaSecurity()
        self.topics = list(topics)
        self.max_offsets = max_offsets
        self.min_partitions = min_partitions
        self.target: ko.TopicOffsets | None = None
        self.seen: dict[tuple[str, int], int] = {}  # ends found so far: probe hints

    def initialOffset(self) -> dict:
        """Where a new checkpoint starts, as Spark's Kafka source reads `startingOffsets`:
        "earliest", "latest", or JSON offsets per partition (a partition it leaves out
        starts at its earliest; an offset below the earliest kept is raised to it)."""
        found = ko.partitions_of(self.bootstrap, self.topics, self.security)
        if self.starting == "latest":
            return ko.end_offsets(self.bootstrap, found, security=self.security)
        earliest = _flatten(ko.earliest_offsets(self.bootstrap, found, self.security))
        given = {} if self.starting == "earliest" else _flatten(json.loads(self.starting))
        return _nest({tp: max(given.get(tp, low), low) for tp, low in earliest.items()})

    def prepareForTriggerAvailableNow(self) -> None:
        # Fix the end now: an available-now run stops at what existed when it started.
        self.target = self._ends()

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_offsets) if self.max_offsets > 0 else ReadAllAvailable()

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        known = _flatten(start)
        ends = self.target if self.target is not None else self._ends(known)
        # A partition (or topic) that appeared since the last batch starts at its earliest.
        new = [tp for tp in _flatten(ends) if tp not in known]
        known.update(_flatten(ko.earliest_offsets(self.bootstrap, new, self.security)))
        wanted = {tp: max(end, known[tp]) for tp, end in _flatten(ends).items()}
        if isinstance(limit, ReadMaxRows):
            wanted = _capped(known, wanted, limit.max_rows)
        # Keep partitions we know but no longer see, so offsets never move backwards.
        return _nest({**known, **wanted})

    def reportLatestOffset(self) -> dict | None:
        return None

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        begin = _flatten(start)
        ranges = []
        for (topic, part), stop in sorted(_flatten(end).items()):
            first = begin.get((topic, part), 0)
            if stop > first:
                ranges.append(OffsetRange(topic, part, first, stop))
        return split_ranges(ranges, self.min_partitions)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, OffsetRange)
        chunks = ko.read_range(
            self.bootstrap,
            partition.topic,
            partition.partition,
            partition.start,
            partition.end,
            security=self.security,
        )
        for chunk in chunks:
            yield _to_arrow(chunk)

    def _ends(self, known: dict[tuple[str, int], int] | None = None) -> ko.TopicOffsets:
        hints = dict(self.seen)
        for tp, offset in (known or {}).items():
            hints[tp] = max(offset, hints.get(tp, 0))
        partitions = ko.partitions_of(self.bootstrap, self.topics, self.security)
        ends = ko.end_offsets(self.bootstrap, partitions, hints, self.security)
        self.seen = _flatten(ends)
        return ends


def split_ranges(ranges: Sequence[OffsetRange], min_partitions: int) -> list[OffsetRange]:
    """Ranges cut into at least `min_partitions` pieces in proportion to their size.

    Pieces of one range are contiguous and in order; no piece is shorter than
    MIN_SPLIT_OFFSETS unless its range was. The result depends only on the input.
    """
    total = sum(r.end - r.start for r in ranges)
    if len(ranges) >= min_partitions or total == 0:
        return list(ranges)
    out: list[OffsetRange] = []
    for r in ranges:
        size = r.end - r.start
        pieces = max(1, min(-(-size * min_partitions // total), size // MIN_SPLIT_OFFSETS))
        bounds = [r.start + size * i // pieces for i in range(pieces + 1)]
        out.extend(OffsetRange(r.topic, r.partition, lo, hi) for lo, hi in pairwise(bounds))
    return out


def _to_arrow(messages: list) -> pa.RecordBatch:
    stamps = []
    kinds = []
    for m in messages:
        kind, millis = m.timestamp()
        stamps.append(millis * 1000 if millis is not None and millis >= 0 else None)
        kinds.append(kind)
    values = [
        [m.key() for m in messages],
        [m.value() for m in messages],
        [m.topic() for m in messages],
        [m.partition() for m in messages],
        [m.offset() for m in messages],
        stamps,
        kinds,
    ]
    columns = [pa.array(v, f.type) for v, f in zip(values, KAFKA_ARROW, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=KAFKA_ARROW)


def _flatten(offsets: dict) -> dict[tuple[str, int], int]:
    return {(t, int(p)): int(o) for t, parts in offsets.items() for p, o in parts.items()}


def _nest(flat: dict[tuple[str, int], int]) -> ko.TopicOffsets:
    out: ko.TopicOffsets = {}
    for (topic, part), offset in sorted(flat.items()):
        out.setdefault(topic, {})[str(part)] = offset
    return out


def _capped(
    start: dict[tuple[str, int], int], end: dict[tuple[str, int], int], max_rows: int
) -> dict[tuple[str, int], int]:
    """Share max_rows across partitions in proportion to their lag, as the native source does."""
    lags = {tp: end[tp] - start.get(tp, 0) for tp in end}
    total = sum(lags.values())
    if total <= max_rows:
        return end
    out, budget = {}, max_rows
    for tp in sorted(lags):
        share = min(lags[tp], max(1, lags[tp] * max_rows // total)) if lags[tp] else 0
        share = min(share, budget)
        budget -= share
        out[tp] = start.get(tp, 0) + share
    return out
