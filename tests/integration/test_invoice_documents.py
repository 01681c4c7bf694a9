"""An invoice beyond the API's JSON: its events through the outbox relay into Kafka, and
the document a customer keeps (an HTML page and a PDF from one template), on the real stack."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.consuming import group_from_now
from tests.integration.test_invoices import PARTNER, PROBLEMS, signup, sql, upgrade

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def partner(issue_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(PARTNER, f'tenant-{uuid.uuid4().hex[:8]}')}"}


# -- events ------------------------------------------------------------------------------------


def test_invoice_events_reach_kafka_through_the_outbox_relay(
    api: Api, partner: dict[str, str]
) -> None:
    from confluent_kafka import Consumer

    from paywall.clients import kafka_config
    from paywall.db import engine
    from streaming import relay
    from streaming.admin import sync_topics
    from streaming.topics import EVENT_TOPICS

    sync_topics(api.settings)
    group = group_from_now(api.settings, "test", [EVENT_TOPICS["billing"].name])
    reg = signup(api, partner)
    ok = upgrade(api, partner, reg["subscription_id"], "pro-monthly", str(uuid.uuid4()))
    assert ok.status_code == 200, ok.text
    invoice_id = ok.json()["proration"]["invoice_id"]

    producer = relay.make_producer(api.settings)
    while relay.publish_batch(engine(api.settings), producer, "billing"):
        pass
    left = sql(api, "SELECT count(*) FROM billing.outbox WHERE published_at IS NULL")
    assert left == [(0,)]

    consumer = Consumer(
        kafka_config(api.settings, **{"group.id": group, "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([EVENT_TOPICS["billing"].name])
    seen: list[dict[str, Any]] = []
    idle = 0
    try:
        while idle < 6:
            message = consumer.poll(0.5)
            if message is None or message.error():
                idle = idle + 1 if consumer.assignment() else 0
                continue
            idle = 0
            if message.key() == invoice_id.encode():
                seen.append(json.loads(message.value()))
    finally:
        consumer.close()
    assert [e["event_type"] for e in seen] == [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
    ]
    paid = seen[-1]["data"]
    assert (paid["status"], paid["amount_due"]) == ("paid", 0)
    assert paid["amount_paid"] == paid["total"] == ok.json()["proration"]["amount_due"]


# -- the invoice as a document -----------------------------------------------------------------


def pdf_text(data: bytes) -> bytes:
    """What a PDF's pages draw: its compressed content streams, inflated."""
    import re
    import zlib

    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S)
    return b"".join(zlib.decompress(s) for s in streams)


def test_an_invoice_is_a_page_and_a_pdf_from_one_template_for_its_owner_only(
    api: Api, partner: dict[str, str], issue_token: Callable[..., str]
) -> None:
    reg = signup(api, partner)
    ok = upgrade(api, partner, reg["subscription_id"], "pro-monthly", str(uuid.uuid4()))
    assert ok.status_code == 200, ok.text
    proration = ok.json()["proration"]
    base = f"{api.url}/v1/invoices/{proration['invoice_id']}"
    due = f"{proration['amount_due'] // 100}.{proration['amount_due'] % 100:02d} USD"
    credit = f"-{proration['credit'] // 100}.{proration['credit'] % 100:02d} USD"

    page = httpx.get(f"{base}.html", headers=partner)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert proration["invoice_id"] in page.text and due in page.text and credit in page.text
    assert "Unused time on basic-monthly" in page.text and "PAID" in page.text

    document = httpx.get(f"{base}.pdf", headers=partner)
    assert document.status_code == 200, document.text
    assert document.headers["content-type"] == "application/pdf"
    assert document.content.startswith(b"%PDF-")
    drawn = pdf_text(document.content)
    for text in (proration["invoice_id"], due, credit, "Remaining time on pro-monthly"):
        assert text.encode() in drawn, text

    other = {"Authorization": f"Bearer {issue_token(PARTNER, f'tenant-{uuid.uuid4().hex[:8]}')}"}
    for suffix in (".html", ".pdf"):
        hidden = httpx.get(f"{base}{suffix}", headers=other)
        assert hidden.status_code == 404
        assert hidden.json()["type"] == f"{PROBLEMS}/not-found"
