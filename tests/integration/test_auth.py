"""The auth service over real HTTP, on the session's real PostgreSQL and Redis.

Tokens are verified the way every other service verifies them: `transactional.common.
security` fetching the JWKS from the running server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
import httpx
import pytest
import redis
from argon2 import PasswordHasher, extract_parameters
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet
from limits import parse
from sqlalchemy import Engine, text
from starlette.types import ASGIApp, Receive, Scope, Send

from paywall import db
from paywall.settings import Settings, get_settings, reset_settings
from paywall.stack.process import free_port, wait_until
from transactional.auth import keys, repository, throttle, tokens
from transactional.auth.clients import (
    REGISTRATION_CLIENT_ID,
    WEB_CLIENT_ID,
    create_client,
)
from transactional.auth.models import User
from transactional.auth.passwords import needs_rehash
from transactional.auth.users import authenticate_user, create_user
from transactional.common import revocations, security
from transactional.common.serving import serving

pytestmark = pytest.mark.integration

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never fetched: the test reads the Location
PASSWORD = "correct horse battery staple"


@dataclass
class AuthServer:
    url: str

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token"


@contextmanager
def _served(wrap: Callable[[ASGIApp], ASGIApp] = lambda app: app) -> Iterator[AuthServer]:
    """The auth app (wrapped in `wrap`) served by uvicorn in a thread on a free port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("API_PORT", str(port))
            mp.setenv("AUTH_ISSUER", url)
            reset_settings()
            from transactional.auth.app import app

            with serving(wrap(app), "127.0.0.1", port):  # type: ignore[arg-type]
                yield AuthServer(url)
    finally:
        reset_settings()  # after the environment is restored, so nothing caches ours


@pytest.fixture(scope="module")
def auth_server(settings: Settings) -> Iterator[AuthServer]:
    with _served() as server:
        yield server


@pytest.fixture
def engine(auth_server: AuthServer) -> Engine:
    return db.engine(get_settings())


@pytest.fixture
def http(auth_server: AuthServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_server.url, timeout=10) as client:
        yield client


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def user(engine: Engine) -> User:
    with engine.begin() as conn:
        return create_user(
            conn, f"{_id('ada')}@Example.com", PASSWORD, customer_id=_id("cus"), tenant_id="t1"
        )


@pytest.fixture
def spa_client(engine: Engine) -> str:
    """A public client of the `user` fixture's tenant, whose users it logs in."""
    return _tenant_client(engine, "t1")


def _service_client(engine: Engine, scopes: list[str], tenant_id: str | None = "t1") -> str:
    client_id = _id("svc")
    with engine.begin() as conn:
        create_client(
            conn,
            client_id,
            secret=f"{client_id}-secret",
            grant_types=["client_credentials"],
            scopes=scopes,
            tenant_id=tenant_id,
        )
    return client_id


def _client_token(http: httpx.Client, client_id: str, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    response = http.post("/oauth/token", data=form, auth=(client_id, f"{client_id}-secret"))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _hidden_fields(page: str) -> dict[str, str]:
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {name: html.unescape(value) for name, value in found}


def _login(http: httpx.Client, authorize_url: str, email: str, password: str) -> httpx.Response:
    page = http.get(authorize_url)
    assert page.status_code == 200, page.text
    assert page.headers["x-frame-options"] == "DENY"
    form = {**_hidden_fields(page.text), "email": email, "password": password}
    return http.post("/oauth/authorize", data=form)


def _code_flow(http: httpx.Client, client_id: str, user: User, scope: str) -> dict[str, Any]:
    """Authorization code + PKCE by hand (the authlib-driven flow has its own test)."""
    verifier = generate_token(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "s1",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    url = httpx.URL("/oauth/authorize", params=query)
    redirect = _login(http, str(url), user.email, PASSWORD)
    assert redirect.status_code == 302, redirect.text
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": client_id,
    }
    response = http.post("/oauth/token", data=form)
    assert response.status_code == 200, response.text
    return {**response.json(), "_code": code, "_verifier": verifier}


def _refresh(http: httpx.Client, client_id: str, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return http.post("/oauth/token", data=form)


# --- discovery and keys --------------------------------------------------------------------


def test_discovery_and_jwks(http: httpx.Client, auth_server: AuthServer) -> None:
    response = http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == auth_server.url
    OpenIDProviderMetadata(doc).validate()  # authlib's own RFC 8414 / OIDC checks
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "implicit" not in doc["grant_types_supported"]
    assert "password" not in doc["grant_types_supported"]

    jwks = httpx.get(doc["jwks_uri"]).json()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert key["kty"] == "RSA" and key["kid"] and key["alg"] == "RS256"
        assert "d" not in key and "p" not in key  # public halves only
    KeySet.import_key_set(jwks)


def test_key_rotation_keeps_old_tokens_valid(http: httpx.Client, engine: Engine) -> None:
    client_id = _service_client(engine, ["a"])
    old = _client_token(http, client_id)
    assert security.verify_token(old).client_id == client_id  # caches the JWKS

    with engine.begin() as conn:
        new_kid = keys.rotate_signing_key(conn)
    new = _client_token(http, client_id)
    assert _header(new)["kid"] == new_kid != _header(old)["kid"]

    time.sleep(security.JWKS_MIN_REFETCH_SECONDS + 0.1)  # let the unknown kid refetch
    assert security.verify_token(new).client_id == client_id
    assert security.verify_token(old).client_id == client_id  # retired, still published
    kids = {key["kid"] for key in http.get("/jwks.json").json()["keys"]}
    assert {new_kid, _header(old)["kid"]} <= kids


def _header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))))


# --- client credentials ----------------------------------------------------------------------


def test_client_credentials_scopes(http: httpx.Client, engine: Engine) -> None:
    client_id = _service_client(engine, ["customers:read", "customers:write"], tenant_id="t9")
    principal = security.verify_token(_client_token(http, client_id, "customers:read"))
    assert principal.subject == client_id and principal.client_id == client_id
    assert principal.scopes == {"customers:read"}
    assert principal.tenant_id == "t9" and principal.customer_id is None
    assert not principal.internal

    everything = security.verify_token(_client_token(http, client_id))
    assert everything.scopes == {"customers:read", "customers:write"}

    # client_secret_post works as well as Basic.
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": f"{client_id}-secret",
        "scope": "customers:read",
    }
    assert http.post("/oauth/token", data=form).status_code == 200

    beyond = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "customers:read internal"},
        auth=(client_id, f"{client_id}-secret"),
    )
    assert beyond.status_code == 400
    assert beyond.json()["error"] == "invalid_scope"
    assert beyond.headers["cache-control"] == "no-store"

    wrong = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "nope")
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")


def test_access_token_claims(http: httpx.Client, engine: Engine, auth_server: AuthServer) -> None:
    client_id = _service_client(engine, ["a"])
    token = _client_token(http, client_id)
    claims = jwt.decode(token, KeySet.import_key_set(http.get("/jwks.json").json())).claims
    assert claims["iss"] == auth_server.url
    assert claims["aud"] == "paywall-api"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert claims["jti"] and claims["scope"] == "a" and claims["tenant_id"] == "t1"
    assert _header(token)["typ"] == "at+jwt"


# --- authorization code + PKCE -------------------------------------------------------------


def test_authorization_code_pkce_with_authlib(
    http: httpx.Client, auth_server: AuthServer, spa_client: str, user: User
) -> None:
    scope = "openid email customers:read"
    oauth = OAuth2Client(
        client_id=spa_client,
        redirect_uri=REDIRECT_URI,
        scope=scope,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = oauth.create_authorization_url(
        f"{auth_server.url}/oauth/authorize", code_verifier=verifier, nonce=nonce
    )
    redirect = _login(http, url, user.email.upper(), PASSWORD)  # emails match case-blind
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    params = parse_qs(urlsplit(location).query)
    assert location.startswith(REDIRECT_URI)
    assert params["state"] == [state] and params["iss"] == [auth_server.url]

    token = oauth.fetch_token(
        auth_server.token_url, authorization_response=location, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    principal = security.verify_token(token["access_token"])
    assert principal.subject == str(user.id)
    assert principal.client_id == spa_client
    assert principal.customer_id == user.customer_id and principal.tenant_id == "t1"
    assert principal.scopes == set(scope.split())

    jwks = KeySet.import_key_set(http.get("/jwks.json").json())
    id_token = jwt.decode(token["id_token"], jwks, algorithms=["RS256"]).claims
    assert id_token["aud"] == spa_client and id_token["nonce"] == nonce
    assert id_token["sub"] == str(user.id) and id_token["email"] == user.email
    # An ID token is not an access token, whatever it carries.
    with pytest.raises(security.InvalidToken):
        security.verify_token(token["id_token"])

    info = http.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert info.status_code == 200
    assert info.json() == {
        "sub": str(user.id),
        "email": user.email,
        "customer_id": user.customer_id,
        "tenant_id": "t1",
    }


def test_code_replay_revokes_what_it_issued(
    http: httpx.Client, spa_client: str, user: User
) -> None:
    first = _code_flow(http, spa_client, user, "openid")
    replay = http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": first["_code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": first["_verifier"],
            "client_id": spa_client,
        },
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert _refresh(http, spa_client, first["refresh_token"]).json()["error"] == "invalid_grant"
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert http.get("/userinfo", headers=bearer).status_code == 401


def test_pkce_verifier_must_match(http: httpx.Client, spa_client: str, user: User) -> None:
    verifier = generate_token(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    url = httpx.URL(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": spa_client,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        },
    )
    redirect = _login(http, str(url), user.email, PASSWORD)
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": spa_client,
    }
    for bad in ({}, {"code_verifier": generate_token(64)}):
        response = http.post("/oauth/token", data={**form, **bad})
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    ok = http.post("/oauth/token", data={**form, "code_verifier": verifier})
    assert ok.status_code == 200  # the failed attempts did not burn the code


# --- refresh rotation and revocation -------------------------------------------------------


def test_refresh_rotation_and_reuse_detection(
    http: httpx.Client, spa_client: str, user: User
) -> None:
    first = _code_flow(http, spa_client, user, "openid customers:read")
    rotated = _refresh(http, spa_client, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert security.verify_token(second["access_token"]).subject == str(user.id)

    again = _refresh(http, spa_client, second["refresh_token"])
    assert again.status_code == 200
    third = again.json()

    reuse = _refresh(http, spa_client, first["refresh_token"])  # a stolen, rotated token
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # The whole family is gone, the newest token included.
    latest = _refresh(http, spa_client, third["refresh_token"])
    assert latest.status_code == 400 and latest.json()["error"] == "invalid_grant"
    bearer = {"Authorization": f"Bearer {third['access_token']}"}
    assert http.get("/userinfo", headers=bearer).status_code == 401


def test_refresh_may_narrow_but_not_widen_scope(
    http: httpx.Client, spa_client: str, user: User
) -> None:
    tokens = _code_flow(http, spa_client, user, "openid customers:read")
    form = {"grant_type": "refresh_token", "client_id": spa_client}
    wider = http.post(
        "/oauth/token",
        data={**form, "refresh_token": tokens["refresh_token"], "scope": "openid email"},
    )
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrower = http.post(
        "/oauth/token", data={**form, "refresh_token": tokens["refresh_token"], "scope": "openid"}
    )
    assert narrower.status_code == 200 and narrower.json()["scope"] == "openid"
    again = _refresh(http, spa_client, narrower.json()["refresh_token"]).json()
    assert again["scope"] == "customers:read openid"  # the grant itself is unchanged


def test_revoke(http: httpx.Client, spa_client: str, user: User) -> None:
    tokens = _code_flow(http, spa_client, user, "openid")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http.get("/userinfo", headers=bearer).status_code == 200

    revoked = http.post(
        "/oauth/revoke",
        data={
            "token": tokens["access_token"],
            "token_type_hint": "access_token",
            "client_id": spa_client,
        },
    )
    assert revoked.status_code == 200
    denied = http.get("/userinfo", headers=bearer)
    assert denied.status_code == 401
    assert 'error="invalid_token"' in denied.headers["www-authenticate"]

    form = {"token": tokens["refresh_token"], "client_id": spa_client}
    assert http.post("/oauth/revoke", data=form).status_code == 200
    assert _refresh(http, spa_client, tokens["refresh_token"]).json()["error"] == "invalid_grant"

    unknown = http.post("/oauth/revoke", data={"token": "nonsense", "client_id": spa_client})
    assert unknown.status_code == 200  # RFC 7009: unknown tokens are not an error
    no_token = http.post("/oauth/revoke", data={"client_id": spa_client})
    assert no_token.status_code == 400 and no_token.json()["error"] == "invalid_request"


def test_introspection(http: httpx.Client, engine: Engine) -> None:
    client_id = _service_client(engine, ["a"])
    token = _client_token(http, client_id)
    auth = (client_id, f"{client_id}-secret")
    active = http.post("/oauth/introspect", data={"token": token}, auth=auth).json()
    assert active["active"] is True and active["client_id"] == client_id
    http.post("/oauth/revoke", data={"token": token}, auth=auth)
    assert http.post("/oauth/introspect", data={"token": token}, auth=auth).json() == {
        "active": False
    }


def test_a_revoked_access_token_is_refused_by_every_service(
    http: httpx.Client, engine: Engine, spa_client: str, user: User
) -> None:
    # require() is what every service's routes run; /v1/users is auth's own such route,
    # and verify_token is the offline check other services make (JWKS, then Redis).
    client_id = _service_client(engine, ["users:write", "internal"])
    token = _client_token(http, client_id)
    bearer = {"Authorization": f"Bearer {token}"}

    def create() -> httpx.Response:
        body = {"email": f"{_id('rv')}@example.com", "password": PASSWORD}
        return http.post("/v1/users", json=body, headers=bearer)

    assert create().status_code == 201
    http.post("/oauth/revoke", data={"token": token}, auth=(client_id, f"{client_id}-secret"))
    refused = create()
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]

    # Revoking a refresh token revokes the access token issued with it, everywhere too.
    tokens = _code_flow(http, spa_client, user, "openid")
    assert security.verify_token(tokens["access_token"]).subject
    form = {"token": tokens["refresh_token"], "client_id": spa_client}
    assert http.post("/oauth/revoke", data=form).status_code == 200
    with pytest.raises(security.InvalidToken, match="revoked"):
        security.verify_token(tokens["access_token"])


def test_without_redis_auth_is_asked_and_revocations_hold(
    http: httpx.Client, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id = _service_client(engine, ["a"])
    auth = (client_id, f"{client_id}-secret")
    live, revoked = _client_token(http, client_id), _client_token(http, client_id)
    # Counters of their own: the dead Redis must not leave the shared ones in memory mode
    # (for REDIS_RETRY_SECONDS) while the next test counts a lockout.
    monkeypatch.setattr(throttle, "_counters", throttle._Counters())
    monkeypatch.setattr(revocations, "_auth", revocations._Auth())  # no back-off from before
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    reset_settings()
    try:
        # Revoked while Redis is unreachable: only auth's table has it, and auth is asked.
        assert http.post("/oauth/revoke", data={"token": revoked}, auth=auth).status_code == 200
        with pytest.raises(security.InvalidToken, match="revoked"):
            security.verify_token(revoked)
        assert security.verify_token(live).client_id == client_id
    finally:
        monkeypatch.undo()
        reset_settings()


def test_when_neither_redis_nor_auth_can_say_tokens_are_accepted(
    http: httpx.Client, engine: Engine, auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The decision in revocations._ask_auth: failing closed would make every service fail
    # whenever auth is down. A verifier for the real issuer, with auth's address gone.
    client_id = _service_client(engine, ["a"])
    token = _client_token(http, client_id)
    http.post("/oauth/revoke", data={"token": token}, auth=(client_id, f"{client_id}-secret"))
    # Counters of their own: the dead Redis must not leave the shared ones in memory mode
    # (for REDIS_RETRY_SECONDS) while the next test counts a lockout.
    monkeypatch.setattr(throttle, "_counters", throttle._Counters())
    monkeypatch.setattr(revocations, "_auth", revocations._Auth())
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("AUTH_ISSUER", f"http://127.0.0.1:{free_port()}")
    reset_settings()
    try:
        with engine.connect() as conn:
            verifier = security.TokenVerifier(
                auth_server.url,
                security.audience(),
                keys.DatabaseKeys(conn),
                revoked=revocations.is_revoked,
            )
            assert verifier.verify(token).client_id == client_id
    finally:
        monkeypatch.undo()
        reset_settings()


def test_a_bearer_token_may_introspect_only_itself(http: httpx.Client, engine: Engine) -> None:
    client_id = _service_client(engine, ["a"])
    token, other = _client_token(http, client_id), _client_token(http, client_id)
    bearer = {"Authorization": f"Bearer {token}"}
    own = http.post("/oauth/introspect", data={"token": token}, headers=bearer)
    assert own.status_code == 200 and own.json()["active"] is True
    scan = http.post("/oauth/introspect", data={"token": other}, headers=bearer)
    assert scan.status_code == 401 and scan.json()["error"] == "invalid_token"
    assert "active" not in scan.text
    http.post("/oauth/revoke", data={"token": token}, auth=(client_id, f"{client_id}-secret"))
    gone = http.post("/oauth/introspect", data={"token": token}, headers=bearer)
    assert gone.json() == {"active": False}


def test_redis_is_rebuilt_from_the_record(http: httpx.Client, engine: Engine) -> None:
    # Redis losing the watermark and a revocation (as a restart loses everything): auth's
    # sync puts the watermark back only together with every unexpired revocation.
    client_id = _service_client(engine, ["a"])
    auth = (client_id, f"{client_id}-secret")
    token = _client_token(http, client_id)
    jti = http.post("/oauth/introspect", data={"token": token}, auth=auth).json()["jti"]
    http.post("/oauth/revoke", data={"token": token}, auth=auth)
    with engine.begin() as conn:  # long ago: only a whole copy brings it back
        conn.execute(
            text(
                "UPDATE auth.revoked_tokens SET created_at = now() - interval '10 minutes' "
                "WHERE jti = :jti"
            ),
            {"jti": jti},
        )
    store = redis.Redis.from_url(str(get_settings().redis_url))
    assert store.delete(revocations.WATERMARK_KEY, revocations._key(jti)) == 2
    wait_until(lambda: store.exists(revocations.WATERMARK_KEY) == 1, "the watermark", timeout=15)
    assert store.exists(revocations._key(jti)) == 1


# --- require(): what every other service relies on -----------------------------------------


def _forge(engine: Engine, auth_server: AuthServer, **overrides: Any) -> str:
    """A token signed with the real active key, with claims the test chooses."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": auth_server.url,
        "aud": "paywall-api",
        "sub": "svc-x",
        "client_id": "svc-x",
        "scope": "users:write internal",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    with engine.begin() as conn:
        key = keys.active_key(conn)
    header = {"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, {k: v for k, v in claims.items() if v is not None}, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_require_rejects_forged_and_foreign_tokens(
    http: httpx.Client, engine: Engine, auth_server: AuthServer
) -> None:
    body = {"email": f"{_id('f')}@example.com", "password": PASSWORD}

    def post(token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return http.post("/v1/users", json=body, headers=headers)

    good = _forge(engine, auth_server)
    with engine.begin() as conn:
        key = keys.active_key(conn)
    claims = jwt.decode(good, key).claims

    unsigned = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": key.kid}).encode())
    alg_none = f"{unsigned}.{_b64(json.dumps(claims).encode())}."

    # The classic confusion: HS256 keyed with the RSA public key a verifier can download.
    head = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}).encode())
    signing_input = f"{head}.{_b64(json.dumps(claims).encode())}"
    public_pem = key.as_pem(private=False)
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    hs256 = f"{signing_input}.{_b64(mac)}"

    rejected = {
        "no token": None,
        "garbage": "not.a.jwt",
        "alg none": alg_none,
        "hs256 with public key": hs256,
        "wrong audience": _forge(engine, auth_server, aud="someone-else"),
        "wrong issuer": _forge(engine, auth_server, iss="https://evil.example"),
        "expired": _forge(
            engine, auth_server, iat=int(time.time()) - 3600, exp=int(time.time()) - 600
        ),
        "not yet valid": _forge(engine, auth_server, nbf=int(time.time()) + 3600),
        "no client_id": _forge(engine, auth_server, client_id=None),
        "tampered": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
    }
    for why, token in rejected.items():
        response = post(token)
        assert response.status_code == 401, why
        assert response.headers["content-type"] == "application/problem+json", why
        assert 'Bearer error="invalid_token"' in response.headers["www-authenticate"], why

    missing_scope = post(_forge(engine, auth_server, scope="customers:read"))
    assert missing_scope.status_code == 403
    assert missing_scope.headers["content-type"] == "application/problem+json"
    assert 'error="insufficient_scope"' in missing_scope.headers["www-authenticate"]

    assert post(good).status_code == 201  # the same path with a proper token works


# --- the internal users API ----------------------------------------------------------------


def test_create_user_for_registration(http: httpx.Client, engine: Engine) -> None:
    form = {"grant_type": "client_credentials", "scope": "users:write internal"}
    got = http.post(
        "/oauth/token",
        data=form,
        auth=(REGISTRATION_CLIENT_ID, get_settings().registration_client_secret.get_secret_value()),
    )
    assert got.status_code == 200, got.text
    bearer = {"Authorization": f"Bearer {got.json()['access_token']}"}
    customer_id = _id("cus")
    email = f"{_id('Grace')}@Example.COM"
    # Tenant-less, so the tenant-less default SPA client can log it in below.
    body = {"email": email, "password": PASSWORD, "customer_id": customer_id}

    created = http.post("/v1/users", json=body, headers=bearer)
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == email.lower() and user["customer_id"] == customer_id

    with engine.connect() as conn:
        event = conn.execute(
            text("SELECT type, aggregate_id, payload FROM auth.outbox WHERE aggregate_id = :id"),
            {"id": user["id"]},
        ).one()
    assert event.type == "user.created"
    assert event.payload["data"]["customer_id"] == customer_id
    assert PASSWORD not in json.dumps(event.payload) and "password" not in json.dumps(event.payload)

    again = http.post("/v1/users", json={**body, "email": email.upper()}, headers=bearer)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["user_id"] == user["id"]  # same customer: the saga may move on
    other = http.post("/v1/users", json={**body, "customer_id": "cus-other"}, headers=bearer)
    assert other.status_code == 409 and "user_id" not in other.json()

    # The new user logs in through the default SPA client the app created at startup.
    verifier = generate_token(64)
    url = httpx.URL(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": WEB_CLIENT_ID,
            "redirect_uri": get_settings().web_redirect_uris[0],
            "scope": "openid",
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            "prompt": "login",
        },
    )
    redirect = _login(http, str(url), email, PASSWORD)
    assert redirect.status_code == 302
    back = get_settings().web_redirect_uris[0]
    assert redirect.headers["location"].startswith(back + "?code=")


def _tenant_client(engine: Engine, tenant_id: str | None) -> str:
    client_id = _id("spa")
    with engine.begin() as conn:
        create_client(conn, client_id, redirect_uris=[REDIRECT_URI], tenant_id=tenant_id)
    return client_id


def test_one_email_under_two_tenants_is_two_users(http: httpx.Client, engine: Engine) -> None:
    secret = get_settings().registration_client_secret.get_secret_value()
    got = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "users:write internal"},
        auth=(REGISTRATION_CLIENT_ID, secret),
    )
    bearer = {"Authorization": f"Bearer {got.json()['access_token']}"}
    email, other_password = f"{_id('same')}@example.com", "another tenant's password"
    tenant_a, tenant_b = _id("tenant-a"), _id("tenant-b")

    def create(tenant: str | None, customer: str, password: str = PASSWORD) -> httpx.Response:
        body = {"email": email, "password": password, "customer_id": customer, "tenant_id": tenant}
        return http.post("/v1/users", json=body, headers=bearer)

    a, b = create(tenant_a, "cus-a"), create(tenant_b, "cus-b", other_password)
    assert a.status_code == 201 and b.status_code == 201, (a.text, b.text)
    assert a.json()["id"] != b.json()["id"]
    again = create(tenant_a, "cus-a")  # the saga retrying: same tenant, same customer
    assert again.status_code == 409 and again.json()["user_id"] == a.json()["id"]
    taken = create(tenant_a, "cus-other")
    assert taken.status_code == 409 and "user_id" not in taken.json()
    assert create(None, "cus-c").status_code == 201  # tenant-less users are unique...
    assert create(None, "cus-d").status_code == 409  # ...among themselves
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM auth.users WHERE email = :e"), {"e": email}
        ).scalar_one()
    assert count == 3

    # Each tenant's login page finds its own user only, whatever password is tried.
    def login(tenant: str | None, password: str) -> httpx.Response:
        return _login(http, _authorize_url(_tenant_client(engine, tenant)), email, password)

    assert login(tenant_a, other_password).status_code == 401
    assert login(tenant_b, PASSWORD).status_code == 401
    for tenant, password, user in ((tenant_a, PASSWORD, a), (tenant_b, other_password, b)):
        redirect = login(tenant, password)
        assert redirect.status_code == 302, redirect.text
        code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
        with engine.connect() as conn:
            owner = conn.execute(
                text("SELECT user_id FROM auth.authorization_codes WHERE code_hash = :h"),
                {"h": tokens.token_hash(code)},
            ).scalar_one()
        assert str(owner) == user.json()["id"]
    assert login(_id("tenant-c"), PASSWORD).status_code == 401


# --- login throttling ----------------------------------------------------------------------


def test_login_rehashes_a_password_stored_under_other_parameters(
    engine: Engine, user: User
) -> None:
    # A hash from before ARGON2_* changed (here RFC 9106's 64 MiB, t=3, p=4) still logs in,
    # and the login stores the password again under the current parameters.
    old = PasswordHasher().hash(PASSWORD)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE auth.users SET password_hash = :h WHERE id = :id"),
            {"h": old, "id": user.id},
        )
    with engine.begin() as conn:
        assert authenticate_user(conn, user.email, "wrong password here", "t1") is None
        assert authenticate_user(conn, user.email, PASSWORD, "t1") == user
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM auth.users WHERE id = :id"), {"id": user.id}
        ).scalar_one()
    assert stored != old and not needs_rehash(stored)
    assert extract_parameters(stored).memory_cost == get_settings().argon2_memory_kib
    with engine.begin() as conn:
        assert authenticate_user(conn, user.email, PASSWORD, "t1") == user


def _authorize_url(client_id: str) -> str:
    verifier = generate_token(64)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
    }
    return str(httpx.URL("/oauth/authorize", params=query))


def _address() -> str:
    """A loopback address of its own: per-IP counts of one test touch no other test."""
    return "127." + ".".join(str(secrets.randbelow(254) + 1) for _ in range(3))


def _client_from(auth_server: AuthServer, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=auth_server.url, timeout=30, transport=transport)


def test_login_throttling(http: httpx.Client, spa_client: str, user: User) -> None:
    url = _authorize_url(spa_client)
    for _ in range(throttle.LOGIN_PER_ACCOUNT.limit.amount):
        assert _login(http, url, user.email, "wrong password").status_code == 401
    locked = _login(http, url, user.email, PASSWORD)  # even the right password waits
    assert locked.status_code == 429
    window = throttle.LOGIN_PER_ACCOUNT.limit.get_expiry()
    assert 0 < int(locked.headers["retry-after"]) <= window
    assert "code=" not in locked.headers.get("location", "")


def test_concurrent_guesses_get_no_more_checks_than_the_limit(
    auth_server: AuthServer, spa_client: str, user: User
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    address, url = _address(), _authorize_url(spa_client)
    with _client_from(auth_server, address) as http:
        page = http.get(url)
    form = {**_hidden_fields(page.text), "email": user.email, "password": "wrong password"}

    def guess(_: int) -> int:
        with _client_from(auth_server, address) as http:
            return http.post("/oauth/authorize", data=form).status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(guess, range(30)))
    # A 401 is a password checked and found wrong; a 429 was refused before any check.
    limit = throttle.LOGIN_PER_ACCOUNT.limit.amount
    assert statuses.count(401) == limit and statuses.count(429) == 30 - limit
    with _client_from(auth_server, address) as http:
        right = _login(http, url, user.email, PASSWORD)
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0


def test_a_lockout_ends_with_its_window(
    auth_server: AuthServer, spa_client: str, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = throttle.Rule("login-account-test", parse("2 per 3 seconds"), clear_on_success=True)
    monkeypatch.setattr(throttle, "LOGIN_PER_ACCOUNT", short)
    url = _authorize_url(spa_client)
    with _client_from(auth_server, _address()) as http:
        for _ in range(2):
            assert _login(http, url, user.email, "wrong password").status_code == 401
        locked = _login(http, url, user.email, PASSWORD)
        assert locked.status_code == 429
        # Redis keeps whole seconds: the window may end up to a second after Retry-After.
        time.sleep(int(locked.headers["retry-after"]) + 1.1)
        assert _login(http, url, user.email, PASSWORD).status_code == 302


def test_password_spraying_from_one_address_is_stopped(
    auth_server: AuthServer, spa_client: str, user: User
) -> None:
    url = _authorize_url(spa_client)
    with _client_from(auth_server, _address()) as http:
        for i in range(throttle.LOGIN_PER_IP.limit.amount):
            sprayed = _login(http, url, f"nobody-{i}-{_id('x')}@example.com", PASSWORD)
            assert sprayed.status_code == 401
        stopped = _login(http, url, f"{_id('next')}@example.com", PASSWORD)
        assert stopped.status_code == 429 and int(stopped.headers["retry-after"]) > 0
        assert _login(http, url, user.email, PASSWORD).status_code == 429
    with _client_from(auth_server, _address()) as elsewhere:  # other addresses are not affected
        assert _login(elsewhere, url, user.email, PASSWORD).status_code == 302


def test_client_secret_guesses_are_limited(auth_server: AuthServer, engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client_id, address = _service_client(engine, ["a"]), _address()
    form = {"grant_type": "client_credentials"}

    def guess(secret: str, client: str = client_id, source: str = address) -> httpx.Response:
        with _client_from(auth_server, source) as http:
            return http.post("/oauth/token", data=form, auth=(client, secret))

    per_client = throttle.SECRET_PER_CLIENT.limit.amount
    with ThreadPoolExecutor(max_workers=20) as pool:
        wrong = list(pool.map(lambda i: guess(f"wrong-{i}"), range(per_client + 10)))
    assert [r.status_code for r in wrong].count(401) == per_client  # secrets checked
    refused = [r for r in wrong if r.status_code == 429]
    assert len(refused) == 10
    assert refused[0].json()["error"] == "temporarily_unavailable"
    assert refused[0].headers["content-type"] == "application/json"
    assert int(refused[0].headers["retry-after"]) > 0
    # The client's own secret waits too, from anywhere: the count is the client's.
    assert guess(f"{client_id}-secret", source=_address()).status_code == 429

    # Per address: guesses spread over many client ids are stopped as well.
    spread, source = throttle.SECRET_PER_IP.limit.amount, _address()
    for i in range(spread):
        assert guess("x", client=f"nobody-{i}-{_id('c')}", source=source).status_code == 401
    assert guess("x", client=_id("nobody"), source=source).status_code == 429


def test_without_redis_logins_work_and_are_still_limited(
    auth_server: AuthServer, spa_client: str, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counters of their own: the dead Redis must not leave the shared ones in memory mode
    # (for REDIS_RETRY_SECONDS) while the next test counts a lockout.
    monkeypatch.setattr(throttle, "_counters", throttle._Counters())
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    reset_settings()
    try:
        with _client_from(auth_server, _address()) as http:
            tokens = _code_flow(http, spa_client, user, "openid")
            assert tokens["access_token"]
            url = _authorize_url(spa_client)
            # Counted in this process's memory meanwhile, not waved through.
            for _ in range(throttle.LOGIN_PER_ACCOUNT.limit.amount):
                assert _login(http, url, user.email, "wrong").status_code == 401
            assert _login(http, url, user.email, PASSWORD).status_code == 429
    finally:
        monkeypatch.undo()
        reset_settings()


# --- bad input: 4xx, never 500 ---------------------------------------------------------------


def test_bad_input_is_a_4xx_never_a_500(
    http: httpx.Client, spa_client: str, engine: Engine
) -> None:
    svc = _service_client(engine, ["users:write", "internal"])
    bearer = {"Authorization": f"Bearer {_client_token(http, svc)}"}
    pkce = {"code_challenge": "x" * 43, "code_challenge_method": "S256"}
    authorize = {"response_type": "code", "client_id": spa_client, "redirect_uri": REDIRECT_URI}

    token_errors: list[tuple[dict[str, Any], int, str]] = [
        ({"json": {"grant_type": "client_credentials"}}, 400, "invalid_request"),
        ({"data": {}}, 400, "invalid_request"),
        (
            {"data": {"grant_type": "password", "username": "a", "password": "b"}},
            400,
            "unsupported_grant_type",
        ),
        ({"data": {"grant_type": "implicit"}}, 400, "unsupported_grant_type"),
        (
            {
                "content": "grant_type=a&grant_type=b",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "invalid_request",
        ),
        (
            {
                "content": b"\xff\xfe=\xff",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "invalid_request",
        ),
        (
            {
                "content": "a=" + "x" * 100_000,
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "invalid_request",
        ),
        (
            {
                "data": {"grant_type": "client_credentials"},
                "headers": {"authorization": "Basic %%%"},
            },
            401,
            "invalid_client",
        ),
        (
            {
                "data": {
                    "grant_type": "client_credentials",
                    "client_id": "nobody",
                    "client_secret": "x",
                }
            },
            401,
            "invalid_client",
        ),
        (
            {"data": {"grant_type": "client_credentials", "client_id": spa_client}},
            400,
            "unauthorized_client",
        ),
        (
            {
                "data": {
                    "grant_type": "authorization_code",
                    "client_id": spa_client,
                    "code": "nope",
                    "redirect_uri": REDIRECT_URI,
                }
            },
            400,
            "invalid_grant",
        ),
        (
            {"data": {"grant_type": "authorization_code", "client_id": spa_client}},
            400,
            "invalid_request",
        ),
        (
            {
                "data": {
                    "grant_type": "refresh_token",
                    "client_id": spa_client,
                    "refresh_token": "nope",
                }
            },
            400,
            "invalid_grant",
        ),
        (
            {
                "data": {"grant_type": "client_credentials", "scope": 'bad"scope'},
                "auth": (svc, f"{svc}-secret"),
            },
            400,
            "invalid_scope",
        ),
    ]
    for kwargs, status, error in token_errors:
        response = http.post("/oauth/token", **kwargs)
        assert response.status_code == status, (kwargs, response.text)
        assert response.json()["error"] == error, (kwargs, response.text)

    # Before the client and redirect URI are trusted: a problem page, never a redirect.
    fatal = [
        {},
        {**authorize, "client_id": "nobody", **pkce},
        {**authorize, "redirect_uri": "https://evil.example/cb", **pkce},
        {**authorize, "redirect_uri": REDIRECT_URI + "/x", **pkce},
    ]
    for params in fatal:
        response = http.get("/oauth/authorize", params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"] == "application/problem+json"
    dup = http.get(f"/oauth/authorize?client_id={spa_client}&client_id={spa_client}")
    assert dup.status_code == 400

    # After: back to the client with an OAuth error and the state.
    redirected = {
        "unsupported_response_type": {**authorize, "response_type": "token", **pkce},
        "invalid_request": {**authorize},  # a public client without PKCE
        "invalid_scope": {**authorize, "scope": "internal", **pkce},
        "login_required": {**authorize, "prompt": "none", **pkce},
    }
    for error, params in redirected.items():
        response = http.get("/oauth/authorize", params={**params, "state": "st"})
        assert response.status_code == 302, (error, response.text)
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["error"] == [error] and query["state"] == ["st"]
    plain = http.get(
        "/oauth/authorize",
        params={**authorize, "code_challenge": "x" * 43, "code_challenge_method": "plain"},
    )
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]

    login_errors = [
        http.post("/oauth/authorize", data={"email": "a@b.c", "password": "x"}),
        http.post("/oauth/authorize", json={"client_id": spa_client}),
    ]
    for response in login_errors:
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"

    users = [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@example.com", "password": "short"},
        {"email": "a@example.com", "password": "x" * 5000},
        {"email": "a@example.com"},
        {"email": "a@example.com", "password": PASSWORD, "admin": True},
        {"email": ["a@example.com"], "password": PASSWORD},
    ]
    for body in users:
        response = http.post("/v1/users", json=body, headers=bearer)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        assert PASSWORD not in response.text
    not_json = http.post(
        "/v1/users", content=b"{", headers={**bearer, "content-type": "application/json"}
    )
    assert 400 <= not_json.status_code < 500

    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer x.y.z"},
        {"Authorization": "Basic abc"},
    ):
        response = http.get("/userinfo", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
    client_token = {"Authorization": bearer["Authorization"]}
    assert http.get("/userinfo", headers=client_token).status_code == 403  # no openid scope

    assert http.post("/oauth/revoke", data={"token": "x"}).status_code == 401
    assert (
        http.post("/oauth/introspect", data={"token": "x", "client_id": spa_client}).status_code
        == 400
    )


def test_cold_jwks_fetch_from_the_same_process_does_not_deadlock(engine: Engine) -> None:
    """More concurrent requests than the threadpool has threads, all needing the JWKS that
    the same server must serve: /jwks.json (its dependencies too) never waits for the
    threadpool, so nothing waits forever. The pool is starved on purpose: three threads."""
    from concurrent.futures import ThreadPoolExecutor

    threads = 3

    def starved(app: ASGIApp) -> ASGIApp:
        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            # The threadpool's size belongs to the server's event loop: set it there.
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
            await app(scope, receive, send)

        return serve

    with _served(starved) as server:
        token = _forge(engine, server, scope="nothing")
        security._verifiers.clear()  # every verifier cold: the first request must fetch

        def call(_: int) -> int:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                headers = {"Authorization": f"Bearer {token}"}
                return client.post("/v1/users", json={}, headers=headers).status_code

        with ThreadPoolExecutor(max_workers=4 * threads) as pool:
            statuses = list(pool.map(call, range(4 * threads)))
    assert set(statuses) == {403}


def test_purge_expired(engine: Engine, spa_client: str, user: User) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO auth.revoked_tokens (jti, expires_at) "
                "VALUES (:jti, now() - interval '2 days')"
            ),
            {"jti": uuid.uuid4().hex},
        )
        assert repository.purge_expired(conn) >= 1
        left: int = conn.execute(
            text(
                "SELECT count(*) FROM auth.revoked_tokens "
                "WHERE expires_at < now() - interval '1 day'"
            )
        ).scalar_one()
    assert left == 0


# --- the OpenAPI document tells the truth ---------------------------------------------------


def test_oauth_endpoints_answer_what_they_document(
    http: httpx.Client, auth_server: AuthServer
) -> None:
    import subprocess

    from tests.conftest import REPO

    paths = http.get("/openapi.json").json()["paths"]
    for path in ("/oauth/token", "/oauth/revoke", "/oauth/introspect"):
        responses = paths[path]["post"]["responses"]
        assert set(responses) == {"200", "400", "401", "429"}, path
        assert "application/problem+json" not in json.dumps(responses), path
        assert "Retry-After" in responses["429"]["headers"], path
    # What each answers, checked against what each documents, with generated requests.
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "st"),
            "run",
            f"{auth_server.url}/openapi.json",
            "--include-path-regex",
            "^/oauth/(token|revoke|introspect)$",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "20261130",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
