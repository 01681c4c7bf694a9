"""A loopback stand-in for Datadog's log intake (`POST /api/v2/logs`), for the real SDK.

It answers as the intake does (datadog-api-client's `submit_log` documents the contract):
202 for an accepted batch, 403 without the `DD-API-KEY` header, 413 above 5 MB or 1000
entries, 400 for a body that is not a JSON array of logs; gzip and deflate bodies are
read. What it accepted is kept in order and read back at `GET /_intake/logs`.

Faults are planned, one per coming request, with `POST /_intake/faults` and a JSON list:
`{"status": 503}` answers that status, `{"delay": 2.0}` sleeps before accepting (the
client's timeout fires, yet the batch arrives: the case that makes delivery at least once),
`{"drop": true}` closes the connection without an answer. Requests past the plan succeed.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from paywall.stack.process import LOOPBACK, free_port

MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
MAX_ENTRIES = 1000


class Intake:
    """What the stand-in accepted, and the faults still planned."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.logs: list[dict[str, Any]] = []
        self.requests = 0
        self.plan: list[dict[str, Any]] = []

    def next_fault(self) -> dict[str, Any]:
        with self.lock:
            self.requests += 1
            return self.plan.pop(0) if self.plan else {}

    def accept(self, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.logs.extend(items)


def _handler(intake: Intake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet: tests read the logs via HTTP
            pass

        def _answer(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _body(self) -> bytes:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = self.headers.get("Content-Encoding")
            if encoding == "gzip":
                return gzip.decompress(raw)
            if encoding == "deflate":
                return zlib.decompress(raw)
            return raw

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/_intake/logs":
                with intake.lock:
                    self._answer(200, {"requests": intake.requests, "logs": list(intake.logs)})
            else:
                self._answer(404, {"errors": ["not found"]})

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            if path == "/_intake/faults":
                plan = json.loads(self._body() or b"[]")
                with intake.lock:
                    intake.plan = list(plan)
                self._answer(200, {"planned": len(plan)})
                return
            if path != "/api/v2/logs":
                self._answer(404, {"errors": ["not found"]})
                return
            body = self._body()
            fault = intake.next_fault()
            if fault.get("drop"):
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if "status" in fault:
                self._answer(int(fault["status"]), {"errors": ["planned fault"]})
                return
            if not self.headers.get("DD-API-KEY"):
                self._answer(403, {"errors": ["Forbidden"]})
                return
            if len(body) > MAX_PAYLOAD_BYTES:
                self._answer(413, {"errors": ["Payload too large"]})
                return
            try:
                items = json.loads(body)
            except ValueError:
                self._answer(400, {"errors": ["Bad request"]})
                return
            items = items if isinstance(items, list) else [items]
            if len(items) > MAX_ENTRIES:
                self._answer(413, {"errors": ["Too many entries"]})
                return
            if "delay" in fault:
                time.sleep(float(fault["delay"]))
            intake.accept(items)
            self._answer(202, {})

    return Handler


@contextmanager
def serve(port: int | None = None) -> Iterator[tuple[str, Intake]]:
    """The stand-in on a loopback port in this process: (base URL, what it accepted)."""
    intake = Intake()
    server = ThreadingHTTPServer((LOOPBACK, port or free_port()), _handler(intake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", intake
    finally:
        server.shutdown()
        server.server_close()
