"""The Dagster UI's login client (what oauth2-proxy in front of the UI uses): registered by
auth from DAGSTER_UI_CLIENT_SECRET, confidential, and it logs in operators only."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from pydantic import SecretStr

from paywall import db
from paywall.settings import Settings, get_settings
from tests.integration.test_auth import PASSWORD, AuthServer, _login, _served
from transactional.auth.clients import (
    DAGSTER_UI_CALLBACK,
    DAGSTER_UI_CLIENT_ID,
    ensure_default_clients,
)
from transactional.auth.users import create_user

pytestmark = pytest.mark.integration
SECRET = "dagster-ui-test-secret"


@pytest.fixture(scope="module")
def auth_server(settings: Settings) -> Iterator[AuthServer]:
    with _served() as server:
        yield server


def _login_to_dagster(http: httpx.Client, settings: Settings, email: str) -> httpx.Response:
    verifier = generate_token(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect_uri = f"{settings.issuer}{DAGSTER_UI_CALLBACK}"
    query = {
        "response_type": "code",
        "client_id": DAGSTER_UI_CLIENT_ID,
        "redirect_uri": redirect_uri,
        "scope": "openid email",
        "state": "s",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    answer = _login(http, str(httpx.URL("/oauth/authorize", params=query)), email, PASSWORD)
    if answer.status_code != 302:
        return answer
    location = answer.headers["location"]
    assert location.startswith(redirect_uri)
    form = {
        "grant_type": "authorization_code",
        "code": parse_qs(urlsplit(location).query)["code"][0],
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    return http.post("/oauth/token", data=form, auth=(DAGSTER_UI_CLIENT_ID, SECRET))


def test_operators_log_in_to_the_dagster_ui_and_nobody_else(auth_server: AuthServer) -> None:
    settings = get_settings()
    engine = db.engine(settings)
    with engine.begin() as conn:
        ensure_default_clients(conn, settings)  # no secret set: no client
        assert (
            conn.exec_driver_sql(
                "SELECT count(*) FROM auth.clients WHERE client_id = 'dagster-ui'"
            ).scalar_one()
            == 0
        )
        ui = settings.model_copy(update={"dagster_ui_client_secret": SecretStr(SECRET)})
        ensure_default_clients(conn, ui)
        operator, customer = (f"{who}-{uuid.uuid4().hex[:8]}@example.com" for who in "oc")
        create_user(conn, operator, PASSWORD, customer_id=None, tenant_id=ui.dagster_ui_tenant)
        create_user(conn, customer, PASSWORD, customer_id="cus-x", tenant_id="some-tenant")
    with httpx.Client(base_url=auth_server.url, timeout=10) as http:
        tokens = _login_to_dagster(http, ui, operator)
        assert tokens.status_code == 200, tokens.text
        assert tokens.json()["id_token"]
        assert _login_to_dagster(http, ui, customer).status_code == 401
        # Confidential: without the secret the code is not redeemed.
        public = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": DAGSTER_UI_CLIENT_ID},
        )
        assert public.status_code == 401
