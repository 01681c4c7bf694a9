"""Loopback stand-in for SendGrid (v3 mail send) and Twilio (2010-04-01 Messages).

The real `sendgrid` and `twilio` SDKs are pointed at this server, so the wire format, status
codes and error bodies follow the providers: code that works here should work there. Every
accepted message is recorded (sink_store) and can be read back through
`GET /_sink/messages`; what each provider checks and answers is in sink_sendgrid and
sink_twilio. The server runs on the standard library alone.

    python -m paywall.stack.sink_server --host 127.0.0.1 --port 8025 --store .paywall/sink.jsonl
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from paywall.stack.sink_sendgrid import (
    sendgrid_error,
    sendgrid_errors,
    sendgrid_message_id,
    sendgrid_records,
)
from paywall.stack.sink_store import SinkState
from paywall.stack.sink_twilio import (
    TWILIO_MESSAGE,
    TWILIO_MESSAGES,
    basic_auth_user,
    twilio_error,
    twilio_errors,
    twilio_record,
    twilio_resource,
)

PROVIDERS = ("sendgrid", "twilio")
_ERROR_STATUSES = frozenset(s.value for s in HTTPStatus if s >= 400)


class SinkHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SinkState) -> None:
        super().__init__(address, SinkHandler)
        self.state = state


class SinkHandler(BaseHTTPRequestHandler):
    server: SinkHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/healthz":
            self._json(200, {"status": "ok"})
        elif url.path == "/_sink/messages":
            self._json(200, self.server.state.messages(query.get("provider"), query.get("to")))
        elif url.path == "/_sink/faults":
            self._json(200, self.server.state.faults())
        elif m := TWILIO_MESSAGE.match(url.path):
            self._twilio_fetch(m["account"], m["sid"])
        elif m := TWILIO_MESSAGES.match(url.path):
            self._twilio_list(m["account"], query)
        else:
            self._not_found()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/v3/mail/send":
            self._sendgrid_send(body)
        elif m := TWILIO_MESSAGES.match(path):
            self._twilio_send(m["account"], body)
        elif path == "/_sink/faults":
            self._set_fault(body)
        else:
            self._not_found()

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        self._body()  # drain it, so a stray body cannot corrupt the next keep-alive request
        if path == "/_sink/messages":
            self.server.state.clear()
        elif path == "/_sink/faults":
            self.server.state.clear_faults()
        else:
            return self._not_found()
        self._reply(204)

    def _sendgrid_send(self, raw: bytes) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            self._json(401, {"errors": [sendgrid_error("authorization required")]})
            return
        if status := self.server.state.take_fault("sendgrid"):
            self._json(status, {"errors": [sendgrid_error(HTTPStatus(status).phrase)]})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if errors := sendgrid_errors(body):
            self._json(400, {"errors": errors})
            return
        message_id = sendgrid_message_id()
        self.server.state.record(sendgrid_records(body, message_id))
        self._reply(202, headers={"X-Message-Id": message_id})

    def _twilio_send(self, account_sid: str, raw: bytes) -> None:
        if not self._twilio_authorized(account_sid):
            return
        if status := self.server.state.take_fault("twilio"):
            phrase = HTTPStatus(status).phrase
            self._json(status, twilio_error(20000 + status, phrase, status))
            return
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        if error := twilio_errors(form):
            self._json(error["status"], error)
            return
        record = twilio_record(account_sid, form)
        self.server.state.record([record])
        self._json(201, twilio_resource(record))

    def _twilio_fetch(self, account_sid: str, sid: str) -> None:
        if not self._twilio_authorized(account_sid):
            return
        record = self.server.state.twilio_message(sid)
        if record is None or record["account_sid"] != account_sid:
            message = f"The requested resource {urlsplit(self.path).path} was not found"
            self._json(404, twilio_error(20404, message, 404))
            return
        self._json(200, twilio_resource(record))

    def _twilio_list(self, account_sid: str, query: dict[str, str]) -> None:
        if not self._twilio_authorized(account_sid):
            return
        # Newest first, like Twilio; one page holds everything a sink will ever have.
        messages = [
            twilio_resource(r)
            for r in reversed(self.server.state.messages("twilio", query.get("To")))
            if r["account_sid"] == account_sid and query.get("From") in (None, r["from"])
        ]
        uri = urlsplit(self.path).path
        self._json(
            200,
            {
                "messages": messages,
                "end": max(len(messages) - 1, 0),
                "first_page_uri": f"{uri}?PageSize=50&Page=0",
                "next_page_uri": None,
                "page": 0,
                "page_size": 50,
                "previous_page_uri": None,
                "start": 0,
                "uri": f"{uri}?PageSize=50&Page=0",
            },
        )

    def _twilio_authorized(self, account_sid: str) -> bool:
        user = basic_auth_user(self.headers.get("Authorization"))
        # The user is the account SID itself, or an API key (SK...) acting for it.
        if user is None or (user.startswith("AC") and user != account_sid):
            error = twilio_error(20003, "Authenticate", 401)
            self._json(401, error, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
            return False
        return True

    def _set_fault(self, raw: bytes) -> None:
        try:
            fault = json.loads(raw)
            provider, status, count = fault["provider"], fault["status"], fault.get("count", 1)
        except (ValueError, KeyError, TypeError):
            provider = status = count = None
        valid = (
            provider in PROVIDERS
            and status in _ERROR_STATUSES
            and isinstance(count, int)
            and count >= 1
        )
        if not valid:
            self._json(
                400,
                {"error": "expected {provider: sendgrid|twilio, status: 4xx|5xx, count: >= 1}"},
            )
            return
        self.server.state.set_fault(provider, status, count)
        self._json(201, {"provider": provider, "status": status, "count": count})

    def _not_found(self) -> None:
        self._json(404, {"error": f"no route for {self.command} {urlsplit(self.path).path}"})

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            # The request's end is unknown, so the connection cannot be reused.
            self.close_connection = True
            return b""
        return self.rfile.read(length) if length > 0 else b""

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._reply(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != HTTPStatus.NO_CONTENT:  # RFC 9110 forbids Content-Length on a 204
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def build_server(host: str, port: int, store: Path) -> SinkHTTPServer:
    """Bind the sink (port 0 picks a free port, see `server_address`) without serving yet."""
    return SinkHTTPServer((host, port), SinkState(store))


def serve(host: str, port: int, store: Path) -> None:
    """Serve until SIGTERM or SIGINT (when run in the main thread) or `shutdown()`."""
    server = build_server(host, port, store)

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return, which runs on this very thread,
        # so it has to be called from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = server.server_address[:2]
    print(f"sink listening on http://{bound_host!s}:{bound_port}", flush=True)
    with server:
        server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback stand-in for SendGrid and Twilio.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--store", type=Path, default=Path(".paywall/sink.jsonl"))
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.store)


if __name__ == "__main__":
    main()
