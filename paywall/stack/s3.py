"""S3: a moto server on loopback, unless S3_ENDPOINT_URL or real AWS credentials are set."""

from __future__ import annotations

import os
import sys
import urllib.request

from paywall.stack.component import Running, StackContext
from paywall.stack.process import LOOPBACK, free_port, spawn, stop_pid, wait_until

LOCAL_KEY_ID = "paywall-local"
LOCAL_SECRET = "paywall-local-secret"  # moto accepts any credentials


class S3:
    name = "s3"

    def external(self) -> bool:
        return any(
            os.environ.get(k)
            for k in (
                "S3_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_PROFILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
            )
        )

    def start(self, ctx: StackContext, port: int | None = None) -> Running:
        port = port or free_port()
        log = ctx.dir("logs") / "s3.log"
        proc = spawn([sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)], log)
        url = f"http://{LOOPBACK}:{port}"
        wait_until(lambda: _answers(url), "s3 (moto)", alive=lambda: proc.poll() is None, log=log)
        env = {
            "S3_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": LOCAL_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET,
        }
        return Running(self.name, proc.pid, port, env, str(log))

    def stop(self, running: Running) -> None:
        stop_pid(running.pid)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
