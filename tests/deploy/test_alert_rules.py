"""The alert rules under Prometheus' own tool (Debian's `prometheus` package, which ./dev
installs): they load, and the billing alerts fire on the series a billing run pushes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY

RULES = DEPLOY / "monitoring" / "prometheus-rules.yaml"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: Debian's prometheus package (./dev sync installs it)"
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rule_file(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as the plain rule file Prometheus itself loads."""
    spec = yaml.safe_load(RULES.read_text())["spec"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": spec["groups"]}))
    return path


def alert(name: str) -> dict[str, Any]:
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    return next(r for g in groups for r in g["rules"] if r.get("alert") == name)


def test_rules_pass_promtool(tmp_path: Path) -> None:
    checked = promtool("check", "rules", str(rule_file(tmp_path)), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_billing_alerts_fire_on_what_billing_runs_push(tmp_path: Path) -> None:
    rule_file(tmp_path)
    # Shards push apart (assets/billing/metrics.py): prod's shard 0/2 fails while 1/2 keeps
    # succeeding later, which must not hide the failure.
    prod = {"namespace": "paywall-prod", "shard": "0/2"}
    dev = {"namespace": "paywall-dev", "shard": "all"}
    pushed = 'job="paywall_billing",instance=""'
    success = "paywall_billing_run_last_success_timestamp_seconds"
    failure = "paywall_billing_run_last_failure_timestamp_seconds"
    failed = alert("PaywallBillingRunFailed")

    def firing(labels: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "exp_labels": {**labels, **failed["labels"]},
                "exp_annotations": {
                    k: v.replace("{{ $labels.shard }}", labels["shard"])
                    for k, v in failed["annotations"].items()
                },
            }
        ]

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                # prod: a run succeeds (pushed at t=100 s), one fails at minute 6, the next
                # succeeds at minute 10, then none succeeds for more than a day.
                # dev: a failed run and no success ever.
                "input_series": [
                    {
                        "series": f'{success}{{namespace="paywall-prod",shard="0/2",{pushed}}}',
                        "values": "100x9 700x1700",
                    },
                    {
                        "series": f'{failure}{{namespace="paywall-prod",shard="0/2",{pushed}}}',
                        "values": "_x5 400x1704",
                    },
                    {
                        "series": f'{success}{{namespace="paywall-prod",shard="1/2",{pushed}}}',
                        "values": "100x6 500x1703",
                    },
                    {
                        "series": f'{failure}{{namespace="paywall-dev",shard="all",{pushed}}}',
                        "values": "50x20",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "PaywallBillingRunFailed",
                     "exp_alerts": firing(dev)},
                    {"eval_time": "8m", "alertname": "PaywallBillingRunFailed",
                     "exp_alerts": firing(prod) + firing(dev)},
                    {"eval_time": "12m", "alertname": "PaywallBillingRunFailed",
                     "exp_alerts": firing(dev)},
                    {"eval_time": "20h", "alertname": "PaywallBillingRunMissing",
                     "exp_alerts": []},
                    {"eval_time": "27h", "alertname": "PaywallBillingRunMissing",
                     "exp_alerts": [{
                         "exp_labels": {"namespace": "paywall-prod",
                                        **alert("PaywallBillingRunMissing")["labels"]},
                         "exp_annotations": alert("PaywallBillingRunMissing")["annotations"],
                     }]},
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
