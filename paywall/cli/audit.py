"""`paywall audit`: the hash-chained audit log."""

from __future__ import annotations

import typer
from rich.console import Console

from paywall.settings import get_settings

audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 at the first broken row."""
    from paywall.db import engine
    from streaming.consumers.audit import verify

    result = verify(engine(get_settings()))
    if not result.ok:
        Console(stderr=True).print(
            f"[red]audit chain broken at seq {result.first_broken_seq}[/] "
            f"({result.rows} rows verified before it)"
        )
        raise typer.Exit(1)
    Console().print(f"audit chain intact: {result.rows} rows")
