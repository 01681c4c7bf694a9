"""`paywall events …`: the events the outboxes published, and what consumers parked."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paywall.cli.dead_letters import app as dead_letters_app
from paywall.errors import PaywallError
from paywall.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="The events the outboxes published.")
app.add_typer(dead_letters_app, name="dead-letters")
console = Console(log_path=False)
err_console = Console(stderr=True)

MAX_LISTED = 100


@app.command("completeness")
def events_completeness(
    day: Annotated[
        str | None, typer.Option(help="The UTC day YYYY-MM-DD (default: yesterday).")
    ] = None,
    repair: Annotated[
        bool, typer.Option(help="Mark the missing events unpublished, so the relay resends them.")
    ] = False,
) -> None:
    """Every event the outboxes published that day is in the audit log; exit 1 on gaps left."""
    from datetime import UTC, date, datetime, timedelta

    from paywall.db import engine
    from streaming import completeness

    today = datetime.now(UTC).date()
    try:
        which = date.fromisoformat(day) if day else today - timedelta(days=1)
    except ValueError:
        raise PaywallError(f"--day: {day!r} is not a date (YYYY-MM-DD)") from None
    if which > today:
        raise PaywallError(f"--day: {which} is in the future")
    settings = get_settings()
    db = engine(settings)
    report = completeness.check(db, which, settings.events_grace_seconds)
    grace = f"{settings.events_grace_seconds:.0f}s"
    table = Table(
        "schema", "published", "audited", "gaps", "in flight", "unpublished",
        title=f"events of {which} (UTC); those published in the last {grace} are in flight",
    )  # fmt: skip
    for s in report.schemas:
        table.add_row(
            s.schema,
            *map(str, (s.published, s.audited, len(s.missing), s.in_flight, s.unpublished)),
        )
    console.print(table)
    if report.complete:
        console.print("no gaps: every published event is in the audit log")
        return
    missing = [(s.schema, event_id) for s in report.schemas for event_id in s.missing]
    for schema, event_id in missing[:MAX_LISTED]:
        console.print(f"missing {schema} {event_id}")
    if len(missing) > MAX_LISTED:
        console.print(f"… and {len(missing) - MAX_LISTED} more")
    if not repair:
        err_console.print(f"{report.gaps} event(s) missing; --repair republishes them")
        raise typer.Exit(1)
    requeued = sum(completeness.repair(db, report).values())
    console.print(
        f"requeued {requeued} event(s): the relay publishes them again; "
        f"check again in {grace} to confirm"
    )
