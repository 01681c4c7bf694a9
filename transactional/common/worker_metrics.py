"""The series of every worker under `paywall serve --workers N`, read from their files.

prometheus_client's MultiProcessCollector, less one failure: a worker creates its file and
only then sizes it, so a scrape in between (a replacement worker starting) met a file of
0 bytes and failed whole with a struct.error; a worker killed in that window left the empty
file behind, and every scrape after it failed. Upstream has it open
(prometheus/client_python#1199). An empty file holds no samples, so it is skipped.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.metrics_core import Metric


class WorkerFiles(multiprocess.MultiProcessCollector):  # type: ignore[misc]
    """Sums the workers' files in `path`, leaving out those not yet sized."""

    def __init__(self, registry: CollectorRegistry | None, path: str) -> None:
        super().__init__(registry, path)
        self._dir = path

    def collect(self) -> Iterable[Metric]:
        files = [path for path in glob.glob(os.path.join(self._dir, "*.db")) if _sized(path)]
        return self.merge(files, accumulate=True)  # type: ignore[no-any-return]


def _sized(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # a dead worker's live gauges, removed since the glob
        return False
