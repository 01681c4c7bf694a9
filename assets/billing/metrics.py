"""A billing run's metrics, pushed to the Prometheus Pushgateway when the run ends.

The run lives in a Dagster run process (a pod under the K8s run launcher) for minutes: no
scrape would find it, which is what the Pushgateway is for. Each push replaces the
previous run's values (Prometheus' batch-job pattern: gauges of the last run, and the
times of the last success and the last failure, which the `PaywallBillingRunFailed` alert
compares). A Pushgateway that cannot be reached costs a warning, never the billing run.
"""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from assets.billing.outcomes import Counts
from paywall.logs import get_logger
from paywall.shards import Shard

log = get_logger(__name__)
JOB = "paywall_billing"
# Every series a run pushes: name -> (help, label names). The deploy tests read this.
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "paywall_billing_run_duration_seconds": ("How long the last billing run took", ()),
    "paywall_billing_run_billing_day_timestamp_seconds": ("The last run's billing day", ()),
    "paywall_billing_run_last_success_timestamp_seconds": (
        "When a billing run last ended successfully",
        (),
    ),
    "paywall_billing_run_last_failure_timestamp_seconds": ("When a billing run last failed", ()),
    "paywall_billing_run_invoices": ("Invoices the last billing run created", ()),
    "paywall_billing_run_charges": (
        "Charge attempts of the last billing run by outcome (paid, failed, pending, error)",
        ("outcome",),
    ),
}
# Charge outcome label -> the run's count of it.
CHARGE_OUTCOMES = {"paid": "paid", "failed": "failed", "pending": "pending", "error": "errors"}
# In a pod, its namespace (the downward API, deploy/k8s/base/dagster/dagster.yaml): the
# label dashboards and alerts select by, as the scrape of every other paywall pod gives it.
POD_NAMESPACE = "POD_NAMESPACE"


class RunMetrics:
    """What one billing run reports; the run sets `counts` once it has them."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.counts: Counts | None = None

    def registry(self, seconds: float, failed: bool) -> CollectorRegistry:
        """Only what this run knows: a success must not push a zero time of failure."""
        registry = CollectorRegistry()

        def gauge(suffix: str) -> Gauge:
            name = f"paywall_billing_run_{suffix}"
            doc, labels = GAUGES[name]
            return Gauge(name, doc, labels, registry=registry)

        gauge("duration_seconds").set(seconds)
        gauge("billing_day_timestamp_seconds").set(calendar.timegm(self.day.timetuple()))
        ended = "last_failure_timestamp_seconds" if failed else "last_success_timestamp_seconds"
        gauge(ended).set_to_current_time()
        if self.counts is not None:
            gauge("invoices").set(self.counts.invoiced)
            charges = gauge("charges")
            for outcome, field in CHARGE_OUTCOMES.items():
                charges.labels(outcome).set(getattr(self.counts, field))
        return registry


def grouping_key(shard: Shard) -> dict[str, str]:
    """Each shard's run keeps its own series (`shard` label: `2/4`, or `all` for the whole
    day's), so one shard's success never hides another's failure."""
    namespace = os.environ.get(POD_NAMESPACE)
    return {"shard": shard.label, **({"namespace": namespace} if namespace else {})}


@contextmanager
def pushed(pushgateway_url: str | None, day: date, shard: Shard) -> Iterator[RunMetrics]:
    """Time the run inside; push its metrics when it ends, successfully or not."""
    metrics = RunMetrics(day)
    started = time.monotonic()
    failed = True
    try:
        yield metrics
        failed = False
    finally:
        if pushgateway_url:
            registry = metrics.registry(time.monotonic() - started, failed)
            try:
                # pushadd: the metrics pushed replace their namesakes only, so a success
                # keeps the time of the last failure (and the other way round).
                pushadd_to_gateway(
                    pushgateway_url,
                    job=JOB,
                    registry=registry,
                    grouping_key=grouping_key(shard),
                    timeout=10,
                )
            except OSError as exc:
                log.warning("billing.metrics_not_pushed", error=str(exc)[:200])
