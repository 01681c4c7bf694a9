"""How the Python Kafka source plans a micro-batch's tasks."""

from __future__ import annotations

from itertools import pairwise

from streaming.lake.source import MIN_SPLIT_OFFSETS, OffsetRange, split_ranges


def covered(ranges: list[OffsetRange]) -> dict[tuple[str, int], list[tuple[int, int]]]:
    out: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for r in ranges:
        out.setdefault((r.topic, r.partition), []).append((r.start, r.end))
    return out


def test_large_ranges_are_split_contiguously_in_proportion() -> None:
    ranges = [OffsetRange("t", 0, 100, 60_100), OffsetRange("t", 1, 0, 20_000)]
    pieces = split_ranges(ranges, 4)
    assert len(pieces) == 4
    spans = covered(pieces)
    assert [hi - lo for lo, hi in spans[("t", 0)]] == [20_000, 20_000, 20_000]
    assert spans[("t", 1)] == [(0, 20_000)]
    for parts in spans.values():  # no gap, no overlap, in order
        assert all(a[1] == b[0] for a, b in pairwise(parts))
    assert split_ranges(ranges, 4) == pieces  # a replayed batch gets the same tasks


def test_small_ranges_are_not_split() -> None:
    small = [OffsetRange("t", 0, 0, MIN_SPLIT_OFFSETS * 2 - 1)]
    assert split_ranges(small, 8) == small
    enough = [OffsetRange("t", p, 0, 50_000) for p in range(4)]
    assert split_ranges(enough, 4) == enough
    assert split_ranges([], 4) == []


def test_a_split_never_makes_pieces_shorter_than_the_minimum() -> None:
    pieces = split_ranges([OffsetRange("t", 0, 0, MIN_SPLIT_OFFSETS * 3)], 10)
    assert len(pieces) == 3
    assert all(p.end - p.start == MIN_SPLIT_OFFSETS for p in pieces)


def test_equal_partitions_are_split_until_there_are_enough_tasks() -> None:
    ranges = [OffsetRange("t", p, 0, 30_000) for p in range(3)]
    assert len(split_ranges(ranges, 4)) == 6
