"""The email/SMS sink: where the real SendGrid and Twilio SDKs send locally."""

from __future__ import annotations

import os
import sys
import urllib.request

from paywall.stack.component import Running, StackContext
from paywall.stack.process import LOOPBACK, free_port, spawn, stop_pid, wait_until

LOCAL_SENDGRID_KEY = "SG.paywall-local"
LOCAL_TWILIO_SID = "AC" + "0" * 32
LOCAL_TWILIO_TOKEN = "paywall-local-token"


class Sink:
    name = "sink"

    def external(self) -> bool:
        return bool(os.environ.get("SENDGRID_API_KEY") or os.environ.get("TWILIO_AUTH_TOKEN"))

    def start(self, ctx: StackContext, port: int | None = None) -> Running:
        port = port or free_port()
        log = ctx.dir("logs") / "sink.log"
        proc = spawn(
            [
                sys.executable,
                "-m",
                "paywall.stack.sink_server",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--store",
                str(ctx.dir("sink") / "messages.jsonl"),
            ],
            log,
        )
        base = f"http://{LOOPBACK}:{port}"
        wait_until(
            lambda: _answers(base), "email/SMS sink", alive=lambda: proc.poll() is None, log=log
        )
        env = {
            "SENDGRID_API_HOST": base,
            "SENDGRID_API_KEY": LOCAL_SENDGRID_KEY,
            "TWILIO_API_BASE": base,
            "TWILIO_ACCOUNT_SID": LOCAL_TWILIO_SID,
            "TWILIO_AUTH_TOKEN": LOCAL_TWILIO_TOKEN,
        }
        return Running(self.name, proc.pid, port, env, str(log))

    def stop(self, running: Running) -> None:
        stop_pid(running.pid)


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
