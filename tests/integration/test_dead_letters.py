"""`paywall events dead-letters list|show|replay` on the real broker: a welcome email the
notification consumer parked while SendGrid was unreachable is replayed once it is back."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from paywall.clients import kafka_config
from paywall.db import engine
from paywall.stack.process import free_port
from streaming import dead_letters, relay
from streaming.admin import sync_topics
from streaming.consumers import notification
from streaming.topics import EVENT_TOPICS
from tests.conftest import Api
from tests.consuming import consume_until_idle, group_from_now
from tests.integration.test_signup import GOOD_CARD, register, signup_body

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def paywall(cli_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "paywall"), *args],
        cwd=REPO, env={**cli_env, "COLUMNS": "250"}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def welcomes(api: Api, email: str) -> int:
    resp = httpx.get(f"{api.settings.sendgrid_api_host}/_sink/messages", params={"to": email})
    return sum(m["subject"].startswith("Welcome") for m in resp.json())


def test_a_parked_welcome_is_listed_shown_and_replayed_once(
    api: Api, issue_token: Callable[..., str], cli_env: dict[str, str]
) -> None:
    sync_topics(api.settings)
    group = group_from_now(api.settings, "notification")
    token = issue_token("registrations:write", f"tenant-{uuid.uuid4().hex[:6]}")
    body = signup_body(api, GOOD_CARD)
    resp = register(api, token, body, str(uuid.uuid4()))
    assert resp.status_code == 201, resp.text
    registration_id = resp.json()["registration_id"]
    db = engine(api.settings)
    relay.drain(db, relay.make_producer(api.settings))
    # A poison message too: it can be listed, and replaying it fails again, saying why.
    poison = Producer(kafka_config(api.settings))
    poison.produce(EVENT_TOPICS["registration"].name, key=b"bad", value=b"{not json")
    assert poison.flush(10) == 0

    # SendGrid unreachable: every send fails, and after its retries the event is parked.
    down = api.settings.model_copy(update={"sendgrid_api_host": f"http://127.0.0.1:{free_port()}"})
    notifier = notification.Notifier(db, notification.Senders(down))
    consume_until_idle(down, "notification", notifier, group, backoff=0.01)
    assert welcomes(api, body["email"]) == 0

    # The listing names it (other tests' dead letters may be there too).
    listed = paywall(cli_env, "events", "dead-letters", "list", "notification",
                     "--event-type", "registration.completed", "--reason", "gave up")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    wanted = dead_letters.Filters(event_type="registration.completed")
    (parked,) = [
        letter
        for letter in dead_letters.read(api.settings, "notification", wanted)
        if (letter.envelope or {}).get("key") == registration_id
    ]
    event_id = parked.event_id
    assert event_id in listed.stdout
    shown = paywall(cli_env, "events", "dead-letters", "show", "notification", str(parked.offset))
    assert shown.returncode == 0, shown.stderr
    assert "reason: gave up after 3 attempts" in shown.stdout
    assert registration_id in shown.stdout and f"header event_id: {event_id}" in shown.stdout

    for _ in range(2):  # a second replay sends nothing more: the ledger dedupes by event id
        replayed = paywall(cli_env, "events", "dead-letters", "replay", "notification",
                           "--event-id", event_id)  # fmt: skip
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1 of 1 dead letter(s)" in replayed.stdout
        assert welcomes(api, body["email"]) == 1

    poisoned = paywall(cli_env, "events", "dead-letters", "replay", "notification",
                       "--reason", "poison")  # fmt: skip
    assert poisoned.returncode == 1
    assert "still failing: ContractError" in poisoned.stderr


def test_replay_without_a_choice_and_bad_filters_are_one_line(cli_env: dict[str, str]) -> None:
    for args, message in [
        (("replay", "notification"), "error: replay: name what to replay"),
        (("list", "billing"), "error: consumer: unknown consumer 'billing'"),
        (("list", "audit", "--since", "yesterday"), "error: --since: 'yesterday' is not"),
    ]:
        done = paywall(cli_env, "events", "dead-letters", *args)
        assert done.returncode == 2, done.stdout
        assert done.stderr.strip().startswith(message), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
