"""Notification consumer: welcome email/SMS, receipts and payment-failed notices.

Contact details come from customer events into this service's own `recipients` table
(no reads of the customer service's tables), newest event wins: customer and registration
events come on different topics, and a repair (streaming/completeness.py) resends an old
event late. Each send is recorded under a dedupe key (event, channel, template) with the
provider's message id, so a redelivered event sends nothing twice. SMS goes only to
customers who opted in; erased customers get nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import bindparam

from paywall import clients
from paywall.logs import get_logger
from paywall.settings import Settings
from streaming.consumers.runner import Delivery, Retryable

log = get_logger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
SENDER_EMAIL = "billing@paywall.dev"
SENDER_PHONE = "+15005550006"


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


def render(template: str, **values: Any) -> Message:
    raw = Template((TEMPLATES / f"{template}.txt").read_text()).substitute(values)
    first, _, rest = raw.partition("\n")
    if first.startswith("Subject: "):
        return Message(first.removeprefix("Subject: "), rest.strip() + "\n")
    return Message("", raw.strip())


class Senders:
    """The real SendGrid and Twilio SDKs (pointed at the local sink when it runs)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def email(self, to: str, message: Message, dedupe_key: str) -> str:
        from python_http_client.exceptions import HTTPError
        from sendgrid.helpers.mail import CustomArg, Mail

        mail = Mail(SENDER_EMAIL, to, message.subject, plain_text_content=message.body)
        mail.add_custom_arg(CustomArg("dedupe_key", dedupe_key))
        try:
            resp = clients.sendgrid_client(self.settings).send(mail)
        except HTTPError as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                raise Retryable(f"sendgrid {exc.status_code}") from exc
            raise
        return str(resp.headers.get("X-Message-Id", ""))

    def sms(self, to: str, message: Message) -> str:
        from twilio.base.exceptions import TwilioRestException

        try:
            sent = clients.twilio_client(self.settings).messages.create(
                to=to, from_=SENDER_PHONE, body=message.body
            )
        except TwilioRestException as exc:
            if exc.status >= 500 or exc.status == 429:
                raise Retryable(f"twilio {exc.status}") from exc
            raise
        return str(sent.sid)


class Notifier:
    def __init__(self, engine: Engine, senders: Senders) -> None:
        self.engine = engine
        self.senders = senders

    def __call__(self, delivery: Delivery) -> None:
        env = delivery.envelope
        data: dict[str, Any] = env["data"]
        kind = env["event_type"]
        if kind in ("customer.created", "customer.updated"):
            self._remember(data, env["occurred_at"])
        elif kind == "customer.erased":
            self._forget(data["customer_id"])
        elif kind == "registration.completed":
            opt_in = data.get("marketing_opt_in", False)
            self._remember({**data, "marketing_opt_in": opt_in}, env["occurred_at"])
            values = {
                "name": data.get("name") or "there",
                "plan": data["plan_id"],
                "status": data["subscription_status"],
            }
            self._send(env, data["customer_id"], "email", "welcome", values)
            self._send(env, data["customer_id"], "sms", "welcome", values)
        elif kind == "payment.succeeded":
            self._send(env, data["customer_id"], "email", "receipt", _money(data))
        elif kind == "payment.failed":
            reason = data.get("decline_code") or data.get("failure_code") or "declined"
            self._send(
                env,
                data["customer_id"],
                "email",
                "payment_failed",
                {**_money(data), "reason": reason},
            )

    def _remember(self, data: dict[str, Any], as_of: str) -> None:
        """Keep the customer's details, unless newer ones (by event time) are already kept."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO notification.recipients (customer_id, email, phone, name, "
                    "sms_opt_in, as_of) VALUES (:c, :e, :p, :n, :o, :a) ON CONFLICT "
                    "(customer_id) DO UPDATE SET email = excluded.email, phone = excluded.phone, "
                    "name = excluded.name, sms_opt_in = excluded.sms_opt_in, "
                    "as_of = excluded.as_of, updated_at = now() "
                    "WHERE NOT notification.recipients.erased AND (notification.recipients.as_of "
                    "IS NULL OR notification.recipients.as_of <= excluded.as_of)"
                ),
                {
                    "c": data["customer_id"],
                    "e": data.get("email"),
                    "p": data.get("phone"),
                    "n": data.get("name"),
                    "o": bool(data.get("marketing_opt_in")),
                    "a": as_of,
                },
            )
        self._release_waiting(data["customer_id"])

    def _forget(self, customer_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO notification.recipients (customer_id, erased) VALUES (:c, true) "
                    "ON CONFLICT (customer_id) DO UPDATE SET email = NULL, phone = NULL, "
                    "name = NULL, sms_opt_in = false, erased = true, updated_at = now()"
                ),
                {"c": customer_id},
            )

    def _send(
        self,
        env: dict[str, Any],
        customer_id: str,
        channel: str,
        template: str,
        values: dict[str, Any],
        releasing: bool = False,
    ) -> None:
        key = f"{env['event_id']}:{channel}:{template}"
        with self.engine.begin() as conn:
            done = conn.execute(
                text("SELECT status FROM notification.sends WHERE dedupe_key = :k"), {"k": key}
            ).scalar()
            if done in ("sent", "skipped", "failed") or (done == "waiting" and not releasing):
                return
            who = conn.execute(
                text(
                    "SELECT email, phone, name, sms_opt_in, erased FROM notification.recipients "
                    "WHERE customer_id = :c"
                ),
                {"c": customer_id},
            ).first()
        if who is None:
            # The customer's own event is on another topic and may arrive later: park the
            # send; remembering the customer releases it.
            self._record(key, env, customer_id, channel, template, "waiting", None, None, values)
            return
        address = who.email if channel == "email" else who.phone
        if who.erased or not address or (channel == "sms" and not who.sms_opt_in):
            self._record(key, env, customer_id, channel, template, "skipped", None, None)
            return
        self._record(key, env, customer_id, channel, template, "pending", None, None)
        message = render(f"{template}.{channel}", **{"name": who.name or "there", **values})
        try:
            provider_id = (
                self.senders.email(address, message, key)
                if channel == "email"
                else self.senders.sms(address, message)
            )
        except Retryable:
            raise
        except Exception as exc:  # a provider's 4xx: retrying cannot help
            self._record(key, env, customer_id, channel, template, "failed", None, str(exc))
            log.warning("notification.rejected", channel=channel, error=str(exc)[:200])
            return
        self._record(key, env, customer_id, channel, template, "sent", provider_id, None)

    def _release_waiting(self, customer_id: str) -> None:
        with self.engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT event_id, channel, template, values FROM notification.sends "
                    "WHERE customer_id = :c AND status = 'waiting' ORDER BY id"
                ),
                {"c": customer_id},
            ).all()
        for row in waiting:
            env = {"event_id": row.event_id}
            self._send(env, customer_id, row.channel, row.template, row.values or {}, True)

    def _record(
        self,
        key: str,
        env: dict[str, Any],
        customer_id: str,
        channel: str,
        template: str,
        status: str,
        provider_id: str | None,
        error: str | None,
        values: dict[str, Any] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO notification.sends (dedupe_key, event_id, customer_id, channel, "
                    "template, status, provider_message_id, attempts, error, values, sent_at) "
                    "VALUES (:k, :e, :c, :ch, :t, :s, :pid, 1, :err, :v, "
                    "CASE WHEN :s = 'sent' THEN now() END) ON CONFLICT (dedupe_key) DO UPDATE "
                    "SET status = excluded.status, provider_message_id = "
                    "excluded.provider_message_id, attempts = notification.sends.attempts + 1, "
                    "error = excluded.error, sent_at = excluded.sent_at"
                ).bindparams(bindparam("v", type_=JSONB)),
                {
                    "k": key,
                    "e": env["event_id"],
                    "c": customer_id,
                    "ch": channel,
                    "t": template,
                    "s": status,
                    "pid": provider_id,
                    "err": error,
                    "v": values,
                },
            )


def _money(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "amount": f"{data['amount'] / 100:.2f}",
        "currency": str(data["currency"]).upper(),
        "payment_id": data["payment_id"],
    }
