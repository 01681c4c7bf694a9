"""Migration 0014_notifications on a database of its own: the batches' ledger rows move from
billing.notification_sends into notification.sends under the keys they were sent with (so a
re-run sends none of them again), beside the consumer's rows, and move back on downgrade."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest
from alembic import command

from paywall.db import alembic_config, upgrade
from paywall.settings import Settings

pytestmark = pytest.mark.integration

BATCH_ROWS = [  # customer, reason, period, channel, batch day, status, provider id
    ("c1", "receipt", "2026-07:usd", "email", date(2026, 8, 1), "sent", "msg-1"),
    ("c2", "dunning", "inv-2#1", "email", date(2026, 8, 2), "pending", None),
    ("c3", "trial_ending", "2026-08-13", "sms", date(2026, 8, 10), "skipped", None),
]


@pytest.fixture
def database(scratch_database: Settings) -> Settings:
    return scratch_database


def rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(query).fetchall()


def test_the_batch_ledger_moves_into_the_notification_schema_and_back(
    database: Settings,
) -> None:
    upgrade(database, "0012_events")  # the notification schema's branch, before 0014
    upgrade(database, "0008_billing")
    assert database.database_url
    with psycopg.connect(database.database_url) as conn:
        for customer, reason, period, channel, day, status, provider_id in BATCH_ROWS:
            conn.execute(
                "INSERT INTO billing.notification_sends (customer_id, reason, period, channel, "
                "batch_date, status, provider_message_id, values) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, '{}'::jsonb)",
                (customer, reason, period, channel, day, status, provider_id),
            )
        conn.execute(
            "INSERT INTO notification.sends (dedupe_key, event_id, customer_id, channel, "
            "template, status, attempts) VALUES ('e1:email:welcome', 'e1', 'c1', 'email', "
            "'welcome', 'sent', 1)"
        )

    upgrade(database, "0014_notifications")
    moved = rows(
        database,
        "SELECT dedupe_key, template, status, provider_message_id, due_on "
        "FROM notification.sends ORDER BY dedupe_key",
    )
    assert moved == [
        ("c1:receipt:2026-07:usd:email", "monthly_receipt", "sent", "msg-1", date(2026, 8, 1)),
        ("c2:dunning:inv-2#1:email", "dunning", "pending", None, date(2026, 8, 2)),
        ("c3:trial_ending:2026-08-13:sms", "trial_ending", "skipped", None, date(2026, 8, 10)),
        ("e1:email:welcome", "welcome", "sent", None, None),
    ]
    assert rows(database, "SELECT to_regclass('billing.notification_sends')") == [(None,)]

    command.downgrade(alembic_config(database), "0012_events")
    back = rows(
        database,
        "SELECT customer_id, reason, period, channel, batch_date, status, provider_message_id "
        "FROM billing.notification_sends ORDER BY customer_id",
    )
    assert back == BATCH_ROWS
    assert rows(database, "SELECT dedupe_key FROM notification.sends") == [("e1:email:welcome",)]
