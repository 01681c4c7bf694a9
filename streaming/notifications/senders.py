"""The real SendGrid and Twilio SDKs (pointed at the local sink when it runs), sending as the
sender identity in settings (NOTIFY_FROM_EMAIL, NOTIFY_FROM_PHONE).

Every failure comes out as a `ProviderError` that says whether sending again can help, so
the consumer (retry, then dead-letter) and the batch (leave it pending for the next run)
decide the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from paywall import clients
from paywall.errors import ConfigError
from paywall.settings import TWILIO_TEST_FROM, Settings

SENDGRID_MAX_PERSONALIZATIONS = 1000
# Each personalization's own body replaces this tag in the one content block of a request.
BODY_TAG = "-body-"


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str
    dedupe_key: str  # travels as a custom arg, so a provider's events name the notice


class ProviderError(Exception):
    """A provider did not take a message. Retryable: a 5xx, a 429 or no answer at all;
    otherwise the provider refused the request (a 4xx) and sending it again cannot help."""

    def __init__(self, provider: str, status: int | None, detail: str) -> None:
        super().__init__(f"{provider} {status or 'unreachable'}: {detail[:200]}")
        self.provider = provider
        self.status = status
        self.retryable = status is None or status >= 500 or status == 429


class Senders:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def email(self, emails: Sequence[Email]) -> str:
        """Up to 1000 emails, each its own personalization, in one SendGrid call; the
        request's message id."""
        from python_http_client.exceptions import HTTPError
        from sendgrid.helpers.mail import (
            Content,
            CustomArg,
            From,
            Mail,
            Personalization,
            Substitution,
            To,
        )

        if not 0 < len(emails) <= SENDGRID_MAX_PERSONALIZATIONS:
            raise ValueError(f"one request holds 1 to {SENDGRID_MAX_PERSONALIZATIONS} emails")
        mail = Mail()
        mail.from_email = From(self.settings.notify_from_email)
        mail.add_content(Content("text/plain", BODY_TAG))
        for email in emails:
            p = Personalization()
            p.add_to(To(email.to))
            p.subject = email.subject
            p.add_substitution(Substitution(BODY_TAG, email.body))
            p.add_custom_arg(CustomArg("dedupe_key", email.dedupe_key))
            mail.add_personalization(p)
        try:
            resp = clients.sendgrid_client(self.settings).send(mail)
        except HTTPError as exc:
            raise ProviderError("sendgrid", exc.status_code, str(exc.body)) from exc
        except OSError as exc:
            raise ProviderError("sendgrid", None, str(exc)) from exc
        return str(resp.headers.get("X-Message-Id", ""))

    def sms(self, to: str, body: str) -> str:
        """One text message through Twilio; its SID."""
        from twilio.base.exceptions import TwilioRestException

        sender = self._from_phone()
        try:
            sent = clients.twilio_client(self.settings).messages.create(
                to=to, from_=sender, body=body
            )
        except TwilioRestException as exc:
            raise ProviderError("twilio", exc.status, exc.msg) from exc
        except OSError as exc:
            raise ProviderError("twilio", None, str(exc)) from exc
        return str(sent.sid)

    def _from_phone(self) -> str:
        # Checked where used: a pod that sends no SMS starts without the setting.
        phone = self.settings.notify_from_phone
        if self.settings.is_production and phone == TWILIO_TEST_FROM:
            raise ConfigError("NOTIFY_FROM_PHONE", "production needs its own Twilio number")
        return phone
