"""Alerts and dashboards query only metrics the code exports or a batch run pushes."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.deploy import contract
from tests.deploy.conftest import DEPLOY
from transactional.common.app import LATENCY, REQUESTS

METRIC = re.compile(r"\bpaywall_[a-z_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
DASHBOARDS = ("apis", "event-bus", "billing")


def _series_names(metric: Any) -> set[str]:
    """The series names a prometheus_client metric exports."""
    (family,) = metric.describe()
    if family.type == "counter":
        return {family.name + "_total"}
    if family.type == "histogram":
        return {family.name, *(family.name + s for s in HISTOGRAM_SUFFIXES)}
    return {family.name}


def pushed_metrics() -> dict[str, tuple[str, ...]]:
    """What batch runs push to the Pushgateway: name -> label names."""
    gauges: dict[str, tuple[str, ...]] = {}
    for module in contract.PUSHED_METRIC_MODULES:
        for name, (_, labels) in importlib.import_module(module).GAUGES.items():
            gauges[name] = labels
    return gauges


def exported_metrics() -> set[str]:
    names = _series_names(REQUESTS) | _series_names(LATENCY) | set(pushed_metrics())
    for module in contract.METRIC_MODULES:
        importlib.import_module(module)
    collectors = list(getattr(REGISTRY, "_collector_to_names", {}))
    for collector in collectors:
        try:
            families = collector.describe()
        except Exception:  # collectors without describe() are not ours
            continue
        for family in families:
            if family.name.startswith("paywall_"):
                names |= _series_names(collector) if len(families) == 1 else {family.name}
    return names


def check_expr(expr: str) -> set[str]:
    """A light PromQL check: brackets balance outside strings; returns the metric names."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in without_strings:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"unbalanced {char!r} in {expr!r}"
    assert not stack, f"unclosed {stack} in {expr!r}"
    names = set(METRIC.findall(without_strings))
    assert names, f"no paywall metric in {expr!r}"
    return names


def test_http_metrics_come_from_the_code() -> None:
    exported = exported_metrics()
    assert "paywall_http_requests_total" in exported
    assert "paywall_http_request_duration_seconds_bucket" in exported


def test_metric_labels_match_the_contract() -> None:
    for module in contract.METRIC_MODULES:
        importlib.import_module(module)
    by_name = {
        family.name: collector
        for collector in list(getattr(REGISTRY, "_collector_to_names", {}))
        for family in _safe_describe(collector)
    }
    for name, labels in contract.EXPECTED_LABELS.items():
        if name in pushed_metrics():
            assert pushed_metrics()[name] == labels, name
            continue
        base = name.removesuffix("_total")
        collector = by_name.get(base) or by_name.get(name)
        assert collector is not None, f"{name} is not exported by {contract.METRIC_MODULES}"
        assert tuple(collector._labelnames) == labels, name


def _safe_describe(collector: Any) -> list[Any]:
    try:
        return list(collector.describe())
    except Exception:
        return []


def _rules() -> list[dict[str, Any]]:
    rule_file = yaml.safe_load((DEPLOY / "monitoring" / "prometheus-rules.yaml").read_text())
    return [rule for group in rule_file["spec"]["groups"] for rule in group["rules"]]


def test_alert_expressions_parse_and_use_exported_metrics() -> None:
    allowed = exported_metrics()
    alerts = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    for rule in _rules():
        unknown = check_expr(rule["expr"]) - allowed
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"
    for alert in alerts.values():
        assert alert["labels"]["severity"] in ("page", "ticket")
        assert alert["annotations"]["summary"]
    needed = {
        "paywall_http_requests_total": "5xx error rate",
        "paywall_http_request_duration_seconds_bucket": "p99 latency",
        "paywall_outbox_lag_events": "outbox lag",
        "paywall_consumer_lag_messages": "consumer lag",
        "paywall_billing_run_last_failure_timestamp_seconds": "billing run failures",
        "paywall_consumer_processed_total": "dead letters",
    }
    used = set().union(*(check_expr(a["expr"]) for a in alerts.values()))
    missing = {what for metric, what in needed.items() if metric not in used}
    assert not missing, f"no alert for: {missing}"


def test_check_expr_catches_mistakes() -> None:
    with pytest.raises(AssertionError):
        check_expr("sum(rate(paywall_http_requests_total[5m])")
    assert check_expr('rate(paywall_x_total{a=")"}[1m])') == {"paywall_x_total"}


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_panels_query_exported_metrics(name: str) -> None:
    dashboard = json.loads((DEPLOY / "monitoring" / "dashboards" / f"{name}.json").read_text())
    assert dashboard["uid"] == f"paywall-{name}"
    allowed = exported_metrics()
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            unknown = check_expr(target["expr"]) - allowed
            assert not unknown, f"{name}/{panel['title']}: {unknown}"


def test_service_monitors_select_the_metrics_ports(rendered: dict[str, Any]) -> None:
    objects = rendered["prod"]
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    services = [o for o in objects if o["kind"] == "Service"]
    for monitor in monitors:
        elsewhere = monitor["spec"].get("namespaceSelector", {}).get("matchNames")
        if elsewhere:
            # The monitoring stack's own Pushgateway: what batch runs pushed keeps its labels,
            # and the runs push to that very service.
            assert elsewhere == ["monitoring"], monitor["metadata"]["name"]
            assert all(e["honorLabels"] for e in monitor["spec"]["endpoints"])
            name = monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
            config = next(o for o in objects if o["metadata"]["name"].startswith("paywall-config"))
            assert config["data"]["PUSHGATEWAY_URL"].startswith(f"http://{name}.monitoring.svc:")
            continue
        selector = monitor["spec"]["selector"]["matchLabels"]
        chosen = [
            s for s in services if selector.items() <= s["metadata"].get("labels", {}).items()
        ]
        assert chosen, monitor["metadata"]["name"]
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["path"] == "/metrics"
            for service in chosen:
                ports = {p["name"] for p in service["spec"]["ports"]}
                assert endpoint["port"] in ports, (monitor["metadata"]["name"], service)


def test_metric_names_follow_prometheus_conventions() -> None:
    """Base units in the names, and _total on counters only (a pushed gauge is none)."""
    for name in exported_metrics():
        assert re.fullmatch(r"paywall_[a-z][a-z0-9_]*", name), name
        assert not re.search(r"_(ms|milliseconds|minutes|hours|days|kb|mb|percent)(_|$)", name), (
            f"{name}: use base units (seconds, bytes, ratios)"
        )
    for name in pushed_metrics():
        assert not name.endswith("_total"), f"{name}: a pushed gauge is not a counter"
