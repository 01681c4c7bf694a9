"""A fault-injecting HTTP proxy: forwards to a real server, then loses or holds its answers.

It stands between a client and a real server (the Stripe stand-in) on loopback. A rule
matches requests by method and path prefix; for a matching request the upstream server
really does the work, and then the proxy either holds the answer for a while (a slow
server) or closes the client's connection without answering (the answer lost in the
network): exactly the case where the side effect happened and the caller cannot know.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

import httpx

from paywall.stack.process import LOOPBACK, free_port

_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}
# httpx hands over the decoded body, so its encoding header no longer applies.
_NOT_RELAYED = _HOP_BY_HOP | {b"content-encoding"}


@dataclass
class Rule:
    method: str
    path_prefix: str
    drop: int = 0  # answers to lose, one per matching request, after the upstream ran it
    delay: float = 0.0  # seconds each matching answer is held
    times: int | None = None  # how many matching requests the delay applies to (None: all)
    matched: int = 0
    forwarded: threading.Event = field(default_factory=threading.Event)

    def applies(self, method: str, path: str) -> bool:
        return method == self.method and path.startswith(self.path_prefix)


class FaultProxy:
    """`with FaultProxy(upstream) as proxy:` gives `proxy.url`; add rules any time."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.rules: list[Rule] = []
        self.dropped = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    def rule(self, method: str, path_prefix: str, **kwargs: float | int | None) -> Rule:
        added = Rule(method, path_prefix, **kwargs)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(added)
        return added

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- the proxy itself, on its own event loop ----------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=60)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, LOOPBACK, self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._client.aclose())
            self._loop.close()

    def _match(self, method: str, path: str) -> tuple[bool, float, Rule | None]:
        with self._lock:
            for rule in self.rules:
                if not rule.applies(method, path):
                    continue
                rule.matched += 1
                drop = rule.drop > 0
                if drop:
                    rule.drop -= 1
                delays = rule.times is None or rule.matched <= rule.times
                return drop, rule.delay if delays else 0.0, rule
        return False, 0.0, None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = [tuple(h.split(":", 1)) for h in header_lines if ":" in h]
                length = next(
                    (int(v) for k, v in headers if k.strip().lower() == "content-length"), 0
                )
                body = await reader.readexactly(length) if length else b""
                drop, delay, rule = self._match(method, target)
                upstream = await self._client.request(
                    method,
                    target,
                    content=body,
                    headers=[
                        (k.strip(), v.strip())
                        for k, v in headers
                        if k.strip().lower().encode() not in _HOP_BY_HOP | {b"host"}
                    ],
                )
                if rule is not None:
                    rule.forwarded.set()
                if delay:
                    await asyncio.sleep(delay)
                if drop:
                    with self._lock:
                        self.dropped += 1
                    writer.transport.abort()  # the upstream ran it; the answer is lost
                    return
                writer.write(_response(upstream))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _response(resp: httpx.Response) -> bytes:
    lines = [f"HTTP/1.1 {resp.status_code} {resp.reason_phrase}"]
    for key, value in resp.headers.raw:
        if key.lower() not in _NOT_RELAYED:
            lines.append(f"{key.decode('latin-1')}: {value.decode('latin-1')}")
    lines.append(f"Content-Length: {len(resp.content)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + resp.content
