"""The README's commands, as a new engineer would type them.

Every shell line in the README names something real (a `paywall` command and its options,
a `./dev` task, a benchmark, a dbt project). The everyday block then runs verbatim, in its
order, against the session's local stack; the one substitution is the API's address,
because tests serve on free ports, never on 8000.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from paywall.stack.local import LocalStack
from paywall.stack.process import free_port, wait_until
from tests.conftest import REPO, Api
from tests.deploy.test_cli_contract import _check_options, resolve
from tests.faults.conftest import ServedApi, start_api
from tests.portal_setup import portal_page

pytestmark = pytest.mark.integration

README = (REPO / "README.md").read_text(encoding="utf-8")
README_PORT = "http://127.0.0.1:8000"
# Commands that run until stopped: started as processes, checked, then stopped.
LONG_RUNNING = {("serve",), ("consume",), ("relay",), ("webhooks", "deliver")}


def shell_blocks() -> list[list[str]]:
    """Each ```sh block's commands: continuations and quoted newlines joined, comments off."""
    blocks = []
    for body in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        commands, pending = [], ""
        for raw in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = raw if pending else raw.split("  #")[0].strip()
            pending = f"{pending}\n{line}" if pending else line
            try:
                shlex.split(pending)
            except ValueError:
                continue  # a quoted string goes on to the next line
            if pending and not pending.startswith("#"):
                commands.append(pending)
            pending = ""
        blocks.append(commands)
    return blocks


def everyday() -> list[str]:
    block = next(b for b in shell_blocks() if b and b[0].startswith(".venv/bin/paywall stack"))
    return block


def test_every_command_in_the_readme_names_something_real() -> None:
    lines = [line for block in shell_blocks() for line in block]
    assert lines, "no shell blocks found"
    for line in lines:
        for command in re.split(r"\s*(?:&&|\|)\s*", line):
            words = shlex.split(command.split(">")[0])
            if not words:
                continue
            program = words[0]
            if program == ".venv/bin/paywall":
                path, found = resolve(words[1:])
                assert found is not None, f"README: `paywall {' '.join(path)}` does not exist"
                _check_options(found, words[1 + len(path) :])
            elif program == "./dev":
                assert words[1] in {"demo", "test", "sync"}, line
            elif program == ".venv/bin/python":
                assert (REPO / words[1]).is_file(), line
            elif program == ".venv/bin/dbt":
                assert (REPO / words[words.index("--project-dir") + 1] / "dbt_project.yml").exists()
            elif program == ".venv/bin/dagster":
                assert (REPO / words[words.index("-w") + 1]).is_file(), line


@pytest.fixture
def served(local_stack: LocalStack, tmp_path: Path, api: Api) -> Iterator[ServedApi]:
    running = start_api(local_stack, tmp_path / "serve.log")
    try:
        yield running
    finally:
        running.stop()


def test_the_docs_link_nothing_outside_the_repository() -> None:
    """The READMEs stand alone: a reader offline (or in a year) can follow every link."""
    skip = {".git", ".paywall", ".venv", ".pytest_cache", "target", "dbt_packages", "logs"}
    docs = [p for p in REPO.rglob("*.md") if not skip & set(p.relative_to(REPO).parts)]
    assert REPO / "README.md" in docs
    outside = re.compile(r"\]\(\s*[a-z][a-z0-9+.-]*:|<https?://", re.IGNORECASE)
    for doc in docs:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            assert not outside.search(line), f"{doc.relative_to(REPO)}:{n} links outside: {line}"


def test_the_everyday_commands_run_verbatim(
    local_stack: LocalStack, served: ServedApi, tmp_path: Path
) -> None:
    env = {**served.env, "API_PORT": served.url.rsplit(":", 1)[1]}
    env.pop("PAYWALL_ENV", None)

    def run(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            line.replace(README_PORT, served.url),
            shell=True,
            cwd=tmp_path,
            env={**env, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    # A checkout's top level, by links: what the commands write stays out of the repo.
    for entry in REPO.iterdir():
        if entry.name not in {".git", ".paywall"}:
            (tmp_path / entry.name).symlink_to(entry)
    for line in everyday():
        words = shlex.split(line)
        head = tuple(words[1:2])
        if words[1:3] == ["stack", "down"]:
            continue  # the session's stack: test_cli stops a stack of its own
        if head in LONG_RUNNING or tuple(words[1:3]) in LONG_RUNNING:
            _runs_until_stopped(line, env, tmp_path)
            continue
        done = run(line)
        assert done.returncode in _ALLOWED.get(tuple(words[1:3]), {0}), (
            f"README line failed: {line}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )

    # The Kong block, against the served API instead of port 8000.
    kong = next(b for b in shell_blocks() if any("kong-config" in line for line in b))
    for line in kong:
        assert run(line).returncode == 0, line
    assert "jwt_secrets" in (tmp_path / "kong.yaml").read_text()


# `events completeness` exits 1 when yesterday had gaps it was not told to repair: on a
# session stack that other tests filled with events the audit consumer never read.
_ALLOWED: dict[tuple[str, ...], set[int]] = {("events", "completeness"): {0, 1}}


def _runs_until_stopped(line: str, env: dict[str, str], cwd: Path) -> None:
    """Start the line's process; it must still run after a while (or, for `serve`, answer
    /healthz), then it is stopped, as Ctrl-C would."""
    port = free_port()
    started = subprocess.Popen(
        shlex.split(line),
        cwd=cwd,
        env={**env, "API_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if " serve" in line:
            wait_until(
                lambda: _answers(f"http://127.0.0.1:{port}/healthz"),
                line,
                timeout=60,
                alive=lambda: started.poll() is None,
            )
        else:
            with pytest.raises(subprocess.TimeoutExpired):
                started.wait(timeout=5)  # it keeps working until stopped
    finally:
        started.terminate()
        started.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _raw_block(containing: str) -> str:
    """The text of the ```sh block holding `containing`, exactly as a reader copies it."""
    return next(b for b in re.findall(r"```sh\n(.*?)```", README, flags=re.S) if containing in b)


def test_the_partner_walkthrough_runs_word_for_word(
    local_stack: LocalStack, served: ServedApi, tmp_path: Path
) -> None:
    """Pasted into bash as it stands: tenant → client → token → webhook endpoint and its
    receiver → card → signup → the subscription read back → the webhook received and
    verified. The API's address is the one substitution."""
    script = _raw_block("paywall tenants create").replace(README_PORT, served.url)
    for entry in REPO.iterdir():
        if entry.name not in {".git", ".paywall"}:
            (tmp_path / entry.name).symlink_to(entry)
    env = {k: v for k, v in served.env.items() if k != "PAYWALL_ENV"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    signup = json.loads((tmp_path / "signup.json").read_text())
    assert signup["subscription_status"] == "active", signup
    lines = done.stdout.splitlines()
    subscription = json.loads(next(line for line in lines if '"plan_id"' in line))
    assert subscription["id"] == signup["subscription_id"]
    assert subscription["status"] == "active" and subscription["plan_id"] == "pro-monthly"
    assert "CLIENT_SECRET=" in (tmp_path / "acme.env").read_text()
    # The partner's receiver got the signup's customer.created, signature verified.
    verified = "webhook received and verified: customer.created "
    assert any(line.startswith(verified) for line in lines), lines
    assert json.loads((tmp_path / "hook.json").read_text())["secret"].startswith("whsec_")
    # Customer self-service: Ada signs in to the portal as the README says.
    page = portal_page(served.url, "acme", "ada@example.com", "correct horse battery")
    assert 'data-test="plan">Pro<' in page and "Update card" in page
