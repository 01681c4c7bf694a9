"""Fault tests: the API as a real process, which a test may slow down, starve or kill.

The session's local stack (tests/conftest.py) provides the servers; `served_api` starts
`paywall serve` against it as a subprocess with extra environment (a proxy in front of
Stripe, a short service timeout), so a fault can hit one process without touching the
test runner. Every process started here is stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from paywall.settings import STATE_DIR_ENV, Settings
from paywall.stack.local import LocalStack
from paywall.stack.process import free_port, wait_until
from tests.conftest import REPO, Api
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.integration


@dataclass
class PaywallProcess:
    """A `paywall` command in its own process on the session stack."""

    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what a crashed pod looks like."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class ServedApi(PaywallProcess):
    """`paywall serve` in its own process, on a free loopback port."""

    url: str


def start_paywall(
    local_stack: LocalStack, args: list[str], log: Path, **env: str
) -> PaywallProcess:
    """Start `paywall ARGS` on the session stack with `env` on top (no waiting)."""
    full_env = {**os.environ, STATE_DIR_ENV: str(local_stack.root), "PAYWALL_ENV": "test", **env}
    handle = log.open("ab")
    process = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "paywall"), *args],
        env=full_env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    return PaywallProcess(process, log, full_env)


def start_api(local_stack: LocalStack, log: Path, *args: str, **env: str) -> ServedApi:
    """Start `paywall serve ARGS` on the stack with `env` on top; wait until it answers."""
    port = free_port()
    # One worker unless asked: these tests warm a process's caches (JWKS, pools) before a
    # fault and count what one process holds in memory; test_workers runs several.
    env = {"API_PORT": str(port), "WEB_CONCURRENCY": "1", **env}
    started = start_paywall(local_stack, ["serve", *args], log, **env)
    served = ServedApi(started.process, log, started.env, url=f"http://127.0.0.1:{port}")

    def ready() -> bool:
        try:
            return httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, "paywall serve", timeout=60, alive=served.alive, log=log)
    except BaseException:
        served.stop()
        raise
    return served


@pytest.fixture
def served_api(
    local_stack: LocalStack, settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., ServedApi]]:
    """A factory: `served_api("--workers", "2", SERVICE_TIMEOUT_SECONDS="1")` starts one
    (options, then environment); all stop at the end."""
    started: list[ServedApi] = []

    def start(*args: str, **env: str) -> ServedApi:
        served = start_api(local_stack, tmp_path / f"api-{len(started)}.log", *args, **env)
        started.append(served)
        return served

    try:
        yield start
    finally:
        for served in started:
            served.stop()
        _report_crashes(started)


@pytest.fixture
def paywall_process(
    local_stack: LocalStack, settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., PaywallProcess]]:
    """A factory: `paywall_process("relay")` starts `paywall relay`; all stop at the end."""
    started: list[PaywallProcess] = []

    def start(*args: str, **env: str) -> PaywallProcess:
        name = "-".join(args).replace("/", "_")
        process = start_paywall(
            local_stack, list(args), tmp_path / f"{name}-{len(started)}.log", **env
        )
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()
        _report_crashes(started)


# Exit codes of a process stopped on purpose (`paywall` exits 143 on SIGTERM, see cli.main).
STOPPED = (0, -signal.SIGTERM, 128 + signal.SIGTERM, -signal.SIGKILL)


def _report_crashes(started: Sequence[PaywallProcess]) -> None:
    if any(p.process.returncode not in STOPPED for p in started):
        sys.stderr.write("".join(p.log_text()[-3000:] for p in started))


@pytest.fixture
def api_proxy(api: Api) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's API: point one service's URL at it."""
    with FaultProxy(api.url) as running:
        yield running
