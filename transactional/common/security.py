"""Access tokens as every service sees them: verified against the issuer's JWKS over HTTP.

This module must not import `transactional.auth`: a service in its own pod knows auth only
by its issuer URL. Verification is synchronous on purpose; `require()` is a sync FastAPI
dependency, so it runs in the threadpool and a JWKS fetch from the same uvicorn process
that serves `/jwks.json` cannot block the event loop that has to answer it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from cachetools import TTLCache
from fastapi import Depends, Header, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import HTTPAuthorizationCredentials, OAuth2
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from paywall.logs import get_logger
from paywall.settings import get_settings
from transactional.common import errors, revocations
from transactional.common.errors import DomainError

log = get_logger(__name__)

# The only algorithm auth signs with. An allow-list of one: `none`, HS256 (with the public
# key as the HMAC secret) and anything else never reach signature verification.
ALGORITHMS = ("RS256",)
ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068: an ID token (typ JWT) is not an access token
DEFAULT_AUDIENCE = "paywall-api"
LEEWAY_SECONDS = 30
# A token whose signature and claims checked out is not checked again for this long (its
# expiry still is, and revocation on every request): a saga's service token is presented on
# every internal hop, and the signature check was the largest part of a hop's token cost.
# Shorter than the JWKS' TTL, so a key leaving the JWKS is not outlived by its tokens here.
VERIFIED_SECONDS = 60.0
VERIFIED_MAX = 10_000
JWKS_TTL_SECONDS = 300.0
# An unknown kid refetches the JWKS, but at most this often: garbage kids must not turn
# every request into a call to auth. Short, because right after a rotation a token with
# the new kid can meet a cache fetched a moment before it; it is rejected until then.
JWKS_MIN_REFETCH_SECONDS = 1.0

# The scopes a partner's client may hold (the admin API grants these and no others), as
# the API document offers them.
PARTNER_SCOPES: dict[str, str] = {
    "registrations:write": "Sign customers up (POST /v1/registrations)",
    "customers:read": "Read the tenant's customers",
    "customers:write": "Create, change and erase the tenant's customers",
    "subscriptions:read": "Read the tenant's subscriptions",
    "subscriptions:write": "Create and change the tenant's subscriptions",
    "payments:read": "Read the tenant's payments",
    "payments:write": "Charge and refund the tenant's customers",
    "payment_methods:write": "Attach a card and make it the default (a customer's own token)",
    "invoices:read": "Read the tenant's invoices (lists, documents)",
    "invoices:write": "Credit the tenant's paid invoices (credit notes: refund or credit)",
    "webhooks:read": "Read the tenant's webhook endpoints and their delivery log",
    "webhooks:write": "Register, disable, rotate and replay the tenant's webhook endpoints",
    "events:read": "Read the tenant's events (GET /v1/events)",
    "coupons:read": "Read the tenant's coupons",
    "coupons:write": "Create and archive the tenant's coupons",
    "tax_rates:read": "Read the tenant's tax rates",
    "tax_rates:write": "Create and archive the tenant's tax rates",
    "plans:write": "Create and archive the tenant's plans, price them, migrate subscribers",
}
# Scopes that act across tenants: the services' own (`internal`), the operations sweeps'
# and the platform operator's. An endpoint needing one is not in the public API document.
OPERATOR_SCOPES = frozenset({"internal", "operations", "admin"})
TOKEN_URL = "/oauth/token"


def audience() -> str:
    """The `aud` access tokens carry and resource servers insist on."""
    # Not in Settings (auth does not own that file); one place reads it for signer and verifier.
    return os.environ.get("AUTH_AUDIENCE", DEFAULT_AUDIENCE)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (sub = user id) or a client acting for itself (sub = client id)."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    customer_id: str | None
    tenant_id: str | None

    @property
    def internal(self) -> bool:
        return "internal" in self.scopes


class InvalidToken(Exception):
    """The token is not one of ours, or not any more; the caller gets 401."""


class IssuerUnavailable(Exception):
    """The JWKS could not be fetched and nothing usable is cached; the caller gets 503."""


class KeySource(Protocol):
    def key_set(self, kid: str) -> KeySet:
        """Public keys including `kid`; raises InvalidToken when `kid` is not published."""
        ...


class JWKSCache:
    """The issuer's public keys, cached with a TTL and refetched (rate-limited) on a new kid."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = JWKS_TTL_SECONDS,
        min_refetch: float = JWKS_MIN_REFETCH_SECONDS,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refetch = min_refetch
        self._client = client or httpx.Client(timeout=httpx.Timeout(5.0))
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")

    def key_set(self, kid: str) -> KeySet:
        """A key set holding `kid`, or InvalidToken when the issuer does not publish it."""
        with self._lock:  # one fetch at a time; the others wait and reuse its result
            age = self._clock() - self._fetched_at
            stale = age >= self.ttl  # also true before the first fetch
            unknown = self._keys is not None and not _has_kid(self._keys, kid)
            if stale or (unknown and age >= self.min_refetch):
                self._refresh()
            keys = self._keys
        if keys is None:
            raise IssuerUnavailable(f"no signing keys from {self.url}")
        if not _has_kid(keys, kid):
            raise InvalidToken("unknown signing key")
        return keys

    def _refresh(self) -> None:
        now = self._clock()
        try:
            response = self._client.get(self.url, headers={"accept": "application/json"})
            response.raise_for_status()
            keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, TypeError, JoseError) as exc:
            # Keep a stale key set (it still verifies its own tokens) and try again soon,
            # not after a whole TTL.
            log.warning("jwks.fetch_failed", url=self.url, error=str(exc)[:200])
            self._fetched_at = now - self.ttl + self.min_refetch
            return
        self._keys = keys
        self._fetched_at = now


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


class TokenVerifier:
    """Checks signature, alg, typ, iss, aud, exp/nbf/iat and the claims a Principal needs."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks: KeySource,
        leeway: int = LEEWAY_SECONDS,
        revoked: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.leeway = leeway
        self.revoked = revoked
        self._verified: TTLCache[str, dict[str, Any]] = TTLCache(VERIFIED_MAX, VERIFIED_SECONDS)
        self._verified_lock = threading.Lock()

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of an access token, or InvalidToken."""
        with self._verified_lock:
            known = self._verified.get(token)
        if known is not None and known["exp"] + self.leeway > time.time():
            return dict(known)
        claims = self._check(token)
        with self._verified_lock:
            self._verified[token] = claims
        return dict(claims)

    def _check(self, token: str) -> dict[str, Any]:
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("algorithm not accepted")
        if header.get("typ", "").lower() not in (ACCESS_TOKEN_TYPE, "application/at+jwt"):
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        keys = self.jwks.key_set(kid)
        try:
            decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
            registry = jwt.JWTClaimsRegistry(
                leeway=self.leeway,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
                sub={"essential": True},
                client_id={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise InvalidToken(_why(exc)) from exc
        return decoded.claims

    def verify(self, token: str) -> Principal:
        claims = self.claims(token)
        # (jti, token): the token itself is what auth is asked about when Redis cannot say.
        if self.revoked is not None and self.revoked(str(claims.get("jti", "")), token):
            raise InvalidToken("token revoked")
        return principal_from_claims(claims)


def _why(exc: Exception) -> str:
    name = getattr(exc, "error", None) or type(exc).__name__
    return str(name)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidToken("scope claim is not a string")

    def optional(name: str) -> str | None:
        value = claims.get(name)
        return str(value) if value is not None else None

    return Principal(
        subject=str(claims["sub"]),
        client_id=str(claims["client_id"]),
        scopes=frozenset(scope.split()),
        customer_id=optional("customer_id"),
        tenant_id=optional("tenant_id"),
    )


_verifiers: dict[tuple[str, str], TokenVerifier] = {}
_verifiers_lock = threading.Lock()


def default_verifier() -> TokenVerifier:
    """The verifier for the configured issuer; a new issuer (tests) gets a fresh cache."""
    issuer = get_settings().issuer
    key = (issuer, audience())
    with _verifiers_lock:
        verifier = _verifiers.get(key)
        if verifier is None:
            verifier = TokenVerifier(
                issuer, key[1], JWKSCache(issuer + "/jwks.json"), revoked=revocations.is_revoked
            )
            _verifiers[key] = verifier
    return verifier


def verify_token(token: str) -> Principal:
    """Verify an access token outside FastAPI (consumers, CLIs). Raises InvalidToken."""
    return default_verifier().verify(token)


def _unauthorized(description: str) -> DomainError:
    challenge = f'Bearer error="invalid_token", error_description="{description}"'
    return DomainError(errors.INVALID_TOKEN, description, headers={"WWW-Authenticate": challenge})


# Documented as OAuth2 client credentials: what a partner's backend uses, and what /docs's
# Authorize button runs. It reads the Authorization header, whatever its scheme.
_oauth2 = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_URL, scopes=PARTNER_SCOPES)
    ),
    scheme_name="OAuth2",
    description="An access token from the auth service (client credentials at "
    f"{TOKEN_URL}), sent as `Authorization: Bearer <token>`",
    auto_error=False,
)


def _credentials(authorization: str | None) -> HTTPAuthorizationCredentials | None:
    scheme, _, credentials = (authorization or "").partition(" ")
    if not scheme or not credentials.strip():
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())


# Async because it never blocks: a sync dependency waits for a threadpool thread (a hand-off
# per request, every internal call of a saga included); only the token check itself, which
# may fetch the JWKS and asks Redis, has to run there.
async def _bearer(
    authorization: str | None = Depends(_oauth2),
) -> HTTPAuthorizationCredentials | None:
    return _credentials(authorization)


def require(*scopes: str) -> Callable[..., Principal]:
    """A FastAPI dependency: the caller's Principal, holding every one of `scopes`.

    Missing or invalid token: 401 problem with a Bearer challenge; a missing scope: 403.
    """
    needed = frozenset(scopes)

    # Sync on purpose (see the module docstring): FastAPI runs it in the threadpool.
    def dependency(
        credentials: HTTPAuthorizationCredentials | None = Security(_bearer, scopes=sorted(needed)),
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorized("missing bearer token")
        try:
            principal = verify_token(credentials.credentials)
        except InvalidToken as exc:
            raise _unauthorized(str(exc) or "invalid token") from None
        except IssuerUnavailable as exc:
            raise DomainError(
                errors.DEPENDENCY_UNAVAILABLE,
                str(exc),
                headers={"Retry-After": "5"},
                dependency="auth",
            ) from None
        missing = needed - principal.scopes
        if missing:
            raise _insufficient(f"token lacks scope: {' '.join(sorted(missing))}", needed)
        return principal

    return dependency


def require_any(*scopes: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """`require`, satisfied by any one of `scopes`: for a route that partners reach with a
    broad scope and customers with a narrow one of their own (a card: payments:write, or
    payment_methods:write)."""
    anyof = frozenset(scopes)
    verified = require()

    async def dependency(principal: Principal = Depends(verified)) -> Principal:
        if not anyof & principal.scopes:
            raise _insufficient(f"token needs one scope of: {' '.join(sorted(anyof))}", anyof)
        return principal

    return dependency


def _insufficient(detail: str, wanted: frozenset[str]) -> DomainError:
    scope = " ".join(sorted(wanted))
    return DomainError(
        errors.INSUFFICIENT_SCOPE,
        detail,
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
    )


_any_token = require()


def optional_principal(
    authorization: str | None = Header(None, include_in_schema=False),
) -> Principal | None:
    """A FastAPI dependency for public routes that answer a token's holder more (a
    tenant's own plans): None without a token; a bad token is still refused (401). Not a
    security requirement in the API document: the route is public."""
    return None if authorization is None else _any_token(_credentials(authorization))
