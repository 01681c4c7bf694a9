"""A service's own token refused downstream (revoked, or signed by a key retired early)
does not stop its calls: the client asks auth for a fresh token once and goes on."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from paywall.service_client import ServiceClient, TokenSource
from tests.conftest import Api, register_client


def test_a_refused_token_is_renewed_once_and_the_call_goes_through(api: Api) -> None:
    client_id, secret = register_client(api.settings, "customers:read", tenant_id="tenant-renew")
    tokens = TokenSource(api.settings, "customers:read", client_id, SecretStr(secret))
    customers = ServiceClient("customer", api.settings, tokens)
    assert customers.call("GET", "/v1/customers?limit=1")[0] == 200

    stale = tokens.token()
    revoked = httpx.post(
        f"{api.url}/oauth/revoke",
        data={"token": stale, "token_type_hint": "access_token"},
        auth=(client_id, secret),
        timeout=30,
    )
    assert revoked.status_code == 200
    denied = httpx.get(
        f"{api.url}/v1/customers?limit=1", headers={"Authorization": f"Bearer {stale}"}
    )
    assert denied.status_code == 401

    status, _ = customers.call("GET", "/v1/customers?limit=1")
    assert status == 200
    assert tokens.token() != stale
