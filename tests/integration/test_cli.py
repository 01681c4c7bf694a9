"""The `paywall` command as a person runs it: stack lifecycle and one-line config errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from paywall.settings import STATE_DIR_ENV
from paywall.stack.local import LocalStack
from paywall.stack.process import free_port, pid_alive
from tests.conftest import REPO

pytestmark = pytest.mark.integration

PAYWALL = str(REPO / ".venv" / "bin" / "paywall")
URL_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "S3_ENDPOINT_URL",
    "STRIPE_API_KEY",
    "STRIPE_API_BASE",
    "SENDGRID_API_KEY",
    "AWS_ACCESS_KEY_ID",
)


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PAYWALL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def clean_env(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in URL_VARS}
    return {**env, STATE_DIR_ENV: str(state), "COLUMNS": "200", **extra}


def test_stack_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    up = run(["stack", "up"], env)
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "stack.json").read_text())
    assert set(state) == {"postgres", "redis", "s3", "kafka", "stripe", "sink"}
    pids = [part["pid"] for part in state.values()]
    try:
        assert all(pid_alive(pid) for pid in pids)
        status = run(["stack", "status"], env)
        assert status.returncode == 0
        assert status.stdout.count("started") == 6
        # `up` again reuses what runs
        again = run(["stack", "up"], env)
        assert again.returncode == 0
        assert json.loads((tmp_path / "stack.json").read_text()) == state
    finally:
        down = run(["stack", "down"], env)
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(pid) for pid in pids)
    assert json.loads((tmp_path / "stack.json").read_text()) == {}


def test_a_url_in_the_environment_starts_nothing(tmp_path: Path, local_stack: LocalStack) -> None:
    given = local_stack.settings()
    assert given.database_url and given.redis_url
    stack = LocalStack(
        tmp_path, waves=[[c for c in local_stack.components if c.name in ("postgres", "redis")]]
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", given.database_url)
        mp.setenv("REDIS_URL", given.redis_url)
        settings = stack.up()
        assert [p.mode for p in stack.status()] == ["external", "external"]
        assert settings.database_url == given.database_url
        stack.down()
    assert not (tmp_path / "postgres").exists()


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unreachable_database_url_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    closed = free_port()
    env = clean_env(tmp_path, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed}/x")
    line = one_line_error(run(["db", "upgrade"], env))
    assert line.startswith("error: DATABASE_URL:")


def test_a_server_lost_after_start_up_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    # No pre-flight check here: the failure comes from deep inside the command.
    closed = free_port()
    env = clean_env(tmp_path, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed}/x")
    line = one_line_error(run(["audit", "verify"], env))
    assert line.startswith("error: DATABASE_URL: connection failed"), line


def test_the_lake_stream_without_a_broker_is_one_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    line = one_line_error(run(["stream", "lake", "--available-now"], env))
    assert line.startswith("error: KAFKA_BOOTSTRAP_SERVERS:"), line


def test_malformed_url_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    env = clean_env(tmp_path, DATABASE_URL="mysql://root@localhost/x")
    assert "DATABASE_URL" in one_line_error(run(["db", "upgrade"], env))


def test_bad_stripe_secret_is_one_line(tmp_path: Path, local_stack: LocalStack) -> None:
    base = local_stack.settings().stripe_api_base
    assert base
    env = clean_env(tmp_path, STRIPE_API_BASE=base, STRIPE_API_KEY="pk_not_a_secret_key")
    assert one_line_error(run(["config"], env)).startswith("error: STRIPE_API_KEY:")


def test_port_taken_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = clean_env(tmp_path, API_PORT=str(taken.getsockname()[1]))
        line = one_line_error(run(["serve", "--check"], env))
    assert line.startswith("error: API_PORT:")


def test_metrics_port_taken_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        args = ["consume", "audit", "--metrics-port", str(taken.getsockname()[1])]
        line = one_line_error(run(args, clean_env(tmp_path)))
    assert line.startswith("error: --metrics-port:"), line


def test_config_masks_secrets(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        DATABASE_URL="postgresql://app:hunter2hunter2@db.internal:5432/paywall",
        STRIPE_API_KEY="sk_test_abcdefghijklmnop",
    )
    result = run(["config"], env)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "abcdefghijklmnop" not in result.stdout
    assert "postgresql://app:****@db.internal:5432/paywall" in result.stdout


def test_demo_runs_end_to_end_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    result = run(["demo", "--signups", "6"], env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "chain intact" in out
    assert "refused" not in out or "(402)" in out
    assert "dbt build" in result.stdout and "ERROR=0" in result.stdout
    # The marts reconcile with the transactional database.
    mrr = dict(re.findall(r"MRR from (the marts|subscriptions)\s*│\s*([\d,.]+) USD", result.stdout))
    assert len(mrr) == 2 and mrr["the marts"] == mrr["subscriptions"], mrr
    assert (tmp_path / "mrr.png").stat().st_size > 1000
    # Coupons, tax and credit notes: a discounted invoice, a taxed one, a partial refund.
    terms = re.search(r"(\d+) discounted, (\d+) with tax added, (\d+) with tax included", out)
    assert terms, out[-3000:]
    discounted, added, included = map(int, terms.groups())
    assert discounted >= 1 and added + included >= 1, terms.group(0)
    assert re.search(r"credit note\s*│\s*issued: [\d.,]+ refunded to the card", out), out[-3000:]
    # billed, collected, credited and outstanding per currency: billing schema = marts.
    money = {
        (currency, side): figures
        for currency, side, figures in re.findall(
            r"money (\w{3}) \((billing schema|marts)\)\s*│\s*(billed [^│]+?)\s*│", out
        )
    }
    assert ("USD", "billing schema") in money, out[-3000:]
    for currency in {c for c, _ in money}:
        assert money[(currency, "billing schema")] == money[(currency, "marts")], money
        assert re.search(rf"money {currency} equal\s*│\s*yes", out)
    usd = {
        k: float(v.replace(",", ""))
        for k, v in re.findall(r"(\w+) (\d[\d,]*\.\d\d)", money[("USD", "marts")])
    }
    assert usd["billed"] > 0 and usd["collected"] > 0 and usd["credited"] > 0, usd
    assert re.search(r"fct_invoices_match_billing \(blocking\)\s*│\s*PASS", out), out[-3000:]
    pdf, png = tmp_path / "invoice.pdf", tmp_path / "invoice.png"
    assert re.search(rf"\(PDF\)\s*│\s*{re.escape(str(pdf))}\s", out), out[-3000:]
    assert re.search(rf"\(PNG\)\s*│\s*{re.escape(str(png))}\s", out), out[-3000:]
    assert pdf.read_bytes().startswith(b"%PDF") and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000
    state = json.loads((tmp_path / "stack.json").read_text())
    assert state == {}  # the demo stopped every server it started


def test_demo_without_pdftoppm_names_the_package_in_one_line(tmp_path: Path) -> None:
    # Only the environment's own commands on the PATH: no pdftoppm (nor anything else).
    env = clean_env(tmp_path, PATH=str(REPO / ".venv" / "bin"))
    line = one_line_error(run(["demo"], env))
    assert line == "error: pdftoppm not found: install Debian's poppler-utils", line
    assert not (tmp_path / "stack.json").exists()  # refused before starting anything


@pytest.mark.parametrize(
    ("day", "problem"),
    [
        ("2026-02-30", "--day: '2026-02-30' is not a date (YYYY-MM-DD)"),
        ("yesterday", "--day: 'yesterday' is not a date (YYYY-MM-DD)"),
        ("2999-01-01", "--day: 2999-01-01 is in the future"),
    ],
)
def test_events_completeness_refuses_a_bad_day_in_one_line(
    tmp_path: Path, day: str, problem: str
) -> None:
    done = run(["events", "completeness", "--day", day], clean_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {problem}"
    assert not done.stdout
