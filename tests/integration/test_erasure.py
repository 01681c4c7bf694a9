"""GDPR erasure reaches every store, on the real stack.

A signup with email and phone (a first charge, a welcome email and SMS, a receipt) goes
through the relay to Kafka, the notification and audit consumers (audit forwarded to the
Datadog stand-in), the Spark lake stream, the S3 audit archive and the warehouse; then the
customer is erased and the erasure consumer runs. Every store is then searched for the
email and the phone in clear text: Postgres (every text and JSON column of every schema),
every Kafka topic from the earliest offset, every lake object, the audit archive, what
Datadog received, the DuckDB warehouse; the Stripe customer is gone and the audit chain
still verifies.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from dagster import DagsterInstance, materialize
from pydantic import SecretStr
from sqlalchemy import text

from assets.audit_archive import archive
from assets.shared.resources import Lake
from assets.warehouse.assets import lake_partitions, partition_key, raw_events
from assets.warehouse.dbt import dbt_resource, paywall_dbt
from assets.warehouse.lake import list_lake_partitions
from assets.warehouse.resources import WarehouseResource
from paywall import clients
from paywall.db import engine
from paywall.settings import Settings
from paywall.stack import datadog_intake
from streaming import relay
from streaming.admin import sync_topics
from streaming.consumers import audit, notification
from streaming.consumers.datadog import DatadogForwarder
from streaming.lake.job import run_lake_stream
from tests.conftest import Api
from tests.consuming import consume_until_idle, group_from_now, lake_start
from tests.integration import erasure_scan as scan
from tests.integration.test_auth import PASSWORD, _code_flow, _login, _tenant_client
from tests.integration.test_signup import GOOD_CARD, register, signup_body
from transactional import erasure
from transactional.auth.users import authenticate_user, find_user
from transactional.payment.stripe_gateway import stripe_gateway

# The whole flow (two Spark runs, a dbt build) is set up once, in the first test: more than
# the default 600 s on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@dataclass
class Erased:
    settings: Settings
    customer_id: str
    tenant: str
    email: str
    phone: str
    stripe_customer_id: str
    lake_bucket: str
    archive_bucket: str
    warehouse: Path
    datadog_logs: list[dict[str, Any]]
    postgres_before: list[str]
    login_client: str
    login: dict[str, Any]  # the tokens the customer's login got before the erasure

    @property
    def needles(self) -> list[str]:
        """The email and phone (also without its "+": a store may keep digits), and the
        customer's id, which every store must hold: a search that misses it saw nothing."""
        return [self.email, self.phone, self.phone.lstrip("+"), self.customer_id]


def sink_messages(host: str | None, to: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{host}/_sink/messages", params={"to": to}, timeout=10).json())


def load_warehouse(settings: Settings) -> None:
    """Every lake partition into raw.events, then dbt builds the marts (as Dagster runs)."""
    resources = {
        "lake": Lake(settings),
        "warehouse": WarehouseResource(settings),
        "dbt": dbt_resource(settings),
    }
    keys = sorted(partition_key(p) for p in list_lake_partitions(settings))
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(lake_partitions.name or "", keys)
        for key in keys:
            materialize([raw_events], partition_key=key, instance=instance, resources=resources)
        built = materialize([paywall_dbt()], instance=instance, resources=resources)
        assert built.success


@pytest.fixture(scope="module")
def erased(
    api: Api, issue_token: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Erased]:
    tmp = tmp_path_factory.mktemp("erasure")
    suffix = uuid.uuid4().hex[:8]
    with datadog_intake.serve() as (dd_url, intake):
        settings = api.settings.model_copy(
            update={
                "datadog_api_key": SecretStr("dd-test-key"),
                "datadog_logs_url": dd_url,
                "lake_bucket": f"lake-erasure-{suffix}",
                "warehouse_path": tmp / "warehouse.duckdb",
            }
        )
        clients.ensure_bucket(settings, settings.lake_bucket)
        archive_bucket = f"audit-erasure-{suffix}"
        clients.ensure_bucket(settings, archive_bucket)
        sync_topics(settings)
        groups = {n: group_from_now(settings, n) for n in ("notification", "audit", "erasure")}
        start = lake_start(settings)  # the lake holds this flow's events, not the session's
        db = engine(settings)

        # The flow: a paid signup with email and phone (SMS opted in).
        tenant = f"tenant-{suffix}"
        phone = f"+4477009{random.randint(10000, 99999)}"
        body = signup_body(api, GOOD_CARD, phone=phone, marketing_opt_in=True, password=PASSWORD)
        token = issue_token("registrations:write customers:write", tenant)
        resp = register(api, token, body, str(uuid.uuid4()))
        assert resp.status_code == 201, resp.text
        customer_id = resp.json()["customer_id"]
        with db.connect() as conn:
            stripe_id = conn.execute(
                text("SELECT stripe_customer_id FROM payment.accounts WHERE customer_id = :c"),
                {"c": customer_id},
            ).scalar_one()

        assert relay.drain(db, relay.make_producer(settings)) > 0
        notifier = notification.Notifier(db, notification.Senders(settings))
        auditor = audit.AuditHandler(db, DatadogForwarder(db, settings, backoff=0.01))
        consume_until_idle(settings, "notification", notifier, groups["notification"])
        consume_until_idle(settings, "audit", auditor, groups["audit"])
        sent = sink_messages(settings.sendgrid_api_host, body["email"])
        assert sorted(m["subject"] for m in sent) == [
            "Welcome to Paywall, Ada Lovelace",
            "Your Paywall receipt",
        ]
        assert sink_messages(settings.sendgrid_api_host, phone)  # the welcome SMS (one sink)
        run_lake_stream(
            settings, available_now=True, checkpoint=tmp / "lake", starting_offsets=start
        )
        archive.archive(db, clients.s3_client(settings), archive_bucket, datetime.now(UTC).date())

        before = scan.postgres(db, [body["email"], phone])
        # The customer logs in (authorization code + PKCE): tokens the erasure must revoke.
        with db.connect() as conn:
            user = find_user(conn, body["email"], tenant)
        assert user is not None
        spa = _tenant_client(db, tenant)
        with httpx.Client(base_url=api.url, timeout=30) as http:
            login = _code_flow(http, spa, user, "openid")
            bearer = {"Authorization": f"Bearer {login['access_token']}"}
            assert http.get("/userinfo", headers=bearer).status_code == 200

        # Erase, then the events it causes: relayed, and each consumer honours it.
        erased = httpx.post(
            f"{api.url}/v1/customers/{customer_id}/erase",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert erased.status_code == 200, erased.text
        assert relay.drain(db, relay.make_producer(settings)) > 0
        eraser = erasure.Eraser(db, stripe_gateway(settings))
        consume_until_idle(settings, "erasure", eraser, groups["erasure"])
        consume_until_idle(settings, "notification", notifier, groups["notification"])
        consume_until_idle(settings, "audit", auditor, groups["audit"])
        auditor.idle()  # whatever Datadog still lacks
        run_lake_stream(
            settings, available_now=True, checkpoint=tmp / "lake", starting_offsets=start
        )
        archive.archive(db, clients.s3_client(settings), archive_bucket, datetime.now(UTC).date())
        load_warehouse(settings)
        yield Erased(
            settings,
            customer_id,
            tenant,
            body["email"],
            phone,
            stripe_id,
            settings.lake_bucket,
            archive_bucket,
            tmp / "warehouse.duckdb",
            list(intake.logs),
            before,
            spa,
            login,
        )


def test_postgres_and_redis_hold_no_clear_text_email_or_phone(erased: Erased) -> None:
    # Where they were before the erasure: the scan finds them where they are.
    assert {
        f"customer.customers.email: {erased.email}",
        f"customer.customers.phone: {erased.phone}",
        f"auth.users.email: {erased.email}",
        f"notification.recipients.email: {erased.email}",
        f"notification.recipients.phone: {erased.phone}",
        f"registration.registrations.email: {erased.email}",
    } <= set(erased.postgres_before), erased.postgres_before
    found = scan.postgres(engine(erased.settings), erased.needles)
    assert scan.only(found, erased.customer_id) == []
    assert scan.redis(erased.settings, erased.needles[:-1]) == []


def test_no_kafka_topic_holds_them(erased: Erased) -> None:
    found = scan.kafka(erased.settings, erased.needles)
    assert scan.only(found, erased.customer_id) == []


def test_the_lake_holds_no_clear_text_and_the_warehouse_shows_the_customer_erased(
    erased: Erased,
) -> None:
    found = scan.bucket(erased.settings, erased.lake_bucket, erased.needles)
    assert scan.only(found, erased.customer_id) == []
    found = scan.warehouse(erased.warehouse, erased.needles)
    assert scan.only(found, erased.customer_id) == []
    import duckdb

    with duckdb.connect(str(erased.warehouse), read_only=True) as con:
        row = con.execute(
            "SELECT customer_status, email_hash, phone_hash FROM marts.dim_customers "
            "WHERE customer_id = ?",
            [erased.customer_id],
        ).fetchone()
    assert row == ("erased", None, None)


def test_the_audit_archive_and_datadog_hold_no_clear_text_and_the_chain_verifies(
    erased: Erased,
) -> None:
    found = scan.bucket(erased.settings, erased.archive_bucket, erased.needles)
    assert scan.only(found, erased.customer_id) == []
    found = scan.datadog(erased.datadog_logs, erased.needles)
    assert scan.only(found, erased.customer_id) == []
    assert audit.verify(engine(erased.settings)).ok


def test_the_stripe_customer_is_deleted(erased: Erased) -> None:
    client = clients.stripe_client(erased.settings)
    try:
        found = client.v1.customers.retrieve(erased.stripe_customer_id)
    except stripe.InvalidRequestError as exc:
        assert exc.http_status == 404
    else:
        assert found.get("deleted") is True


def test_the_login_is_gone_and_its_tokens_revoked(erased: Erased, api: Api) -> None:
    with engine(erased.settings).begin() as conn:
        assert authenticate_user(conn, erased.email, PASSWORD, erased.tenant) is None
        users = conn.execute(
            text("SELECT email FROM auth.users WHERE customer_id = :c"), {"c": erased.customer_id}
        ).scalars()
        assert all(e.startswith("erased+") and e.endswith("@invalid") for e in users)
    bearer = {"Authorization": f"Bearer {erased.login['access_token']}"}
    with httpx.Client(base_url=api.url, timeout=30) as http:
        assert http.get("/userinfo", headers=bearer).status_code == 401
        refreshed = http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": erased.login["refresh_token"],
                "client_id": erased.login_client,
            },
        )
        assert refreshed.status_code == 400, refreshed.text
        query = {
            "response_type": "code",
            "client_id": erased.login_client,
            "redirect_uri": "http://127.0.0.1:9/callback",
            "scope": "openid",
            "state": "s1",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
        url = str(httpx.URL("/oauth/authorize", params=query))
        assert _login(http, url, erased.email, PASSWORD).status_code != 302  # no code
