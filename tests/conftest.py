"""Each test process's local stack (pytest-xdist runs two, each with its own): real servers
on free loopback ports, stopped at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paywall.settings import STATE_DIR_ENV, Settings, get_settings, reset_settings
from paywall.stack.local import LocalStack

REPO = Path(__file__).resolve().parents[1]
# Billing tests bill days of their own across 2025 and 2026 so that they never meet; the
# Dagster partitions (read from settings when the asset modules are first imported) must
# offer those days.
os.environ.setdefault("PARTITIONS_START", "2025-01-01")


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    # Not under pytest's basetemp: pytest keeps only its last three basetemps and deletes
    # older ones, so a second test session on the machine would delete this one's
    # database files from under a running Postgres.
    root = Path(tempfile.mkdtemp(prefix="paywall-test-stack-"))
    stack = LocalStack(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STATE_DIR_ENV, str(stack.root))
        mp.setenv("PAYWALL_ENV", "test")
        try:
            stack.up()
            yield stack
        finally:
            stack.down()
            reset_settings()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch_database(settings: Settings) -> Iterator[Settings]:
    """Settings naming an empty database of this test's own on the stack's server (no
    migrations run), dropped after it: for tests that need a whole database to themselves."""
    import psycopg

    assert settings.database_url
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    base, _, _ = settings.database_url.rpartition("/")
    try:
        yield settings.model_copy(update={"database_url": f"{base}/{name}"})
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def settings(local_stack: LocalStack) -> Settings:
    from paywall import db

    settings = local_stack.settings()
    db.upgrade(settings)
    return settings


@pytest.fixture
def cli_env(local_stack: LocalStack) -> dict[str, str]:
    """Environment for running the `paywall` command against the session stack."""
    return {**os.environ, STATE_DIR_ENV: str(local_stack.root)}


@dataclass
class Api:
    """All services served over real HTTP on a free loopback port, as `paywall serve` does."""

    url: str
    settings: Settings


@pytest.fixture(scope="session")
def api(settings: Settings) -> Iterator[Api]:
    from paywall.stack.process import free_port
    from transactional.common.serving import serving
    from transactional.services import combined_app

    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("API_PORT", str(port))
        reset_settings()
        try:
            with serving(combined_app(), "127.0.0.1", port) as url:
                yield Api(url, get_settings())
        finally:
            reset_settings()


def register_client(
    settings: Settings, scopes: str, tenant_id: str | None = None, prefix: str = "test"
) -> tuple[str, str]:
    """A client-credentials OAuth client, written straight into auth's table: (id, secret)."""
    import uuid

    from paywall.db import engine
    from transactional.auth.clients import create_client

    client_id, secret = f"{prefix}-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with engine(settings).begin() as conn:
        create_client(
            conn,
            client_id,
            secret=secret,
            grant_types=("client_credentials",),
            scopes=scopes.split(),
            tenant_id=tenant_id,
        )
    return client_id, secret


def client_token(base_url: str, client_id: str, secret: str, scopes: str) -> str:
    """An access token from the auth service at `base_url` (each API is its own issuer)."""
    import httpx

    resp = httpx.post(
        f"{base_url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": scopes},
        timeout=30,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


@pytest.fixture(scope="session")
def issue_token(api: Api) -> Callable[..., str]:
    """Register an OAuth client (client credentials) with auth and return its token."""
    from paywall.db import engine
    from transactional.auth.clients import ensure_default_clients

    with engine(api.settings).begin() as conn:
        ensure_default_clients(conn, api.settings)

    def issue(scopes: str, tenant_id: str | None = None) -> str:
        client_id, secret = register_client(api.settings, scopes, tenant_id)
        return client_token(api.url, client_id, secret, scopes)

    return issue


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's prometheus-pushgateway (./dev installs it) on a free port: its URL."""
    import shutil
    import subprocess

    import httpx

    from paywall.stack.process import free_port, wait_until

    binary = shutil.which("prometheus-pushgateway")
    assert binary, "Debian's prometheus-pushgateway is missing: ./dev sync installs it"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            # Debian's build keeps what was pushed in /var/lib/prometheus by default.
            f"--persistence.file={tmp_path_factory.mktemp('pushgateway') / 'pushed.data'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, "the pushgateway", timeout=30, alive=lambda: process.poll() is None)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
