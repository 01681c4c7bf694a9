"""notification.sends: the one dedupe table of every notice, real-time or batched.

A row's `dedupe_key` names the notice, not an attempt:

* `<event_id>:<channel>:<template>`: what one event causes (a welcome, a payment's receipt);
* `<customer_id>:<reason>:<period>:<channel>`: a notice about a thing both paths may
  hear of, such as a failed payment (`payment_failed`, the payment's id) or a day's batch
  notice (a trial ending, a month's receipt).

The batch claims its rows first (status `pending`, `due_on` its day) and sends them; the
consumer records its rows as it goes (`waiting` for a recipient, `pending`, then the end
state). A key already there is never sent again by the other path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

DONE = ("sent", "skipped", "failed")


def event_key(event_id: str, channel: str, template: str) -> str:
    return f"{event_id}:{channel}:{template}"


def notice_key(customer_id: str, reason: str, period: str, channel: str) -> str:
    return f"{customer_id}:{reason}:{period}:{channel}"


def find(conn: Connection, key: str) -> Row[Any] | None:
    """The notice's status, and its `due_on` when a batch claimed it."""
    return conn.execute(
        text("SELECT status, due_on FROM notification.sends WHERE dedupe_key = :k"), {"k": key}
    ).first()


def record(
    engine: Engine,
    key: str,
    *,
    event_id: str | None,
    customer_id: str,
    channel: str,
    template: str,
    status: str,
    provider_id: str | None = None,
    error: str | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """The consumer's step: insert the notice, or move it to `status`."""
    with engine.begin() as conn:
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
                "e": event_id,
                "c": customer_id,
                "ch": channel,
                "t": template,
                "s": status,
                "pid": provider_id,
                "err": error,
                "v": values,
            },
        )


def waiting(conn: Connection, customer_id: str) -> Sequence[Row[Any]]:
    """The consumer's notices parked until the customer's details arrive."""
    return conn.execute(
        text(
            "SELECT dedupe_key, event_id, channel, template, values FROM notification.sends "
            "WHERE customer_id = :c AND status = 'waiting' ORDER BY id"
        ),
        {"c": customer_id},
    ).all()


def claim(
    conn: Connection,
    key: str,
    customer_id: str,
    channel: str,
    template: str,
    due_on: date,
    values: dict[str, Any],
) -> bool:
    """The batch's step: the notice is this batch's to send, unless its key exists."""
    claimed: int = conn.execute(
        text(
            "INSERT INTO notification.sends (dedupe_key, customer_id, channel, template, "
            "status, due_on, values) VALUES (:k, :c, :ch, :t, 'pending', :d, :v) "
            "ON CONFLICT (dedupe_key) DO NOTHING"
        ).bindparams(bindparam("v", type_=JSONB)),
        {"k": key, "c": customer_id, "ch": channel, "t": template, "d": due_on, "v": values},
    ).rowcount
    return claimed == 1


def due(conn: Connection, day: date) -> Sequence[Row[Any]]:
    """Batch notices due by `day` and not sent yet, with what is known of each recipient
    (`known` is null while the customer's own event has not reached us)."""
    return conn.execute(
        text(
            "SELECT s.id, s.dedupe_key, s.customer_id, s.template, s.channel, s.values, "
            "r.customer_id AS known, r.email, r.phone, r.name, r.sms_opt_in, r.erased, "
            "r.tenant_id "
            "FROM notification.sends s LEFT JOIN notification.recipients r "
            "ON r.customer_id = s.customer_id WHERE s.status = 'pending' "
            "AND s.due_on <= :d ORDER BY s.id"
        ),
        {"d": day},
    ).all()


def mark(
    engine: Engine,
    ids: Sequence[int],
    status: str,
    provider_id: str | None = None,
    error: str | None = None,
) -> None:
    """The batch's outcome for claimed notices still pending."""
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE notification.sends SET status = :s, provider_message_id = :p, "
                "error = :e, attempts = attempts + CASE WHEN :s = 'skipped' THEN 0 ELSE 1 END, "
                "sent_at = CASE WHEN :s = 'sent' THEN now() END "
                "WHERE id = ANY(:ids) AND status = 'pending'"
            ),
            {"s": status, "p": provider_id, "e": error, "ids": list(ids)},
        )
