from __future__ import annotations

import json
import logging

import pytest

from paywall.logs import configure_logging, get_logger, request_id
from paywall.settings import Settings


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
    err = capsys.readouterr().err
    assert "hello" in err
    assert not err.lstrip().startswith("{")
