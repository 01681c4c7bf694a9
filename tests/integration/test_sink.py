"""The email/SMS sink, driven through the real `sendgrid` and `twilio` SDKs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, CustomArg, Mail, Personalization, Substitution, To
from twilio.base.exceptions import TwilioRestException

from paywall.clients import twilio_rest_client
from paywall.stack.process import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-token"


@dataclass
class Sink:
    url: str
    proc: subprocess.Popen[bytes]

    def messages(self, **query: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_sink/messages", params=query)
        response.raise_for_status()
        return response.json()

    def fault(self, provider: str, status: int, count: int) -> None:
        body = {"provider": provider, "status": status, "count": count}
        httpx.post(f"{self.url}/_sink/faults", json=body).raise_for_status()

    def sendgrid(self) -> SendGridAPIClient:
        return SendGridAPIClient(api_key="SG.test", host=self.url)

    def twilio(self, account_sid: str = ACCOUNT_SID) -> Any:
        return twilio_rest_client(account_sid, AUTH_TOKEN, self.url)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def start_sink(tmp_path: Path) -> Iterator[Callable[[Path], Sink]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(store: Path) -> Sink:
        port = free_port()
        log = (tmp_path / f"sink-{port}.log").open("wb")
        args = ["--host", "127.0.0.1", "--port", str(port), "--store", str(store)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "paywall.stack.sink_server", *args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"sink exited early:\n{Path(log.name).read_text()}")
            try:
                if httpx.get(f"{url}/healthz").json() == {"status": "ok"}:
                    return Sink(url, proc)
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail("sink did not answer /healthz in time")

    yield start
    for proc in procs:
        _stop(proc)


@pytest.fixture
def sink(start_sink: Callable[[Path], Sink], tmp_path: Path) -> Sink:
    return start_sink(tmp_path / "sink.jsonl")


def _welcome_mail() -> Mail:
    mail = Mail(
        from_email="billing@paywall.example.com",
        to_emails="reader@example.com",
        subject="Welcome",
        plain_text_content="Thanks for subscribing.",
        html_content="<p>Thanks for subscribing.</p>",
    )
    mail.custom_arg = CustomArg("user_id", "u_1")
    return mail


def test_email_through_sendgrid_sdk_is_recorded(sink: Sink) -> None:
    response = sink.sendgrid().send(_welcome_mail())

    assert response.status_code == 202
    assert response.body in (b"", "")
    [message] = sink.messages(provider="sendgrid")
    assert message["message_id"] == response.headers["X-Message-Id"]
    assert message["to"] == "reader@example.com"
    assert message["from"] == "billing@paywall.example.com"
    assert message["subject"] == "Welcome"
    assert message["text"] == "Thanks for subscribing."
    assert message["html"] == "<p>Thanks for subscribing.</p>"
    assert message["custom_args"] == {"user_id": "u_1"}
    assert sink.messages(to="someone-else@example.com") == []


def test_each_personalization_gets_its_own_substitutions(sink: Sink) -> None:
    mail = Mail(from_email="billing@paywall.example.com")
    mail.add_content(Content("text/plain", "Hi -name-, your code is -code-."))
    for name, code in (("Ada", "111"), ("Grace", "222")):
        p = Personalization()
        p.add_to(To(f"{name.lower()}@example.com"))
        p.subject = "Code for -name-"
        p.add_substitution(Substitution("-name-", name))
        p.add_substitution(Substitution("-code-", code))
        mail.add_personalization(p)
    assert sink.sendgrid().send(mail).status_code == 202

    [ada] = sink.messages(to="ada@example.com")
    [grace] = sink.messages(to="grace@example.com")
    assert (ada["subject"], ada["text"]) == ("Code for Ada", "Hi Ada, your code is 111.")
    assert (grace["subject"], grace["text"]) == ("Code for Grace", "Hi Grace, your code is 222.")


def test_sms_through_twilio_sdk_is_recorded(sink: Sink) -> None:
    client = sink.twilio()
    sent = client.messages.create(to="+15551230001", from_="+15559870000", body="Code 123456")

    assert sent.sid.startswith("SM") and len(sent.sid) == 34
    assert sent.status == "queued"
    assert sent.date_created is not None
    [message] = sink.messages(provider="twilio")
    assert message["message_id"] == sent.sid
    assert (message["to"], message["from"], message["body"]) == (
        "+15551230001",
        "+15559870000",
        "Code 123456",
    )
    fetched = client.messages(sent.sid).fetch()
    assert (fetched.sid, fetched.to, fetched.body) == (sent.sid, "+15551230001", "Code 123456")
    assert [m.sid for m in client.messages.list(to="+15551230001")] == [sent.sid]


def test_bad_requests_are_rejected_and_record_nothing(sink: Sink) -> None:
    with pytest.raises(HTTPError) as bad_mail:
        sink.sendgrid().client.mail.send.post(
            request_body={
                "personalizations": [{"to": [{"email": "reader@example.com"}]}],
                "subject": "No sender",
                "content": [{"type": "text/plain", "value": "hi"}],
            }
        )
    assert bad_mail.value.status_code == 400
    assert [e["field"] for e in bad_mail.value.to_dict["errors"]] == ["from.email"]

    no_auth = httpx.post(f"{sink.url}/v3/mail/send", json={})
    assert no_auth.status_code == 401
    assert no_auth.json()["errors"][0].keys() == {"message", "field", "help"}

    with pytest.raises(TwilioRestException) as no_body:
        sink.twilio().messages.create(to="+15551230001", from_="+15559870000", body="")
    assert (no_body.value.status, no_body.value.code) == (400, 21602)

    with pytest.raises(TwilioRestException) as no_to:
        sink.twilio().messages.create(to="", from_="+15559870000", body="hi")
    assert (no_to.value.status, no_to.value.code) == (400, 21604)

    with pytest.raises(TwilioRestException) as wrong_account:
        twilio_rest_client(ACCOUNT_SID, AUTH_TOKEN, sink.url).api.v2010.accounts(
            "AC" + "1" * 32
        ).messages.create(to="+15551230001", from_="+15559870000", body="hi")
    assert (wrong_account.value.status, wrong_account.value.code) == (401, 20003)

    assert sink.messages() == []


def test_injected_faults_fail_the_next_calls_only(sink: Sink) -> None:
    sink.fault("sendgrid", 503, count=2)
    for _ in range(2):
        with pytest.raises(HTTPError) as failed:
            sink.sendgrid().send(_welcome_mail())
        assert failed.value.status_code == 503
    assert sink.messages() == []
    assert sink.sendgrid().send(_welcome_mail()).status_code == 202

    sink.fault("twilio", 429, count=1)
    with pytest.raises(TwilioRestException) as throttled:
        sink.twilio().messages.create(to="+15551230001", from_="+15559870000", body="hi")
    assert throttled.value.status == 429
    sink.twilio().messages.create(to="+15551230001", from_="+15559870000", body="hi")

    assert [m["provider"] for m in sink.messages()] == ["sendgrid", "twilio"]
    bad_fault = httpx.post(f"{sink.url}/_sink/faults", json={"provider": "smtp", "status": 500})
    assert bad_fault.status_code == 400


def test_messages_survive_a_restart_until_cleared(
    start_sink: Callable[[Path], Sink], tmp_path: Path
) -> None:
    store = tmp_path / "state" / "sink.jsonl"
    first = start_sink(store)
    first.sendgrid().send(_welcome_mail())
    sms = first.twilio().messages.create(to="+15551230001", from_="+15559870000", body="hi")
    before = first.messages()
    _stop(first.proc)
    assert first.proc.returncode == 0  # SIGTERM is a clean shutdown

    second = start_sink(store)
    assert second.messages() == before
    assert second.twilio().messages(sms.sid).fetch().body == "hi"

    assert httpx.delete(f"{second.url}/_sink/messages").status_code == 204
    assert second.messages() == []
    _stop(second.proc)
    assert start_sink(store).messages() == []
