"""Stripe: a localstripe server, the real `stripe` library pointed at it."""

from __future__ import annotations

import os
import secrets
import sys
import urllib.request

from paywall.settings import LOCAL_STRIPE_KEY
from paywall.stack.component import Running, StackContext
from paywall.stack.process import LOOPBACK, free_port, spawn, stop_pid, wait_until


class Stripe:
    name = "stripe"

    def external(self) -> bool:
        return bool(os.environ.get("STRIPE_API_BASE") or os.environ.get("STRIPE_API_KEY"))

    def start(self, ctx: StackContext, port: int | None = None) -> Running:
        port = port or free_port()
        home = ctx.dir("stripe")
        log = ctx.dir("logs") / "stripe.log"
        proc = spawn(
            [
                sys.executable,
                "-m",
                "paywall.stack.localstripe_server",
                "--port",
                str(port),
                "--state",
                str(home / "localstripe.pickle"),
            ],
            log,
        )
        base = f"http://{LOOPBACK}:{port}"
        wait_until(
            lambda: _answers(base),
            "stripe (localstripe)",
            alive=lambda: proc.poll() is None,
            log=log,
        )
        env = {
            "STRIPE_API_BASE": base,
            "STRIPE_API_KEY": LOCAL_STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": _webhook_secret(home / "webhook_secret"),
        }
        return Running(self.name, proc.pid, port, env, str(log))

    def stop(self, running: Running) -> None:
        stop_pid(running.pid)


def _webhook_secret(path: os.PathLike[str]) -> str:
    """One signing secret per local stack, kept so webhooks stay valid across restarts."""
    from pathlib import Path

    file = Path(path)
    if not file.exists():
        file.write_text(f"whsec_{secrets.token_hex(24)}")
    return file.read_text().strip()


def _answers(base: str) -> bool:
    req = urllib.request.Request(
        f"{base}/v1/customers?limit=1", headers={"Authorization": f"Bearer {LOCAL_STRIPE_KEY}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
