"""Loopback stand-in for SendGrid (v3 mail send) and Twilio (2010-04-01 Messages).

The real `sendgrid` and `twilio` SDKs are pointed at this server, so the wire format, status
codes and error bodies follow the providers: code that works here should work there. Every
accepted message is recorded in memory and in a JSON-lines file, and can be read back through
`GET /_sink/messages`.

    python -m paywall.stack.sink_server --host 127.0.0.1 --port 8025 --store .paywall/sink.jsonl
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email.utils
import json
import math
import re
import secrets
import signal
import threading
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from twilio.http.response import Response
    from twilio.rest import Client

PROVIDERS = ("sendgrid", "twilio")
TWILIO_API_VERSION = "2010-04-01"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# E.164, plus the channel prefixes Twilio accepts on the same endpoint.
_PHONE = re.compile(r"^(?:whatsapp:|messenger:)?\+?[1-9]\d{1,14}$")
_TWILIO_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_TWILIO_MESSAGE = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)
_TWILIO_BODY_LIMIT = 1600
_ERROR_STATUSES = frozenset(s.value for s in HTTPStatus if s >= 400)

Record = dict[str, Any]


class SinkState:
    """Recorded messages and pending faults, shared by all request threads."""

    def __init__(self, store: Path) -> None:
        self._lock = threading.Lock()
        self._store = store
        self._faults: dict[str, tuple[int, int]] = {}
        store.parent.mkdir(parents=True, exist_ok=True)
        self._messages = _load(store)

    def record(self, records: list[Record]) -> None:
        with self._lock:
            self._messages.extend(records)
            with self._store.open("a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)

    def messages(self, provider: str | None = None, to: str | None = None) -> list[Record]:
        with self._lock:
            return [
                m
                for m in self._messages
                if (provider is None or m["provider"] == provider) and (to is None or m["to"] == to)
            ]

    def twilio_message(self, sid: str) -> Record | None:
        with self._lock:
            return next(
                (m for m in self._messages if m["provider"] == "twilio" and m["message_id"] == sid),
                None,
            )

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            # Truncate too, or a restart would bring the cleared messages back.
            self._store.write_text("", encoding="utf-8")

    def set_fault(self, provider: str, status: int, count: int) -> None:
        with self._lock:
            self._faults[provider] = (status, count)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {p: {"status": s, "count": c} for p, (s, c) in self._faults.items()}

    def take_fault(self, provider: str) -> int | None:
        """Consume one injected failure for `provider`, returning its HTTP status."""
        with self._lock:
            status, count = self._faults.get(provider, (0, 0))
            if count <= 0:
                return None
            if count == 1:
                del self._faults[provider]
            else:
                self._faults[provider] = (status, count - 1)
            return status


def _load(store: Path) -> list[Record]:
    if not store.exists():
        return []
    records: list[Record] = []
    for line in store.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # A crash mid-append leaves a torn last line; the complete lines are still good.
            continue
    return records


def _now() -> datetime:
    return datetime.now(UTC)


# --- SendGrid ---------------------------------------------------------------------------------


def _sendgrid_error(message: str, field: str | None = None) -> Record:
    return {"message": message, "field": field, "help": None}


def _sendgrid_errors(body: Any) -> list[Record]:
    """The essential checks SendGrid makes on a v3 mail/send body, with SendGrid's messages."""
    if not isinstance(body, dict):
        return [_sendgrid_error("Bad Request")]
    errors = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _sendgrid_error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    for i, p in enumerate(personalizations):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(
                _sendgrid_error(
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
            continue
        for kind in ("to", "cc", "bcc"):
            for j, addr in enumerate(p.get(kind) or []):
                if not _valid_email(addr):
                    errors.append(
                        _sendgrid_error(
                            "Does not contain a valid address.",
                            f"personalizations.{i}.{kind}.{j}.email",
                        )
                    )
    if not _valid_email(body.get("from")):
        errors.append(
            _sendgrid_error(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from.email",
            )
        )
    template_id = body.get("template_id")
    every_personalization_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if not (template_id or body.get("subject") or every_personalization_has_subject):
        errors.append(
            _sendgrid_error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        )
    content = body.get("content")
    if not template_id and (not isinstance(content, list) or not content):
        errors.append(
            _sendgrid_error(
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block.",
                "content",
            )
        )
    for k, block in enumerate(content if isinstance(content, list) else []):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(_sendgrid_error("The content type is required.", f"content.{k}.type"))
        elif not isinstance(block.get("value"), str) or not block["value"]:
            errors.append(
                _sendgrid_error(
                    "The content value must be a string at least one character in length.",
                    f"content.{k}.value",
                )
            )
    return errors


def _valid_email(addr: Any) -> bool:
    return (
        isinstance(addr, dict)
        and isinstance(addr.get("email"), str)
        and _EMAIL.match(addr["email"]) is not None
    )


def _sendgrid_records(body: Record, message_id: str) -> list[Record]:
    content = {c["type"]: c["value"] for c in body.get("content") or []}
    message = {
        "provider": "sendgrid",
        "message_id": message_id,
        "from": body["from"]["email"],
        "from_name": body["from"].get("name"),
        "text": content.get("text/plain"),
        "html": content.get("text/html"),
        "template_id": body.get("template_id"),
        "categories": body.get("categories") or [],
        "received_at": _now().isoformat(),
    }
    records: list[Record] = []
    for p in body["personalizations"]:
        per_personalization = {
            "subject": p.get("subject") or body.get("subject"),
            "dynamic_template_data": p.get("dynamic_template_data"),
            # SendGrid merges them the same way: the personalization's value wins.
            "custom_args": {**_obj(body.get("custom_args")), **_obj(p.get("custom_args"))},
        }
        for kind in ("to", "cc", "bcc"):
            records.extend(
                {
                    "id": uuid.uuid4().hex,
                    **message,
                    **per_personalization,
                    "to": addr["email"],
                    "to_name": addr.get("name"),
                    "recipient_type": kind,
                }
                for addr in p.get(kind) or []
            )
    return records


def _obj(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


def _sendgrid_message_id() -> str:
    # Same look as SendGrid's ids: 22 characters of URL-safe base64.
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


# --- Twilio -----------------------------------------------------------------------------------


def _twilio_error(code: int, message: str, status: int) -> Record:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _twilio_errors(form: dict[str, list[str]]) -> Record | None:
    """Twilio reports only the first problem it finds, so this returns one error or None."""
    to = form.get("To", [""])[0]
    body = form.get("Body", [""])[0]
    if not to:
        return _twilio_error(21604, "A 'To' phone number is required.", 400)
    if not _PHONE.match(to):
        return _twilio_error(21211, f"Invalid 'To' Phone Number: {to}", 400)
    if not form.get("From", [""])[0] and not form.get("MessagingServiceSid", [""])[0]:
        return _twilio_error(21603, "A 'From' phone number is required.", 400)
    if not body and not form.get("MediaUrl"):
        return _twilio_error(21602, "Message body is required.", 400)
    if len(body) > _TWILIO_BODY_LIMIT:
        return _twilio_error(
            21617, "The concatenated message body exceeds the 1600 character limit.", 400
        )
    return None


def _twilio_record(account_sid: str, form: dict[str, list[str]]) -> Record:
    return {
        "id": uuid.uuid4().hex,
        "provider": "twilio",
        "message_id": "SM" + secrets.token_hex(16),
        "account_sid": account_sid,
        "to": form["To"][0],
        "from": form.get("From", [None])[0],
        "messaging_service_sid": form.get("MessagingServiceSid", [None])[0],
        "body": form.get("Body", [""])[0],
        "media_urls": form.get("MediaUrl", []),
        "status_callback": form.get("StatusCallback", [None])[0],
        "status": "queued",
        "received_at": _now().isoformat(),
    }


def _twilio_resource(record: Record) -> Record:
    """The Message resource as Twilio's 2010-04-01 API renders it."""
    uri = f"/{TWILIO_API_VERSION}/Accounts/{record['account_sid']}/Messages/{record['message_id']}"
    created = email.utils.format_datetime(datetime.fromisoformat(record["received_at"]))
    body = record["body"]
    return {
        "account_sid": record["account_sid"],
        "api_version": TWILIO_API_VERSION,
        "body": body,
        "date_created": created,
        "date_sent": None,
        "date_updated": created,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": record["from"],
        "messaging_service_sid": record["messaging_service_sid"],
        "num_media": str(len(record["media_urls"])),
        # A single GSM-7 SMS holds 160 characters, each part of a longer one 153.
        "num_segments": str(1 if len(body) <= 160 else math.ceil(len(body) / 153)),
        "price": None,
        "price_unit": "USD",
        "sid": record["message_id"],
        "status": record["status"],
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": record["to"],
        "uri": f"{uri}.json",
    }


def _basic_auth_user(header: str | None) -> str | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user if user and password else None


def twilio_client(base_url: str, account_sid: str, auth_token: str) -> Client:
    """A real `twilio.rest.Client` whose requests all go to `base_url` (this sink)."""
    # Imported here so the server itself runs on the standard library alone.
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    class SinkHttpClient(TwilioHttpClient):
        # Rewriting at the transport keeps every SDK resource working; patching one
        # domain's base_url would miss the others and relies on SDK internals.
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
            parts = urlsplit(url)
            if parts.hostname and parts.hostname.endswith("twilio.com"):
                url = base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
            return super().request(method, url, *args, **kwargs)

    return Client(account_sid, auth_token, http_client=SinkHttpClient())


# --- HTTP ---------------------------------------------------------------------------------------


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
        elif m := _TWILIO_MESSAGE.match(url.path):
            self._twilio_fetch(m["account"], m["sid"])
        elif m := _TWILIO_MESSAGES.match(url.path):
            self._twilio_list(m["account"], query)
        else:
            self._not_found()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/v3/mail/send":
            self._sendgrid_send(body)
        elif m := _TWILIO_MESSAGES.match(path):
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
            self._json(401, {"errors": [_sendgrid_error("authorization required")]})
            return
        if status := self.server.state.take_fault("sendgrid"):
            self._json(status, {"errors": [_sendgrid_error(HTTPStatus(status).phrase)]})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if errors := _sendgrid_errors(body):
            self._json(400, {"errors": errors})
            return
        message_id = _sendgrid_message_id()
        self.server.state.record(_sendgrid_records(body, message_id))
        self._reply(202, headers={"X-Message-Id": message_id})

    def _twilio_send(self, account_sid: str, raw: bytes) -> None:
        if not self._twilio_authorized(account_sid):
            return
        if status := self.server.state.take_fault("twilio"):
            phrase = HTTPStatus(status).phrase
            self._json(status, _twilio_error(20000 + status, phrase, status))
            return
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        if error := _twilio_errors(form):
            self._json(error["status"], error)
            return
        record = _twilio_record(account_sid, form)
        self.server.state.record([record])
        self._json(201, _twilio_resource(record))

    def _twilio_fetch(self, account_sid: str, sid: str) -> None:
        if not self._twilio_authorized(account_sid):
            return
        record = self.server.state.twilio_message(sid)
        if record is None or record["account_sid"] != account_sid:
            message = f"The requested resource {urlsplit(self.path).path} was not found"
            self._json(404, _twilio_error(20404, message, 404))
            return
        self._json(200, _twilio_resource(record))

    def _twilio_list(self, account_sid: str, query: dict[str, str]) -> None:
        if not self._twilio_authorized(account_sid):
            return
        # Newest first, like Twilio; one page holds everything a sink will ever have.
        messages = [
            _twilio_resource(r)
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
        user = _basic_auth_user(self.headers.get("Authorization"))
        # The user is the account SID itself, or an API key (SK...) acting for it.
        if user is None or (user.startswith("AC") and user != account_sid):
            error = _twilio_error(20003, "Authenticate", 401)
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
