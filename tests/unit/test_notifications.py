"""The notification toolkit's own rules, without servers: every template renders, a missing
value is an error (never a blank in a message), and production sends SMS from its own
number, not Twilio's test one."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import UndefinedError

from paywall.errors import ConfigError
from paywall.settings import TWILIO_TEST_FROM, Settings
from streaming.notifications.senders import Senders
from streaming.notifications.templates import TEMPLATES_DIR, render

VALUES = {
    "name": "Ada",
    "plan": "pro-monthly",
    "status": "active",
    "amount": "29.00",
    "currency": "USD",
    "payment_id": "pay_1",
    "reason": "card_declined",
    "trial_end": "2026-08-13",
    "interval": "month",
    "next_step": "We will try again on 2026-08-21; please check your card.",
    "month": "2026-07",
    "count": 2,
    "job": "billing_job",
    "partition": "2026-08-20",
    "run_id": "r1",
    "error": "boom",
    "endpoint_id": "0b0e7a4e-3f2b-4a52-8d8e-1d2f3a4b5c6d",
    "tenant": "acme",
    "url": "https://acme.example.com/hooks",
    "failures": 50,
    "card_link": "https://pay.example.com/portal/link?t=abc",
}


@pytest.mark.parametrize("path", sorted(TEMPLATES_DIR.glob("*.txt")), ids=lambda p: p.name)
def test_every_template_renders(path: Path) -> None:
    template, channel, _ = path.name.split(".")
    message = render(template, channel, VALUES)
    assert message.body.strip()
    assert bool(message.subject) == (channel == "email")
    assert "{{" not in message.subject + message.body


def test_a_missing_value_is_an_error() -> None:
    with pytest.raises(UndefinedError, match="amount"):
        render("receipt", "email", {"name": "Ada", "currency": "USD", "payment_id": "p"})


def test_production_sends_sms_from_its_own_number() -> None:
    production = Settings(
        _env_file=None,  # type: ignore[call-arg]
        PAYWALL_ENV="production",
        TWILIO_ACCOUNT_SID="AC" + "1" * 32,
        TWILIO_AUTH_TOKEN="token",
    )
    assert production.notify_from_phone == TWILIO_TEST_FROM
    with pytest.raises(ConfigError, match="NOTIFY_FROM_PHONE"):
        Senders(production).sms("+15551230001", "hello")


def test_notices_about_a_card_link_into_the_portal_for_that_customer() -> None:
    from urllib.parse import parse_qs, urlsplit

    from paywall.portal_links import LINK, Sealer
    from paywall.settings import get_settings
    from streaming.notifications.templates import with_links

    values = {"amount": "9.00", "currency": "USD", "reason": "card_declined"}
    assert with_links("receipt", "c-1", "acme", values) == values
    linked = with_links("payment_failed", "c-1", "acme", values)
    body = render("payment_failed", "email", {"name": "Ada", **linked}).body
    assert linked["card_link"] in body
    token = parse_qs(urlsplit(linked["card_link"]).query)["t"][0]
    opened = Sealer.from_settings(get_settings()).open(LINK, token)
    assert opened == {"customer_id": "c-1", "tenant_id": "acme", "next": "/portal/#card"}
