"""Token verification rules, with a local key and an in-memory JWKS endpoint (no server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.security import HTTPAuthorizationCredentials
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from transactional.common import security
from transactional.common.errors import DomainError
from transactional.common.security import (
    InvalidToken,
    IssuerUnavailable,
    JWKSCache,
    Principal,
    TokenVerifier,
)

ISSUER = "https://auth.test"
AUDIENCE = "paywall-api"


def _key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


KEY = _key("k1")
OTHER = _key("k2")


class StaticKeys:
    def __init__(self, *keys: RSAKey) -> None:
        self.keys = KeySet(list(keys))

    def key_set(self, kid: str) -> KeySet:
        if not any(k.kid == kid for k in self.keys.keys):
            raise InvalidToken("unknown signing key")
        return self.keys


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "web",
        "scope": "openid customers:read",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": "j1",
        "customer_id": "cus_1",
        "tenant_id": "t1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: RSAKey = KEY, **header: Any) -> str:
    head = {"alg": "RS256", "kid": key.kid, "typ": "at+jwt", **header}
    return jwt.encode({k: v for k, v in head.items() if v is not None}, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _verifier() -> TokenVerifier:
    return TokenVerifier(ISSUER, AUDIENCE, StaticKeys(KEY))


def test_a_good_token_becomes_a_principal() -> None:
    principal = _verifier().verify(_sign(_claims()))
    assert principal == Principal(
        subject="user-1",
        client_id="web",
        scopes=frozenset({"openid", "customers:read"}),
        customer_id="cus_1",
        tenant_id="t1",
    )
    assert not principal.internal
    assert _verifier().verify(_sign(_claims(scope="internal"))).internal


def test_small_clock_skew_is_tolerated() -> None:
    now = int(time.time())
    assert _verifier().verify(_sign(_claims(iat=now + 10, nbf=now + 10, exp=now - 5)))


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: _sign(_claims(aud="other")), id="wrong audience"),
        pytest.param(lambda: _sign(_claims(aud=["other", "x"])), id="wrong audience list"),
        pytest.param(lambda: _sign(_claims(iss="https://evil.test")), id="wrong issuer"),
        pytest.param(lambda: _sign(_claims(exp=int(time.time()) - 120)), id="expired"),
        pytest.param(lambda: _sign(_claims(nbf=int(time.time()) + 600)), id="not yet valid"),
        pytest.param(lambda: _sign(_claims(iat=int(time.time()) + 600)), id="issued in the future"),
        pytest.param(lambda: _sign(_claims(exp=None)), id="no exp"),
        pytest.param(lambda: _sign(_claims(sub=None)), id="no sub"),
        pytest.param(lambda: _sign(_claims(client_id=None)), id="no client_id"),
        pytest.param(lambda: _sign(_claims(scope=["a", "b"])), id="scope not a string"),
        pytest.param(lambda: _sign(_claims(), typ="JWT"), id="an ID token"),
        pytest.param(lambda: _sign(_claims(), key=OTHER), id="key not published"),
        pytest.param(lambda: _sign(_claims(), kid=None), id="no kid"),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
        pytest.param(lambda: "a.b.c", id="garbage segments"),
        pytest.param(lambda: "ünïcode.b.c", id="non-ascii"),
    ],
)
def test_rejected(make_token: Callable[[], str]) -> None:
    # Made when the test runs, not at collection: a long suite must not age the times.
    token = make_token()
    with pytest.raises(InvalidToken):
        _verifier().verify(token)


def test_alg_none_is_rejected() -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": "k1"}).encode())
    token = f"{header}.{_b64(json.dumps(_claims()).encode())}."
    with pytest.raises(InvalidToken, match="algorithm"):
        _verifier().verify(token)


def test_hs256_keyed_with_the_public_key_is_rejected() -> None:
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(_claims()).encode())}"
    mac = hmac.new(KEY.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="algorithm"):
        _verifier().verify(f"{signing_input}.{_b64(mac)}")


def test_a_tampered_payload_is_rejected() -> None:
    head, _, sig = _sign(_claims()).split(".")
    forged = _b64(json.dumps(_claims(scope="internal")).encode())
    with pytest.raises(InvalidToken):
        _verifier().verify(f"{head}.{forged}.{sig}")


class CountingKeys(StaticKeys):
    def __init__(self, *keys: RSAKey) -> None:
        super().__init__(*keys)
        self.asked = 0

    def key_set(self, kid: str) -> KeySet:
        self.asked += 1
        return super().key_set(kid)


def test_a_verified_token_is_not_checked_again_but_its_expiry_and_revocation_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys, revoked = CountingKeys(KEY), set[str]()
    verifier = TokenVerifier(ISSUER, AUDIENCE, keys, revoked=lambda jti, _token: jti in revoked)
    now = time.time()
    token = _sign(_claims(exp=int(now) + 60))
    assert verifier.verify(token) == verifier.verify(token)
    assert keys.asked == 1  # the signature was checked once
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidToken):  # a token is known by all of it, signature included
        verifier.verify(tampered)

    revoked.add("j1")
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.verify(token)
    revoked.clear()
    monkeypatch.setattr(time, "time", lambda: now + 60 + security.LEEWAY_SECONDS + 1)
    with pytest.raises(InvalidToken):
        verifier.verify(token)


# --- the JWKS cache ------------------------------------------------------------------------


class FakeIssuer:
    """An in-memory JWKS endpoint that counts fetches and can fail on demand."""

    def __init__(self, *keys: RSAKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.down:
            return httpx.Response(503)
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys]})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(issuer: FakeIssuer, clock: Clock) -> JWKSCache:
    client = httpx.Client(transport=httpx.MockTransport(issuer.handler))
    return JWKSCache(f"{ISSUER}/jwks.json", ttl=300, min_refetch=1, client=client, clock=clock)


def test_jwks_is_cached_for_its_ttl() -> None:
    issuer, clock = FakeIssuer(KEY), Clock()
    cache = _cache(issuer, clock)
    for _ in range(5):
        cache.key_set("k1")
    assert issuer.fetches == 1
    clock.now += 301
    cache.key_set("k1")
    assert issuer.fetches == 2


def test_unknown_kid_refetches_once_rate_limited() -> None:
    issuer, clock = FakeIssuer(KEY), Clock()
    cache = _cache(issuer, clock)
    cache.key_set("k1")
    issuer.keys.append(OTHER)  # a rotation at the issuer

    for _ in range(3):  # within the rate limit: no refetch, so no k2 yet
        with pytest.raises(InvalidToken):
            cache.key_set("k2")
    assert issuer.fetches == 1

    clock.now += 1.5
    assert cache.key_set("k2")
    assert issuer.fetches == 2
    for _ in range(3):  # garbage kids cannot turn every request into a fetch
        with pytest.raises(InvalidToken):
            cache.key_set("garbage")
    assert issuer.fetches == 2


def test_a_stale_jwks_is_kept_when_the_issuer_is_down() -> None:
    issuer, clock = FakeIssuer(KEY), Clock()
    cache = _cache(issuer, clock)
    cache.key_set("k1")
    issuer.down = True
    clock.now += 301
    assert cache.key_set("k1")  # refetch failed; the old keys still verify old tokens
    assert issuer.fetches == 2
    cache.key_set("k1")
    assert issuer.fetches == 2  # and the failure is not retried on every request


def test_no_jwks_at_all_is_issuer_unavailable() -> None:
    issuer, clock = FakeIssuer(KEY), Clock()
    issuer.down = True
    cache = _cache(issuer, clock)
    with pytest.raises(IssuerUnavailable):
        cache.key_set("k1")
    clock.now += 2
    issuer.down = False
    assert cache.key_set("k1")


def test_verify_via_jwks_cache() -> None:
    issuer, clock = FakeIssuer(KEY), Clock()
    verifier = TokenVerifier(ISSUER, AUDIENCE, _cache(issuer, clock))
    assert verifier.verify(_sign(_claims())).subject == "user-1"


# --- require(), called as FastAPI would call it ------------------------------------------
# (The HTTP side, problem+json over the wire, is in tests/integration/test_auth.py.)


@pytest.fixture
def dependency(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Principal]:
    verifier = _verifier()
    monkeypatch.setattr(security, "default_verifier", lambda: verifier)
    return security.require("customers:read")


def _bearer(token: str) -> HTTPAuthorizationCredentials:
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


def test_require_accepts_a_token_with_the_scope(dependency: Callable[..., Principal]) -> None:
    assert dependency(_bearer(_sign(_claims()))).subject == "user-1"


@pytest.mark.parametrize(
    "credentials",
    [None, _bearer("nope"), _bearer(_sign(_claims(aud="x")))],
    ids=["missing", "garbage", "wrong audience"],
)
def test_require_answers_401_with_a_bearer_challenge(
    dependency: Callable[..., Principal], credentials: HTTPAuthorizationCredentials | None
) -> None:
    with pytest.raises(DomainError) as raised:
        dependency(credentials)
    assert raised.value.problem.status == 401
    assert raised.value.headers is not None
    assert raised.value.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_require_answers_403_for_a_missing_scope(dependency: Callable[..., Principal]) -> None:
    with pytest.raises(DomainError) as raised:
        dependency(_bearer(_sign(_claims(scope="openid"))))
    assert raised.value.problem.status == 403
    assert raised.value.detail == "token lacks scope: customers:read"
    assert raised.value.headers is not None
    challenge = raised.value.headers["WWW-Authenticate"]
    assert challenge == 'Bearer error="insufficient_scope", scope="customers:read"'


def test_require_answers_503_when_the_issuer_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer, clock = FakeIssuer(KEY), Clock()
    issuer.down = True
    verifier = TokenVerifier(ISSUER, AUDIENCE, _cache(issuer, clock))
    monkeypatch.setattr(security, "default_verifier", lambda: verifier)
    with pytest.raises(DomainError) as raised:
        security.require()(_bearer(_sign(_claims())))
    assert raised.value.problem.status == 503
