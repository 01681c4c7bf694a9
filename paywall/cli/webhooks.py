"""`paywall webhooks`: a tenant's webhook endpoints from the operator's side, and the
delivery worker.

The management commands run the webhooks service's own rules on the database directly
(as an internal caller acting for `--tenant`), like `paywall tenants|clients`: no running
API and no token needed. An endpoint's signing secret is printed once, when it is made or
rotated. `deliver` is the worker process (a Deployment beside the consumers).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection

from paywall.cli.probe import HeartbeatFile
from paywall.errors import PaywallError, invalid
from paywall.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Outbound webhooks: endpoints and the worker.")
console = Console(log_path=False)
err_console = Console(stderr=True)
OPERATOR = "paywall-cli"
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
EndpointId = Annotated[uuid.UUID, typer.Argument(help="The endpoint's id.")]


def _principal() -> Any:
    from transactional.common.security import Principal

    return Principal(OPERATOR, OPERATOR, frozenset({"internal"}), None, None)


@contextmanager
def _transaction() -> Iterator[Connection]:
    """A transaction on the webhooks schema; a refusal is one line (exit 2), never a trace."""
    from paywall.db import engine
    from transactional.common.errors import DomainError

    try:
        with engine(get_settings()).begin() as conn:
            yield conn
    except DomainError as exc:
        raise PaywallError(str(exc)) from None


def _print(value: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(value, indent=2) + "\n")
        return
    for name, shown in value.items():
        console.print(f"{name + ':':<17}{shown if shown is not None else ''}")


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="The tenant the endpoint is for.")],
    url: Annotated[str, typer.Option(help="Where events are POSTed.")],
    event_type: Annotated[
        list[str] | None,
        typer.Option(help="An event type or `domain.*`; repeat it (default: every event)."),
    ] = None,
    contact_email: Annotated[
        str | None, typer.Option(help="Emailed if the endpoint is disabled after failures.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Register an endpoint; its signing secret is printed this once."""
    from pydantic import ValidationError

    from transactional.webhooks import service
    from transactional.webhooks.models import EndpointCreate

    try:
        body = EndpointCreate(
            url=url,  # type: ignore[arg-type]
            event_types=event_type or [],
            contact_email=contact_email,
            tenant_id=tenant,
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    with _transaction() as conn:
        made = service.create(conn, _principal(), None, body).body
    _print(made, as_json)
    err_console.print("The secret is shown this once: keep it now (rotate-secret makes another).")


@app.command("list")
def list_endpoints(
    tenant: Annotated[str, typer.Option(help="The tenant whose endpoints to list.")],
    as_json: Json = False,
) -> None:
    """A tenant's endpoints, enabled or not."""
    from transactional.webhooks import repository

    found: list[dict[str, Any]] = []
    after: tuple[datetime, uuid.UUID] | None = None
    with _transaction() as conn:
        while page := repository.page(conn, tenant, after, 100):
            found += [e.model_dump(mode="json") for e in page]
            after = (page[-1].created_at, page[-1].id)
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    table = Table("id", "url", "events", "enabled", "disabled because", title=f"{tenant}")
    for e in found:
        table.add_row(
            e["id"],
            e["url"],
            " ".join(e["event_types"]) or "*",
            "yes" if e["enabled"] else "no",
            e["disabled_reason"] or "",
        )
    console.print(table)


@app.command("disable")
def disable(endpoint_id: EndpointId) -> None:
    """No deliveries until enabled again; events wait."""
    from transactional.webhooks import service

    with _transaction() as conn:
        service.set_enabled(conn, _principal(), endpoint_id, enabled=False)
    console.print(f"endpoint {endpoint_id} disabled")


@app.command("enable")
def enable(endpoint_id: EndpointId) -> None:
    """Deliveries resume, the ones that waited first."""
    from transactional.webhooks import service

    with _transaction() as conn:
        service.set_enabled(conn, _principal(), endpoint_id, enabled=True)
    console.print(f"endpoint {endpoint_id} enabled")


@app.command("rotate-secret")
def rotate_secret(endpoint_id: EndpointId, as_json: Json = False) -> None:
    """A new signing secret, used from the next delivery on; printed this once."""
    from transactional.webhooks import service

    with _transaction() as conn:
        rotated = service.rotate_secret(conn, _principal(), endpoint_id)
    _print({"id": str(rotated.id), "secret": rotated.secret}, as_json)


@app.command("replay")
def replay(
    endpoint_id: EndpointId,
    event: Annotated[uuid.UUID | None, typer.Option(help="One event, by id.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Every event that occurred at or after (UTC).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="...and before (default: now).")] = None,
) -> None:
    """Deliver one event, or every event of a time range, to the endpoint again."""
    from datetime import UTC

    from transactional.webhooks import service
    from transactional.webhooks.models import Replay, ReplayEvent, ReplayRange

    def utc(at: datetime) -> datetime:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at

    body: Replay
    if event is not None and since is None and until is None:
        body = ReplayEvent(event_id=event)
    elif event is None and since is not None:
        body = ReplayRange(since=utc(since), until=utc(until) if until else None)
    else:
        raise PaywallError("give --event ID, or --since (and maybe --until)")
    with _transaction() as conn:
        made = service.replay(conn, _principal(), endpoint_id, body)
    console.print(f"{made.deliveries} deliveries queued")


@app.command("deliver")
def deliver(
    once: Annotated[bool, typer.Option(help="Send what is due now, then exit.")] = False,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port.", min=1, max=65535)
    ] = None,
    heartbeat: HeartbeatFile = None,
) -> None:
    """The delivery worker: signed POSTs of due deliveries, retried for 3 days."""
    from paywall.cli import _serve_metrics
    from paywall.db import engine
    from paywall.logs import configure_logging
    from streaming.heartbeat import Heartbeat
    from streaming.webhooks import worker

    settings = get_settings()
    configure_logging(settings)
    _serve_metrics(metrics_port)
    if once:
        with worker.make_client(settings) as client:
            tried = worker.drain(engine(settings), settings, client)
        console.print(f"{tried} delivery attempt(s)")
        return
    worker.run(engine(settings), settings, stop=lambda: False, heartbeat=Heartbeat(heartbeat))
