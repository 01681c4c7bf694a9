"""Schemathesis against the services' OpenAPI, with every check, as a partner and as a user.

`--checks all` holds the API to its own document: no 5xx, the documented status codes,
content types, headers and bodies, invalid input refused and valid input accepted,
required headers enforced, 405 with a complete `Allow`, auth enforced, and created
resources readable. It runs twice: with a partner's token (client credentials, every
partner scope, a tenant) and with a user's token (authorization code + PKCE). Every
operation is tested, from the whole document (/internal/openapi.json), the operator ones
(scopes `internal`, `operations`, `admin`) included: neither token holds those, so they
must answer 401/403 and nothing else. What a document cannot say
(which plan ids exist, a cursor the API never issued) is in fuzz_hooks.py, one rule each.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from paywall.db import engine
from tests.conftest import REPO, Api
from transactional.auth.clients import create_client
from transactional.auth.users import create_user

pytestmark = pytest.mark.integration

PARTNER_SCOPES = (
    "registrations:write customers:read customers:write subscriptions:read "
    "subscriptions:write payments:read payments:write webhooks:read webhooks:write events:read "
    "coupons:read coupons:write tax_rates:read tax_rates:write plans:write"
)
USER_SCOPES = "openid email customers:read subscriptions:read"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never fetched: the Location is read


def _user_token(api: Api, partner: str) -> str:
    """A signed-up person's token: a customer of the partner's tenant, then code + PKCE."""
    with httpx.Client(base_url=api.url, timeout=30) as http:
        created = http.post(
            "/v1/customers",
            json={"email": f"fuzz-{uuid.uuid4().hex[:8]}@example.com", "name": "Fuzz"},
            headers={"Authorization": f"Bearer {partner}"},
        )
        assert created.status_code == 201, created.text
        customer = created.json()
        password = secrets.token_urlsafe(16)
        client_id = f"spa-{uuid.uuid4().hex[:8]}"
        with engine(api.settings).begin() as conn:
            create_user(
                conn,
                customer["email"],
                password,
                customer_id=customer["id"],
                tenant_id=customer["tenant_id"],
            )
            # The tenant's own web client: users log in through their tenant's clients.
            create_client(
                conn, client_id, redirect_uris=[REDIRECT_URI], tenant_id=customer["tenant_id"]
            )
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": USER_SCOPES,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        page = http.get("/oauth/authorize", params=query)
        assert page.status_code == 200, page.text
        hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
        form = {name: html.unescape(value) for name, value in hidden}
        login = http.post(
            "/oauth/authorize", data={**form, "email": customer["email"], "password": password}
        )
        assert login.status_code == 302, login.text
        code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
        token = http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": client_id,
            },
        )
        assert token.status_code == 200, token.text
        return str(token.json()["access_token"])


@pytest.mark.parametrize("caller", ["partner", "user"])
def test_every_check_passes(api: Api, issue_token: Callable[..., str], caller: str) -> None:
    partner = issue_token(PARTNER_SCOPES, "tenant-fuzz")
    token = partner if caller == "partner" else _user_token(api, partner)
    started = time.monotonic()
    # The CLI rather than the pytest plugin: its runner checks every operation with
    # examples, fuzzing and stateful links, and it is what a person would run by hand.
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "st"),
            "run",
            # The whole document: the public one (/openapi.json) is a part of it.
            f"{api.url}/internal/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {token}",
            # One worker: the coverage phase's lambda introspection is not thread-safe.
            "--max-examples",
            "50",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--seed",
            "20261125",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.integration.fuzz_hooks",
            "PYTHONPATH": str(REPO),
        },
    )
    # Reported, not asserted: CI time is watched in the logs (`pytest -s` shows it).
    sys.stdout.write(f"\nschemathesis as {caller}: {time.monotonic() - started:.0f} s\n")
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-2000:]
