from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from paywall import logs
from paywall.logs import configure_logging, flush_logs, get_logger, request_id
from paywall.redaction import scrub
from paywall.settings import Settings

PASSWORD = "correct horse battery staple 42"
CARD = "4242 4242 4242 4242"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0"
CLIENT_SECRET = "cs-7f3a9b1e44d0c2"
SECRETS = (PASSWORD, CARD, CARD.replace(" ", ""), TOKEN, CLIENT_SECRET)


def _settings(log_format: str) -> Settings:
    return Settings(_env_file=None, LOG_FORMAT=log_format)  # type: ignore[call-arg]


def _written(capsys: pytest.CaptureFixture[str]) -> str:
    flush_logs()
    return capsys.readouterr().err


def test_production_logs_are_json_lines_with_the_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    production = Settings(  # type: ignore[call-arg]
        _env_file=None,
        PAYWALL_ENV="production",
        LAKE_PII_SALT="salt",
        REGISTRATION_CLIENT_SECRET="r-secret",
        BILLING_CLIENT_SECRET="b-secret",
        SUBSCRIPTION_CLIENT_SECRET="s-secret",
        PAYMENT_CLIENT_SECRET="p-secret",
    )
    configure_logging(production)
    token = request_id.set("req-123")
    try:
        get_logger("paywall.test").info("signup.created", customer_id="c1")
        logging.getLogger("alembic.runtime").warning("plain stdlib record")
    finally:
        request_id.reset(token)
    flush_logs()
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    assert lines[0]["event"] == "signup.created"
    assert lines[0]["request_id"] == "req-123"
    assert lines[0]["customer_id"] == "c1"
    assert lines[0]["level"] == "info"
    assert lines[1]["event"] == "plain stdlib record"
    assert lines[1]["request_id"] == "req-123"


def test_local_logs_are_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(_env_file=None, PAYWALL_ENV="local"))  # type: ignore[call-arg]
    get_logger("paywall.test").info("hello", n=1)
    flush_logs()
    err = capsys.readouterr().err
    assert "hello" in err
    assert not err.lstrip().startswith("{")


def _fail_with_secrets_in_scope(body: dict[str, object]) -> None:
    password = body["password"]  # locals a rich traceback would print
    raise ValueError(f"1 validation error [type=string_too_short, input_value='{password}']")


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_secrets_never_reach_a_line(log_format: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(_settings(log_format))
    body = {"password": PASSWORD, "card": {"number": CARD}, "client_secret": CLIENT_SECRET}
    log = get_logger("paywall.test")
    log.warning("request.body", body=body, authorization=f"Bearer {TOKEN}")
    log.info(f"callback?code=1&client_secret={CLIENT_SECRET}&token={TOKEN}")
    logging.getLogger("uvicorn.error").warning("card %s refused for Bearer %s", CARD, TOKEN)
    try:
        _fail_with_secrets_in_scope(body)
    except ValueError:
        log.exception("request.failed")

    out = _written(capsys)
    assert "request.body" in out and "request.failed" in out and "ValueError" in out
    for secret in SECRETS:
        assert secret not in out, f"{secret!r} reached the log:\n{out}"


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_traceback_is_short_plain_and_has_no_locals(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(_settings(log_format))

    def recurse(depth: int) -> None:
        local_marker = f"local-variable-{depth}"  # noqa: F841 (what a locals dump would show)
        if depth == 0:
            raise RuntimeError("boom")
        recurse(depth - 1)

    try:
        recurse(30)
    except RuntimeError:
        get_logger("paywall.test").exception("request.failed")

    out = _written(capsys)
    assert out.count("Traceback (most recent call last)") == 1
    assert "RuntimeError: boom" in out
    assert "local-variable" not in out
    # The frames nearest the error are kept, the way down to them (this test) is cut.
    assert "in recurse" in out
    assert "in test_a_traceback_is_short" not in out


def test_logging_never_waits_for_a_stuck_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()

    class StuckStderr(io.StringIO):
        def write(self, text: str) -> int:
            released.wait()  # a pipe nobody reads
            return super().write(text)

    monkeypatch.setattr("sys.stderr", StuckStderr())
    configure_logging(_settings("json"))
    dropped = logs.DROPPED._value.get()

    def flood() -> None:
        for i in range(logs.QUEUE_SIZE + 100):
            get_logger("paywall.test").info("line", i=i)

    caller = threading.Thread(target=flood, daemon=True)
    caller.start()
    caller.join(timeout=60)  # a hang guard, not a speed check: a blocking logger never returns
    try:
        assert not caller.is_alive(), "logging blocked on a stuck stderr"
        assert logs.DROPPED._value.get() > dropped
    finally:
        released.set()
        flush_logs()


def test_scrub_masks_what_looks_secret_and_keeps_the_rest() -> None:
    text = (
        f"postgresql://app:{CLIENT_SECRET}@db:5432/paywall Basic dXNlcjpwYXNz "
        f"sk_live_abc123 card 4000-0566-5566-5556 order 1234567890123 at 2026-11-25"
    )
    cleaned = scrub(text)
    for secret in (CLIENT_SECRET, "dXNlcjpwYXNz", "sk_live_abc123", "4000-0566-5566-5556"):
        assert secret not in cleaned
    # Not a card (fails Luhn), not a secret: stays readable.
    assert "order 1234567890123 at 2026-11-25" in cleaned
    assert "postgresql://app:" in cleaned and "@db:5432/paywall" in cleaned
