"""`paywall events dead-letters list|show|replay`: what each consumer parked, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from paywall.errors import PaywallError
from paywall.settings import get_settings

if TYPE_CHECKING:
    from streaming.dead_letters import Filters

app = typer.Typer(
    no_args_is_help=True,
    help="Messages a consumer could not handle (paywall.dlq.<consumer>): list, show, replay.",
)
console = Console(log_path=False)
err_console = Console(stderr=True)

Consumer = Annotated[str, typer.Argument(help="notification or audit")]
EventType = Annotated[str | None, typer.Option(help="Only this event type.")]
EventId = Annotated[str | None, typer.Option(help="Only this event id.")]
Reason = Annotated[str | None, typer.Option(help="Only reasons containing this text.")]
Since = Annotated[
    str | None, typer.Option(help="Only those parked at or after this UTC time (ISO 8601).")
]
Offset = Annotated[int | None, typer.Option(help="Only the one at this offset.", min=0)]


def _filters(
    offset: int | None,
    event_id: str | None,
    event_type: str | None,
    reason: str | None,
    since: str | None,
) -> Filters:
    from streaming.dead_letters import Filters

    when = None
    if since is not None:
        try:
            when = datetime.fromisoformat(since)
        except ValueError:
            raise PaywallError(f"--since: {since!r} is not an ISO 8601 time") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return Filters(offset, event_id, event_type, reason, when)


def _consumer(name: str) -> str:
    from paywall.cli import consumers

    return consumers.checked(name)


@app.command("list")
def list_(
    consumer: Consumer,
    event_type: EventType = None,
    event_id: EventId = None,
    reason: Reason = None,
    since: Since = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.", min=1)] = 100,
) -> None:
    """One line per dead letter: offset, when, event, and the reason it was parked."""
    from streaming.dead_letters import read

    wanted = _filters(None, event_id, event_type, reason, since)
    letters = list(read(get_settings(), _consumer(consumer), wanted))
    table = Table("offset", "parked at (UTC)", "event type", "event id", "reason")
    for letter in letters[:limit]:
        when = letter.timestamp.strftime("%Y-%m-%d %H:%M:%S") if letter.timestamp else ""
        table.add_row(str(letter.offset), when, letter.event_type, letter.event_id, letter.reason)
    console.print(table)
    console.print(
        f"{len(letters)} dead letter(s)"
        + (f", first {limit} shown" if len(letters) > limit else "")
    )


@app.command()
def show(
    consumer: Consumer,
    offset: Annotated[int, typer.Argument(help="The dead letter's offset (see `list`).", min=0)],
) -> None:
    """One dead letter in full: headers, where it was read, and its value."""
    import json

    from streaming.dead_letters import read

    found = list(
        read(get_settings(), _consumer(consumer), _filters(offset, None, None, None, None))
    )
    if not found:
        raise PaywallError(f"offset: no dead letter of {consumer} at offset {offset}")
    letter = found[0]
    console.print(f"offset {letter.offset}, parked at {letter.timestamp}, from {letter.source}")
    console.print(f"reason: {letter.reason}")
    for name, value in sorted(letter.headers.items()):
        console.print(f"header {name}: {value.decode(errors='replace')}", highlight=False)
    body = letter.envelope
    if body is None:
        console.print(repr(letter.value))
    else:
        console.print_json(json.dumps(body))


@app.command()
def replay(
    consumer: Consumer,
    offset: Offset = None,
    event_type: EventType = None,
    event_id: EventId = None,
    reason: Reason = None,
    since: Since = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every dead letter of the consumer (no filter).")
    ] = False,
) -> None:
    """Hand the chosen dead letters to the consumer's handler again; exit 1 if any fails.

    Safe to repeat: the consumer dedupes by event id."""
    from paywall.logs import configure_logging
    from streaming import dead_letters

    wanted = _filters(offset, event_id, event_type, reason, since)
    if wanted == dead_letters.Filters() and not all_:
        raise PaywallError("replay: name what to replay (--offset, --event-id, ... or --all)")
    settings = get_settings()
    configure_logging(settings)
    letters = list(dead_letters.read(settings, _consumer(consumer), wanted))
    from paywall.cli import consumers

    handler = consumers.handler(consumer, settings)
    results = dead_letters.replay(letters, handler)
    failed = [(letter, why) for letter, why in results if why is not None]
    for letter, why in failed:
        err_console.print(f"offset {letter.offset}: still failing: {why}", highlight=False)
    console.print(f"replayed {len(results) - len(failed)} of {len(results)} dead letter(s)")
    if failed:
        raise typer.Exit(1)
