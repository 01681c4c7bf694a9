"""`paywall serve --workers 2`: requests spread over both processes, /metrics sums them,
and a worker killed mid-life is replaced without its counts going missing."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from paywall.stack.process import wait_until
from tests.faults.conftest import ServedApi

# Enough requests for both workers to have accepted some: the kernel hands each new
# connection to one of them, in an order nobody controls. A bound, not a timing.
MOST_REQUESTS = 2000


def _samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name
    ]


def _per_worker(url: str) -> dict[int, float]:
    return {
        int(labels["pid"]): value for labels, value in _samples(url, "paywall_http_worker_requests")
    }


def _healthz_total(url: str) -> float:
    return sum(
        value
        for labels, value in _samples(url, "paywall_http_requests_total")
        if labels["route"] == "/healthz" and labels["status"] == "200"
    )


def test_two_workers_share_the_requests_and_metrics_sum_over_both(
    served_api: Callable[..., ServedApi],
) -> None:
    served = served_api("--workers", "2")
    before = _healthz_total(served.url)  # the readiness checks' own
    sent = 0
    # A new connection per request, so either worker may accept it.
    while sent < MOST_REQUESTS and len(_answering(_per_worker(served.url))) < 2:
        for _ in range(20):
            assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
            sent += 1
    workers = _per_worker(served.url)
    assert len(workers) == 2, workers
    assert all(handled > 0 for handled in workers.values()), workers
    assert served.process.pid not in workers  # worker processes, not the supervisor
    # Every /healthz answered is counted once, whichever worker answered it.
    assert _healthz_total(served.url) == before + sent

    # A worker killed outright: gunicorn starts another, the dead one's live gauge goes
    # (mark_process_dead), and the counters it wrote stay in the sums.
    victim = next(iter(workers))
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        pids = set(_per_worker(served.url))
        return victim not in pids and len(pids) == 2

    wait_until(replaced, "a replacement worker", timeout=60, alive=served.alive, log=served.log)
    assert _healthz_total(served.url) == before + sent


def _answering(workers: dict[int, float]) -> dict[int, float]:
    return {pid: n for pid, n in workers.items() if n > 0}


def test_a_metrics_file_not_yet_sized_does_not_fail_the_scrape(
    served_api: Callable[..., ServedApi], tmp_path: Path
) -> None:
    # A starting worker creates its file and sizes it after: a scrape in between, or a
    # worker killed in between, met a file of 0 bytes and every scrape answered 500.
    served = served_api("--workers", "2", TMPDIR=str(tmp_path))
    (directory,) = tmp_path.glob("paywall-metrics-*")  # where `serve` put the workers' files
    before = _healthz_total(served.url)
    (directory / "counter_4194304.db").touch()  # named for a pid the kernel never hands out

    assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
    assert _healthz_total(served.url) == before + 1
