"""`paywall housekeeping …` as the CronJobs run it: each deletes what it should, and
nothing else, on the session's Postgres (and auth's JWKS over HTTP)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from paywall.db import engine
from tests.conftest import Api

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def housekeeping(cli_env: dict[str, str], task: str) -> str:
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "paywall"), "housekeeping", task],
        env={**cli_env, "COLUMNS": "250"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def published_kids(api: Api) -> set[str]:
    return {key["kid"] for key in httpx.get(f"{api.url}/jwks.json").json()["keys"]}


def live_kids(db: Engine) -> list[str]:
    with db.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT kid FROM auth.signing_keys WHERE retired_at IS NULL "
                    "ORDER BY created_at, kid"
                )
            ).scalars()
        )


def age(db: Engine, kid: str, column: str, interval: str) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                f"UPDATE auth.signing_keys SET {column} = now() - CAST(:i AS interval) "
                "WHERE kid = :k"
            ),
            {"i": interval, "k": kid},
        )


def signing_kid(api: Api) -> str:
    """The kid of the key auth signs with now (a token's header says)."""
    import base64
    import json

    from tests.conftest import client_token, register_client

    client_id, secret = register_client(api.settings, "customers:read")
    token = client_token(api.url, client_id, secret, "customers:read")
    head = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])


def test_signing_keys_rotate_on_schedule_and_the_old_one_leaves_the_jwks_in_time(
    api: Api, cli_env: dict[str, str]
) -> None:
    db = engine(api.settings)
    first = signing_kid(api)
    with db.begin() as conn:  # start from one live key: earlier tests may have rotated
        conn.execute(
            text(
                "UPDATE auth.signing_keys SET retired_at = now() "
                "WHERE retired_at IS NULL AND kid <> :k"
            ),
            {"k": first},
        )
    age(db, first, "created_at", "10 days")
    assert "signs" in housekeeping(cli_env, "signing-keys")
    assert live_kids(db) == [first]  # young: nothing to do

    age(db, first, "created_at", "84 days")  # the successor is due 7 days before 90
    assert "published" in housekeeping(cli_env, "signing-keys")
    (_, successor) = live_kids(db)
    assert {first, successor} <= published_kids(api)  # published ahead ...
    assert signing_kid(api) == first  # ... while the old key still signs
    assert "published" in housekeeping(cli_env, "signing-keys")  # a rerun adds nothing
    assert live_kids(db) == [first, successor]

    age(db, successor, "created_at", "7 days")
    assert f"{successor} signs, {first} retired" in housekeeping(cli_env, "signing-keys")
    assert signing_kid(api) == successor
    assert first in published_kids(api)  # its tokens live 15 minutes more: still verifiable

    age(db, first, "retired_at", "16 minutes")  # KEY_RETENTION is 15 min + leeway + 60 s
    assert first in published_kids(api)
    age(db, first, "retired_at", "20 minutes")
    assert first not in published_kids(api)
    assert "forgot 1 expired key(s)" in housekeeping(cli_env, "signing-keys")
    with db.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM auth.signing_keys WHERE kid = :k"), {"k": first}
            ).scalar_one()
            == 0
        )
    assert successor in published_kids(api)


def test_expired_auth_rows_go_and_live_ones_stay(api: Api, cli_env: dict[str, str]) -> None:
    db = engine(api.settings)
    gone, kept = uuid.uuid4().hex, uuid.uuid4().hex
    with db.begin() as conn:
        for jti, expires in ((gone, "2 days"), (kept, "-1 hour")):
            conn.execute(
                text(
                    "INSERT INTO auth.revoked_tokens (jti, expires_at) "
                    "VALUES (:j, now() - CAST(:e AS interval))"
                ),
                {"j": jti, "e": expires},
            )
    assert "expired row(s)" in housekeeping(cli_env, "auth-tokens")
    with db.connect() as conn:
        left = set(conn.execute(text("SELECT jti FROM auth.revoked_tokens")).scalars())
    assert kept in left and gone not in left


def test_outbox_rows_published_long_ago_go_and_nothing_unpublished(
    api: Api, cli_env: dict[str, str]
) -> None:
    db = engine(api.settings)
    rows = {  # id -> published how long ago (None: not yet)
        uuid.uuid4(): "8 days",
        uuid.uuid4(): "6 days",
        uuid.uuid4(): None,
    }
    with db.begin() as conn:
        for event_id, published in rows.items():
            conn.execute(
                text(
                    "INSERT INTO customer.outbox (id, aggregate_type, aggregate_id, type, payload, "
                    "created_at, published_at) VALUES (:id, 'customer', 'c', 'customer.updated', "
                    "'{}', now() - interval '30 days', now() - CAST(:p AS interval))"
                ),
                {"id": event_id, "p": published},
            )
    out = housekeeping(cli_env, "outbox")
    assert "published over 7 days ago" in out
    with db.connect() as conn:
        left = set(
            conn.execute(
                text("SELECT id FROM customer.outbox WHERE id = ANY(:ids)"), {"ids": list(rows)}
            ).scalars()
        )
        old_published = conn.execute(
            text(
                "SELECT count(*) FROM customer.outbox "
                "WHERE published_at < now() - interval '7 days'"
            )
        ).scalar_one()
    assert left == {i for i, p in rows.items() if p != "8 days"}
    assert old_published == 0
    with db.begin() as conn:  # the unpublished one would be relayed by later tests
        conn.execute(text("DELETE FROM customer.outbox WHERE id = ANY(:ids)"), {"ids": list(rows)})


def test_expired_idempotency_keys_go_and_payment_keys_stay(
    api: Api, cli_env: dict[str, str]
) -> None:
    db = engine(api.settings)
    owner = f"hk-{uuid.uuid4().hex[:8]}"
    signups = {  # idempotency key -> (status, expired?)
        "finished-expired": ("completed", True),
        "failed-expired": ("failed", True),
        "running-expired": ("in_progress", True),  # may hold a charge to settle
        "finished-fresh": ("completed", False),
    }
    with db.begin() as conn:
        for key, (status, expired) in signups.items():
            conn.execute(
                text(
                    "INSERT INTO registration.registrations (id, owner, idempotency_key, "
                    "fingerprint, email, status, expires_at) VALUES (:id, :o, :k, 'f', "
                    "'a@example.com', :s, now() + CAST(:e AS interval))"
                ),
                {"id": uuid.uuid4(), "o": owner, "k": key, "s": status,
                 "e": "-1 hour" if expired else "23 hours"},
            )  # fmt: skip
        plan = conn.execute(text("SELECT id FROM subscription.plans LIMIT 1")).scalar_one()
        subscriptions = {}
        for created in ("25 hours", "1 hour"):
            sub_id = uuid.uuid4()
            conn.execute(
                text(
                    "INSERT INTO subscription.subscriptions (id, customer_id, plan_id, status, "
                    "current_period_start, current_period_end, request_key, "
                    "request_fingerprint, created_at) VALUES (:id, :c, :p, 'active', now(), "
                    "now() + interval '30 days', :k, 'f', now() - CAST(:a AS interval))"
                ),
                {"id": sub_id, "c": uuid.uuid4(), "p": plan, "k": f"{owner}:{created}",
                 "a": created},
            )  # fmt: skip
            subscriptions[created] = sub_id
        payment_keys = conn.execute(text("SELECT count(*) FROM payment.payments")).scalar_one()

    assert "finished signup(s) deleted" in housekeeping(cli_env, "idempotency-keys")
    with db.connect() as conn:
        left = set(
            conn.execute(
                text("SELECT idempotency_key FROM registration.registrations WHERE owner = :o"),
                {"o": owner},
            ).scalars()
        )
        keys = dict(
            conn.execute(
                text("SELECT id, request_key FROM subscription.subscriptions WHERE id = ANY(:ids)"),
                {"ids": list(subscriptions.values())},
            ).all()
        )
        assert conn.execute(text("SELECT count(*) FROM payment.payments")).scalar_one() >= (
            payment_keys
        )
    assert left == {"running-expired", "finished-fresh"}
    assert keys == {  # both subscriptions stay; only the old one's key is forgotten
        subscriptions["25 hours"]: None,
        subscriptions["1 hour"]: f"{owner}:1 hour",
    }


def test_old_webhook_events_and_logs_go_unless_still_being_delivered(
    api: Api, cli_env: dict[str, str]
) -> None:
    db = engine(api.settings)
    endpoint = uuid.uuid4()
    ages = {"old-done": "31 days", "old-pending": "31 days", "recent": "2 days"}
    events = {name: uuid.uuid4() for name in ages}
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhooks.endpoints (id, tenant_id, url, event_types, secret) "
                "VALUES (:id, :t, 'https://hooks.example.com/x', '{}', 'whsec_x')"
            ),
            {"id": endpoint, "t": f"hk-{uuid.uuid4().hex[:8]}"},
        )
        for name, event_id in events.items():
            age = {"a": ages[name]}
            conn.execute(
                text(
                    "INSERT INTO webhooks.events (event_id, tenant_id, type, occurred_at, "
                    "envelope, received_at) VALUES (:e, 't', 'customer.created', "
                    "now() - CAST(:a AS interval), '{}', now() - CAST(:a AS interval))"
                ),
                {"e": event_id, **age},
            )
            status = "pending" if name == "old-pending" else "delivered"
            delivery = conn.execute(
                text(
                    "INSERT INTO webhooks.deliveries (endpoint_id, event_id, ordering_key, "
                    "occurred_at, status, next_attempt_at, give_up_at, created_at) VALUES "
                    "(:p, :e, 'k', now(), :s, now(), now(), now() - CAST(:a AS interval)) "
                    "RETURNING id"
                ),
                {"p": endpoint, "e": event_id, "s": status, **age},
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO webhooks.attempts (delivery_id, endpoint_id, event_id, attempt, "
                    "duration_ms) VALUES (:d, :p, :e, 1, 5)"
                ),
                {"d": delivery, "p": endpoint, "e": event_id},
            )

    def kept() -> dict[str, int]:
        with db.connect() as conn:
            return {
                table: conn.execute(
                    text(f"SELECT count(*) FROM webhooks.{table} WHERE {column} = :p"),
                    {"p": endpoint},
                ).scalar_one()
                for table, column in (("deliveries", "endpoint_id"), ("attempts", "endpoint_id"))
            }

    assert kept() == {"deliveries": 3, "attempts": 3}
    assert "over 30 days old" in housekeeping(cli_env, "webhooks")
    with db.connect() as conn:
        left = set(
            conn.execute(
                text("SELECT event_id FROM webhooks.events WHERE event_id = ANY(:ids)"),
                {"ids": list(events.values())},
            ).scalars()
        )
    assert left == {events["old-pending"], events["recent"]}
    assert kept() == {"deliveries": 2, "attempts": 2}
    housekeeping(cli_env, "webhooks")  # a rerun takes nothing more of these
    assert kept() == {"deliveries": 2, "attempts": 2}
    with db.begin() as conn:  # a pending delivery would be tried by the webhook tests
        conn.execute(text("DELETE FROM webhooks.endpoints WHERE id = :p"), {"p": endpoint})
