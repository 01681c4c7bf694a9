"""Redis restarted or down: revoked access tokens stay revoked at every service.

The local Redis keeps nothing across a restart, so each fault leaves Redis without the
revocations. `paywall serve` runs as its own process; the customer service's list
endpoint stands for "a service other than auth".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from joserfc import jws
from sqlalchemy import text

from paywall.db import engine
from paywall.settings import Settings
from paywall.stack.local import LocalStack
from paywall.stack.process import wait_until
from tests.conftest import register_client
from tests.faults.conftest import ServedApi
from transactional.common import revocations

pytestmark = pytest.mark.integration


@pytest.fixture
def http(served_api: Callable[..., ServedApi]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served_api().url, timeout=30) as client:
        yield client


def test_revoked_tokens_stay_revoked_when_redis_restarts_or_is_down(
    local_stack: LocalStack, settings: Settings, http: httpx.Client
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    client_id, secret = register_client(settings, "customers:read", tenant, "partner")

    def token() -> str:
        got = http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
        assert got.status_code == 200, got.text
        return str(got.json()["access_token"])

    def revoke(access: str) -> None:
        done = http.post("/oauth/revoke", data={"token": access}, auth=(client_id, secret))
        assert done.status_code == 200, done.text

    def customers(access: str) -> int:
        return http.get("/v1/customers", headers={"Authorization": f"Bearer {access}"}).status_code

    live, before, during = token(), token(), token()
    assert customers(live) == customers(before) == customers(during) == 200
    revoke(before)
    assert customers(before) == 401
    with engine(settings).begin() as conn:  # revoked long before the restart
        conn.execute(
            text(
                "UPDATE auth.revoked_tokens SET created_at = now() - interval '10 minutes' "
                "WHERE jti = :jti"
            ),
            {"jti": _jti(before)},
        )

    local_stack.restart("redis")  # comes back empty
    assert customers(before) == 401
    assert customers(live) == 200

    local_stack.stop("redis")
    try:
        revoke(during)  # recorded by auth, announced to no one
        assert customers(during) == 401
        assert customers(before) == 401
        assert customers(live) == 200
    finally:
        local_stack.start("redis")
    assert customers(during) == 401
    assert customers(before) == 401
    assert customers(live) == 200

    # Both are in auth's record, and auth's sync put both back into the empty Redis.
    with engine(settings).connect() as conn:
        recorded = conn.execute(
            text("SELECT count(*) FROM auth.revoked_tokens WHERE jti = ANY(:jtis)"),
            {"jtis": [_jti(t) for t in (before, during, live)]},
        ).scalar_one()
    assert recorded == 2
    store = redis.Redis.from_url(str(settings.redis_url))
    wait_until(lambda: store.exists(revocations.WATERMARK_KEY) == 1, "the watermark", timeout=15)
    assert store.exists(*(revocations._key(_jti(t)) for t in (before, during))) == 2
    assert customers(during) == customers(before) == 401
    assert customers(live) == 200


def _jti(token: str) -> str:
    return str(json.loads(jws.extract_compact(token.encode()).payload)["jti"])
