"""Lifetimes and limits of what auth issues; one place so the JWKS retention follows them."""

from __future__ import annotations

from datetime import timedelta

from transactional.common.security import LEEWAY_SECONDS

ACCESS_TOKEN_TTL = timedelta(minutes=15)
ID_TOKEN_TTL = timedelta(minutes=15)
# Sliding: each rotation starts a new 30 days; an idle family dies after that.
REFRESH_TOKEN_TTL = timedelta(days=30)
# RFC 6749 recommends at most 10 minutes; a browser round trip needs seconds.
AUTHORIZATION_CODE_TTL = timedelta(minutes=5)
# A retired key stays published while tokens it signed can still be presented.
KEY_RETENTION = max(ACCESS_TOKEN_TTL, ID_TOKEN_TTL) + timedelta(seconds=LEEWAY_SECONDS + 60)
# Scheduled rotation (`paywall housekeeping signing-keys`, daily): a key signs for
# SIGNING_KEY_MAX_AGE; the next one is published KEY_PUBLISH_AHEAD before it signs, so
# every verifier's JWKS and Kong's config (rendered at deploy time) know it first.
SIGNING_KEY_MAX_AGE = timedelta(days=90)
KEY_PUBLISH_AHEAD = timedelta(days=7)

SUPPORTED_GRANTS = frozenset({"authorization_code", "client_credentials", "refresh_token"})
# Scopes any client may ask for besides those it is registered with are none: a client's
# registered scopes are the whole list. OIDC scopes are listed for discovery.
OIDC_SCOPES = ("openid", "email")

# The platform operator's scope (the admin API): it manages every tenant, so only a client
# of no tenant may hold it. A tenant's client gets `security.PARTNER_SCOPES` only:
# `internal`, `operations` and `users:write` act across tenants and belong to the
# services' own clients (from settings), never to a client an admin makes.
ADMIN_SCOPE = "admin"
