"""Notification consumer: welcome email/SMS, receipts and payment-failed notices.

Contact details come from customer events into this service's own `recipients` table
(no reads of the customer service's tables), newest event wins: customer and registration
events come on different topics, and a repair (streaming/completeness.py) resends an old
event late. Each notice goes through the notification toolkit (streaming/notifications):
rendered from its templates, sent with its senders, and recorded in its ledger under a
dedupe key with the provider's message id, so a redelivered event sends nothing twice. A
failed payment's notice is keyed by the payment, as the billing batch's dunning notice of
that payment is: the customer hears of a failed charge once, from whichever path is first.
SMS goes only to customers who opted in; erased customers get nothing.

Version 2 events carry the contact details sealed (paywall/privacy.py): they are opened
here with the customer's key, and an erased customer's key is gone, so a late or replayed
event of theirs holds nothing to remember. `customer.erased` clears the recipient and the
addresses and values in the sent-message log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from paywall import privacy
from paywall.logs import get_logger
from streaming.consumers.runner import Delivery, Retryable
from streaming.notifications import ledger
from streaming.notifications.senders import Email, ProviderError, Senders
from streaming.notifications.templates import render, with_links

log = get_logger(__name__)


class Notifier:
    def __init__(self, engine: Engine, senders: Senders) -> None:
        self.engine = engine
        self.senders = senders

    def __call__(self, delivery: Delivery) -> None:
        env = delivery.envelope
        kind = env["event_type"]
        data: dict[str, Any] = env["data"]
        if "sealed" in data:
            with self.engine.connect() as conn:
                data = privacy.unseal(conn, str(data["customer_id"]), data)
        event_id = str(env["event_id"])
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
            for channel in ("email", "sms"):
                key = ledger.event_key(event_id, channel, "welcome")
                self._send(key, event_id, data["customer_id"], channel, "welcome", values)
        elif kind == "payment.succeeded":
            key = ledger.event_key(event_id, "email", "receipt")
            self._send(key, event_id, data["customer_id"], "email", "receipt", _money(data))
        elif kind == "payment.failed":
            reason = data.get("decline_code") or data.get("failure_code") or "declined"
            customer_id = data["customer_id"]
            key = ledger.notice_key(customer_id, "payment_failed", data["payment_id"], "email")
            values = {**_money(data), "reason": reason}
            self._send(key, event_id, customer_id, "email", "payment_failed", values)

    def _remember(self, data: dict[str, Any], as_of: str) -> None:
        """Keep the customer's details, unless newer ones (by event time) are already kept."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO notification.recipients (customer_id, tenant_id, email, phone, "
                    "name, sms_opt_in, as_of) VALUES (:c, :t, :e, :p, :n, :o, :a) ON CONFLICT "
                    "(customer_id) DO UPDATE SET email = excluded.email, phone = excluded.phone, "
                    "name = excluded.name, sms_opt_in = excluded.sms_opt_in, "
                    "tenant_id = coalesce(excluded.tenant_id, notification.recipients.tenant_id), "
                    "as_of = excluded.as_of, updated_at = now() "
                    "WHERE NOT notification.recipients.erased AND (notification.recipients.as_of "
                    "IS NULL OR notification.recipients.as_of <= excluded.as_of)"
                ),
                {
                    "c": data["customer_id"],
                    "t": data.get("tenant_id"),
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
            # The log keeps what was sent and when, not to whom or with what in it.
            conn.execute(
                text(
                    "UPDATE notification.sends SET values = NULL, error = NULL "
                    "WHERE customer_id = :c AND (values IS NOT NULL OR error IS NOT NULL)"
                ),
                {"c": customer_id},
            )

    def _send(
        self,
        key: str,
        event_id: str,
        customer_id: str,
        channel: str,
        template: str,
        values: dict[str, Any],
        releasing: bool = False,
    ) -> None:
        with self.engine.begin() as conn:
            found = ledger.find(conn, key)
            if found is not None and (
                found.status in ledger.DONE
                or found.due_on is not None  # the batch claimed it: the batch sends it
                or (found.status == "waiting" and not releasing)
            ):
                return
            who = conn.execute(
                text(
                    "SELECT email, phone, name, sms_opt_in, erased, tenant_id "
                    "FROM notification.recipients "
                    "WHERE customer_id = :c"
                ),
                {"c": customer_id},
            ).first()
        step: dict[str, Any] = {
            "event_id": event_id,
            "customer_id": customer_id,
            "channel": channel,
            "template": template,
        }
        if who is None:
            # The customer's own event is on another topic and may arrive later: park the
            # send; remembering the customer releases it.
            ledger.record(self.engine, key, status="waiting", values=values, **step)
            return
        address = who.email if channel == "email" else who.phone
        if who.erased or not address or (channel == "sms" and not who.sms_opt_in):
            ledger.record(self.engine, key, status="skipped", **step)
            return
        ledger.record(self.engine, key, status="pending", **step)
        linked = with_links(template, customer_id, who.tenant_id, values)
        message = render(template, channel, {"name": who.name or "there", **linked})
        try:
            provider_id = (
                self.senders.email([Email(address, message.subject, message.body, key)])
                if channel == "email"
                else self.senders.sms(address, message.body)
            )
        except ProviderError as exc:
            if exc.retryable:
                raise Retryable(str(exc)) from exc
            ledger.record(self.engine, key, status="failed", error=str(exc), **step)
            log.warning("notification.rejected", channel=channel, error=str(exc)[:200])
            return
        ledger.record(self.engine, key, status="sent", provider_id=provider_id, **step)

    def _release_waiting(self, customer_id: str) -> None:
        with self.engine.connect() as conn:
            parked = ledger.waiting(conn, customer_id)
        for row in parked:
            self._send(
                row.dedupe_key,
                row.event_id,
                customer_id,
                row.channel,
                row.template,
                row.values or {},
                releasing=True,
            )


def _money(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "amount": f"{data['amount'] / 100:.2f}",
        "currency": str(data["currency"]).upper(),
        "payment_id": data["payment_id"],
    }
