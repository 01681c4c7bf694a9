"""`paywall probe …`: what the kubelet runs to ask a worker whether it is alive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Liveness probes (run by the kubelet).")

HeartbeatFile = Annotated[
    Path | None,
    typer.Option(
        "--heartbeat",
        help="Touch this file on progress (read by `paywall probe heartbeat`, the liveness probe).",
    ),
]


@app.command()
def heartbeat(
    path: Annotated[Path, typer.Argument(help="The worker's --heartbeat file.")],
    max_age: Annotated[
        float, typer.Option(help="Seconds without progress after which the worker is stuck.", min=1)
    ] = 120.0,
) -> None:
    """Exit 0 when the worker made progress in the last MAX_AGE seconds, else 1."""
    from streaming.heartbeat import age_seconds

    age = age_seconds(path)
    if age is None or age > max_age:
        since = "never" if age is None else f"{age:.0f}s ago"
        typer.echo(f"stuck: last progress {since} (allowed {max_age:.0f}s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"alive: progress {age:.0f}s ago")
