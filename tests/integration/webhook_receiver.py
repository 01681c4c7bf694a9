"""A real HTTP server that receives webhooks on a free loopback port, as a partner's would.

It answers from a script (`fail_with`: a status, or "timeout" to hold the request past
the sender's timeout), then 204 to everything; it records every request it got. A held
request waits on an event the test releases when it stops the server, never on a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from paywall.stack.process import free_port

HOLD_AT_MOST_SECONDS = 30.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int | None  # None: held past the sender's timeout


@dataclass
class Receiver:
    url: str
    script: list[int | str] = field(default_factory=list)
    always: int | None = None  # every request answered this (an endpoint that is down)
    got: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> int | str:
        with self.lock:
            if self.always is not None:
                return self.always
            return self.script.pop(0) if self.script else 204

    def delivered_ids(self) -> list[str]:
        """Event ids of the requests answered 2xx, in the order they were answered."""
        with self.lock:
            return [
                r.headers["webhook-id"]
                for r in self.got
                if r.answered is not None and 200 <= r.answered < 300
            ]


@contextmanager
def receiver(**kwargs: object) -> Iterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hooks", **kwargs)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            answer = state.next_answer()
            headers = {k.lower(): v for k, v in self.headers.items()}
            if answer == "timeout":
                with state.lock:
                    state.got.append(Received(headers, body, None))
                state.release.wait(HOLD_AT_MOST_SECONDS)
                return
            assert isinstance(answer, int)
            # Recorded before answering: once the sender has its answer, the test sees it.
            with state.lock:
                state.got.append(Received(headers, body, answer))
            self.send_response(answer)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
