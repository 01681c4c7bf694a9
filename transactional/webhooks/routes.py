"""Webhooks API: a partner's endpoints (create, list, disable, rotate, replay, the
delivery log) and its events for polling. Thin: the rules are in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from transactional.common import errors, idempotency, tenancy
from transactional.common.api_document import problems_answered
from transactional.common.deps import ReadConn, Transaction
from transactional.common.idempotency import OptionalIdempotencyKey
from transactional.common.security import Principal
from transactional.webhooks import service
from transactional.webhooks.models import (
    AttemptPage,
    Endpoint,
    EndpointCreate,
    EndpointPage,
    EndpointWithSecret,
    EventPage,
    EventType,
    Moment,
    Replay,
    Replayed,
)

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])
events_router = APIRouter(prefix="/v1/events", tags=["events"])

Reader = Annotated[Principal, Depends(tenancy.member("webhooks:read"))]
Writer = Annotated[Principal, Depends(tenancy.member("webhooks:write"))]
EventReader = Annotated[Principal, Depends(tenancy.member("events:read"))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such webhook endpoint visible to the caller"}
}
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.post(
    "",
    status_code=201,
    response_model=EndpointWithSecret,
    responses={**idempotency.RESPONSES},
    summary="Register an endpoint; its signing secret is in this answer only",
)
def create_endpoint(
    body: EndpointCreate,
    principal: Writer,
    conn: Transaction,
    key: OptionalIdempotencyKey = None,
) -> JSONResponse:
    answer = service.create(conn, principal, key, body)
    response = idempotency.respond(answer)
    response.headers["Location"] = f"/v1/webhook-endpoints/{answer.body['id']}"
    return response


@router.get("", response_model=EndpointPage)
def list_endpoints(
    principal: Reader, conn: ReadConn, limit: Limit = 20, cursor: Cursor = None
) -> EndpointPage:
    return service.listed(conn, principal, limit, cursor)


@router.get("/{endpoint_id}", response_model=Endpoint, responses=NOT_FOUND)
def get_endpoint(endpoint_id: uuid.UUID, principal: Reader, conn: ReadConn) -> Endpoint:
    return service.visible(conn, principal, endpoint_id)


@router.post("/{endpoint_id}/disable", response_model=Endpoint, responses=NOT_FOUND)
def disable_endpoint(endpoint_id: uuid.UUID, principal: Writer, conn: Transaction) -> Endpoint:
    """No deliveries until enabled; events keep being recorded and wait."""
    return service.set_enabled(conn, principal, endpoint_id, enabled=False)


@router.post("/{endpoint_id}/enable", response_model=Endpoint, responses=NOT_FOUND)
def enable_endpoint(endpoint_id: uuid.UUID, principal: Writer, conn: Transaction) -> Endpoint:
    """Deliveries resume, the ones that waited first."""
    return service.set_enabled(conn, principal, endpoint_id, enabled=True)


@router.post("/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret, responses=NOT_FOUND)
def rotate_secret(
    endpoint_id: uuid.UUID, principal: Writer, conn: Transaction
) -> EndpointWithSecret:
    return service.rotate_secret(conn, principal, endpoint_id)


@router.post(
    "/{endpoint_id}/replay",
    status_code=202,
    response_model=Replayed,
    responses={
        404: {"description": "No such webhook endpoint, or event, visible to the caller"},
        409: {"description": "The endpoint is disabled"},
    },
    openapi_extra=problems_answered(errors.TRANSITION),
    summary="Deliver one event, or a time range of events, again",
)
def replay(endpoint_id: uuid.UUID, body: Replay, principal: Writer, conn: Transaction) -> Replayed:
    return service.replay(conn, principal, endpoint_id, body)


@router.get("/{endpoint_id}/attempts", response_model=AttemptPage, responses=NOT_FOUND)
def list_attempts(
    endpoint_id: uuid.UUID,
    principal: Reader,
    conn: ReadConn,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> AttemptPage:
    """The delivery log, newest first: one row per POST (status, duration, error)."""
    return service.attempts(conn, principal, endpoint_id, limit, cursor)


@events_router.get(
    "",
    response_model=EventPage,
    responses={404: {"description": "`after` names no event of the caller's tenant"}},
)
def list_events(
    principal: EventReader,
    conn: ReadConn,
    type: Annotated[
        list[EventType] | None, Query(max_length=20, description="`invoice.paid` or `invoice.*`")
    ] = None,
    since: Annotated[Moment | None, Query(description="Occurred at or after")] = None,
    until: Annotated[Moment | None, Query(description="Occurred before")] = None,
    after: Annotated[
        uuid.UUID | None, Query(description="Only events received after this one (polling)")
    ] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> EventPage:
    """The tenant's events, the ones webhooks deliver, oldest first, for partners who poll."""
    return service.events(
        conn,
        principal,
        types=type or [],
        since=since,
        until=until,
        after=after,
        limit=limit,
        cursor=cursor,
    )
