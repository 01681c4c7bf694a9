"""The notifications domain's own resource: the real SendGrid and Twilio SDKs (pointed at the
local sink when it runs), for the batches and the ops alert."""

from __future__ import annotations

from dataclasses import dataclass

from paywall import clients
from paywall.settings import Settings

SENDER_EMAIL = "billing@paywall.dev"
SENDER_PHONE = "+15005550006"
SENDGRID_MAX_PERSONALIZATIONS = 1000


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str
    dedupe_key: str


class Senders:
    """The real SendGrid and Twilio SDKs (pointed at the local sink when it runs)."""

    def __init__(self, settings: Settings, ops_email: str) -> None:
        self.settings = settings
        self.ops_email = ops_email

    def email_batch(self, emails: list[Email]) -> str:
        """Up to 1000 personalized emails in one SendGrid call; the batch's message id."""
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
            raise ValueError(f"a batch holds 1 to {SENDGRID_MAX_PERSONALIZATIONS} emails")
        mail = Mail()
        mail.from_email = From(SENDER_EMAIL)
        # One body for all; each personalization carries its own subject and values.
        mail.add_content(Content("text/plain", "-body-"))
        for email in emails:
            p = Personalization()
            p.add_to(To(email.to))
            p.subject = email.subject
            p.add_substitution(Substitution("-body-", email.body))
            p.add_custom_arg(CustomArg("dedupe_key", email.dedupe_key))
            mail.add_personalization(p)
        resp = clients.sendgrid_client(self.settings).send(mail)
        return str(resp.headers.get("X-Message-Id", ""))

    def sms(self, to: str, body: str) -> str:
        sent = clients.twilio_client(self.settings).messages.create(
            to=to, from_=SENDER_PHONE, body=body
        )
        return str(sent.sid)

    def alert(self, subject: str, body: str) -> str:
        return self.email_batch([Email(self.ops_email, subject, body, f"alert:{subject}")])
