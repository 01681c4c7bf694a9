"""The webhooks rules: an endpoint is its tenant's, seen and changed by that tenant only
(another tenant's answers as absent does), and events are listed per tenant.

Webhooks are a partner backend's business: a user's token never reaches them, and an
internal caller acts for the tenant it names.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Connection

from paywall import webhook_targets
from paywall.secret_box import SecretBox
from paywall.settings import get_settings
from transactional.common import errors, idempotency, pagination, tenancy
from transactional.common.errors import DomainError, not_found
from transactional.common.idempotency import Answer
from transactional.common.security import Principal
from transactional.webhooks import repository
from transactional.webhooks.models import (
    AttemptPage,
    Endpoint,
    EndpointCreate,
    EndpointPage,
    EndpointWithSecret,
    EventPage,
    Replay,
    Replayed,
    ReplayEvent,
)


def _tenant(principal: Principal, claimed: str | None = None) -> str | None:
    if principal.customer_id and not principal.internal:
        raise DomainError(
            errors.INSUFFICIENT_SCOPE, "webhooks belong to a tenant's backend, not to a user"
        )
    return tenancy.tenant_for(principal, claimed)


def create(conn: Connection, principal: Principal, key: str | None, body: EndpointCreate) -> Answer:
    """An endpoint of the caller's tenant with a new secret, shown in this answer only."""
    tenant = _tenant(principal, body.tenant_id)
    if tenant is None:
        raise DomainError(errors.TENANT_REQUIRED, "name the tenant the endpoint is for")
    settings = get_settings()
    if settings.is_production and body.url.scheme != "https":
        raise DomainError(errors.VALIDATION, "a webhook URL must be https")
    if not settings.allows_private_webhook_targets:
        refused = webhook_targets.refusal(str(body.url))
        if refused is not None:
            raise DomainError(errors.VALIDATION, f"url: {refused}")
    scoped = idempotency.scoped(principal, key) if key else None
    asked = idempotency.fingerprint({**body.model_dump(mode="json"), "tenant_id": tenant})
    if scoped:
        idempotency.hold(conn, scoped)
        earlier = repository.by_request_key(conn, scoped)
        if earlier is not None:
            idempotency.check_same(earlier[1] or asked, asked)
            replay = EndpointWithSecret(**earlier[0].model_dump(), secret=None)
            return Answer(201, replay.model_dump(mode="json"), replayed=True)
    secret = repository.new_secret()
    made = repository.create(
        conn, tenant, body, secret, SecretBox.from_settings(settings), scoped, asked
    )
    return Answer(
        201, EndpointWithSecret(**made.model_dump(), secret=secret).model_dump(mode="json")
    )


def visible(conn: Connection, principal: Principal, endpoint_id: uuid.UUID) -> Endpoint:
    tenant = principal.tenant_id if not principal.internal else None
    found = repository.get(conn, endpoint_id)
    if (
        found is None
        or (principal.customer_id and not principal.internal)
        or (not principal.internal and (not tenant or found.tenant_id != tenant))
    ):
        raise not_found("webhook endpoint", endpoint_id)
    return found


def listed(conn: Connection, principal: Principal, limit: int, cursor: str | None) -> EndpointPage:
    tenant = _tenant(principal)
    if tenant is None:
        return EndpointPage(data=[], next_cursor=None)
    rows = repository.page(conn, tenant, pagination.decode_cursor(cursor), limit + 1)
    return pagination.page_of(rows, limit, lambda endpoint: (endpoint.created_at, endpoint.id))


def set_enabled(
    conn: Connection, principal: Principal, endpoint_id: uuid.UUID, enabled: bool
) -> Endpoint:
    visible(conn, principal, endpoint_id)
    why = f"disabled by {principal.client_id}"
    return repository.set_enabled(conn, endpoint_id, enabled, why)


def rotate_secret(
    conn: Connection, principal: Principal, endpoint_id: uuid.UUID
) -> EndpointWithSecret:
    """A new secret at once: deliveries from now on are signed with it."""
    found = visible(conn, principal, endpoint_id)
    secret = repository.new_secret()
    repository.rotate(conn, endpoint_id, secret, SecretBox.from_settings(get_settings()))
    return EndpointWithSecret(**found.model_dump(), secret=secret)


def replay(
    conn: Connection, principal: Principal, endpoint_id: uuid.UUID, body: Replay
) -> Replayed:
    """Deliver one event, or every event of a time range, again (a new delivery each)."""
    endpoint = visible(conn, principal, endpoint_id)
    if not endpoint.enabled:
        raise DomainError(errors.TRANSITION, "the endpoint is disabled: enable it first")
    scale = get_settings().webhook_schedule_scale
    if isinstance(body, ReplayEvent):
        if repository.event_seq(conn, endpoint.tenant_id, body.event_id) is None:
            raise not_found("event", body.event_id)
        made = repository.replay(conn, endpoint, [body.event_id], None, None, scale)
    else:
        until = body.until or datetime.now(UTC)
        made = repository.replay(conn, endpoint, None, body.since, until, scale)
    return Replayed(deliveries=made)


def attempts(
    conn: Connection, principal: Principal, endpoint_id: uuid.UUID, limit: int, cursor: str | None
) -> AttemptPage:
    visible(conn, principal, endpoint_id)
    before = pagination.decode_sequence(cursor)
    rows = repository.attempts(conn, endpoint_id, before, limit + 1)
    more = len(rows) > limit
    return AttemptPage(
        data=[a for _, a in rows[:limit]],
        next_cursor=pagination.encode_cursor(str(rows[limit - 1][0])) if more else None,
    )


def events(
    conn: Connection,
    principal: Principal,
    *,
    types: list[str],
    since: datetime | None,
    until: datetime | None,
    after: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> EventPage:
    """The tenant's events, oldest first. A poller keeps the last event's id and asks
    again with `after`; `next_cursor` pages through what is there now."""
    tenant = _tenant(principal)
    if tenant is None:
        return EventPage(data=[], next_cursor=None)
    start = pagination.decode_sequence(cursor)
    if after is not None:
        seq = repository.event_seq(conn, tenant, after)
        if seq is None:
            raise not_found("event", after)
        start = max(start or 0, seq)
    rows = repository.events(conn, tenant, start, types, since, until, limit + 1)
    more = len(rows) > limit
    return EventPage(
        data=[e for _, e in rows[:limit]],
        next_cursor=pagination.encode_cursor(str(rows[limit - 1][0])) if more else None,
    )
