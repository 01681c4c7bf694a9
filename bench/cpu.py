"""CPU seconds spent by whole process trees, read before and after a phase of a benchmark.

A server's CPU is its own plus that of its children: uvicorn/gunicorn workers, and
Postgres backends (which the postmaster reaps, so an exited backend's time lands in the
postmaster's children counters and nothing is lost between two readings).
"""

from __future__ import annotations

from collections.abc import Mapping

import psutil


def tree_seconds(pid: int) -> float:
    """User + system CPU of `pid`, its reaped children, and its live descendants."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                own = child.cpu_times()
            except psutil.NoSuchProcess:
                continue  # it exited between the listing and the reading; its parent has it
            total += own.user + own.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


def own_seconds() -> float:
    """This process's CPU alone (its threads included): a benchmark's stack servers are its
    descendants, and are measured apart."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


class CpuMeter:
    """CPU seconds per named process tree over one phase: `start()`, then `stop()`; and,
    under `own`, this process's own CPU (not its descendants', which the trees hold)."""

    def __init__(self, pids: Mapping[str, int], own: str | None = None) -> None:
        self.pids = dict(pids)
        self.own = own
        self._start: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        read = {name: tree_seconds(pid) for name, pid in self.pids.items()}
        if self.own:
            read[self.own] = own_seconds()
        return read

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        return {name: now - self._start.get(name, 0.0) for name, now in self._read().items()}
