"""Liveness by progress: a worker touches its heartbeat file when it moves forward, and the
kubelet's exec probe (`paywall probe heartbeat`) fails once the file is older than allowed.

Progress, not presence: a consumer beats when it handled a message or is caught up (its
partitions have nothing left to read), the relay when a pass over the outboxes finished.
A worker stuck in a handler, or that cannot reach its broker while work waits, stops
beating and is restarted; one that is merely idle keeps beating. The file's mtime is the
beat, so the probe reads nothing but a stat.
"""

from __future__ import annotations

import time
from pathlib import Path

# Touching the file more often than this buys nothing: probes look every few seconds.
MIN_INTERVAL_SECONDS = 2.0


class Heartbeat:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._last = 0.0
        self.beat()  # starting counts: the probe allows a full max-age to make progress

    def beat(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if now - self._last < MIN_INTERVAL_SECONDS:
            return
        self.path.touch()
        self._last = now


def age_seconds(path: Path) -> float | None:
    """Seconds since the last beat; None when there has been none."""
    try:
        return max(time.time() - path.stat().st_mtime, 0.0)
    except FileNotFoundError:
        return None
