"""A real Prometheus (Debian's `prometheus`, which ./dev installs) with the deploy's alert
rules scrapes `paywall serve --workers 2` and the Pushgateway: the API's series arrive
summed over both workers, and a failed billing run fires PaywallBillingRunFailed until a
run succeeds."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from assets.billing.metrics import pushed
from paywall.shards import Shard
from paywall.stack.process import free_port, wait_until
from tests.deploy.test_alert_rules import alert, rule_file
from tests.faults.conftest import ServedApi

DAY = date(2026, 9, 15)


@pytest.fixture
def prometheus(
    served_api: Callable[..., ServedApi], pushgateway: str, tmp_path: Path
) -> Iterator[tuple[str, ServedApi]]:
    """Prometheus scraping a two-worker `paywall serve` and the Pushgateway every second."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is missing: ./dev sync installs it"
    served = served_api("--workers", "2")
    rule_file(tmp_path)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [
            {"job_name": "paywall", "static_configs": [{"targets": [served.url[7:]]}]},
            {
                "job_name": "pushgateway",
                "honor_labels": True,  # as the ServiceMonitor: the run's own labels
                "static_configs": [{"targets": [pushgateway[7:]]}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "--config.file=prometheus.yml",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, "prometheus", timeout=60, alive=lambda: process.poll() is None, log=log)
        yield url, served
    finally:
        process.terminate()
        process.wait(timeout=30)


def query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def scalar(url: str, promql: str) -> float:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else float("nan")


def firing(url: str, name: str) -> bool:
    alerts = httpx.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return any(a["labels"]["alertname"] == name and a["state"] == "firing" for a in alerts)


def test_prometheus_scrapes_serve_and_the_billing_failure_alert_fires(
    prometheus: tuple[str, ServedApi], pushgateway: str
) -> None:
    url, served = prometheus
    for _ in range(30):
        assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
    healthz = 'sum(paywall_http_requests_total{job="paywall",route="/healthz",status="200"})'
    # Two live workers, one series each; the requests summed over both (the readiness
    # checks of the fixture add theirs).
    wait_until(
        lambda: (
            scalar(url, healthz) >= 30 and scalar(url, "count(paywall_http_worker_requests)") == 2
        ),
        "Prometheus holding both workers' series",
        timeout=60,
    )

    with pytest.raises(RuntimeError), pushed(pushgateway, DAY, Shard(1, 2)):
        raise RuntimeError("a shard of the billing day fails")
    wait_until(lambda: firing(url, "PaywallBillingRunFailed"), "the alert firing", timeout=60)

    # Another shard's success, scraped, does not resolve it: the failed shard is unbilled.
    with pushed(pushgateway, DAY, Shard(0, 2)):
        pass
    other = 'paywall_billing_run_last_success_timestamp_seconds{shard="0/2"}'
    wait_until(lambda: bool(query(url, other)), "the other shard's success scraped", timeout=60)
    assert query(url, alert("PaywallBillingRunFailed")["expr"])
    assert firing(url, "PaywallBillingRunFailed")

    with pushed(pushgateway, DAY, Shard(1, 2)):
        pass  # the failed shard's re-run succeeds
    wait_until(lambda: not firing(url, "PaywallBillingRunFailed"), "the alert resolved", timeout=60)
