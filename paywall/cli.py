"""The `paywall` command: settings, the local stack, migrations, health and the demo."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from paywall.errors import ConfigError, PaywallError
from paywall.settings import get_settings, reset_settings, state_dir

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
stack_app = typer.Typer(no_args_is_help=True, help="Real servers on loopback for local use.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations (Alembic).")
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")

console = Console(log_path=False)
err_console = Console(stderr=True)


def _stack():
    from paywall.stack.local import LocalStack

    return LocalStack(state_dir())


@app.command()
def config() -> None:
    """Print the effective settings, secrets masked."""
    table = Table("setting", "value", title="effective settings")
    for key, value in get_settings().masked().items():
        table.add_row(key, value)
    console.print(table)


@stack_app.command("up")
def stack_up() -> None:
    """Start every part the environment does not point at, and wait until each is ready."""
    stack = _stack()
    with console.status("starting the local stack…"):
        stack.up(lambda name, msg: console.log(f"{name}: {msg}"))
    _print_status(stack)


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly what `stack up` started."""
    _stack().down(lambda name, msg: console.log(f"{name}: {msg}"))


@stack_app.command("status")
def stack_status() -> None:
    """Show which parts run, by PID, and which come from the environment."""
    _print_status(_stack())


def _print_status(stack: object) -> None:
    from paywall.stack.local import LocalStack

    assert isinstance(stack, LocalStack)
    table = Table("part", "mode", "pid", "where", title=f"local stack ({stack.root})")
    for part in stack.status():
        table.add_row(part.name, part.mode, str(part.pid or ""), part.detail)
    console.print(table)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "heads") -> None:
    """Apply migrations up to REVISION (default: every service's head)."""
    from paywall import db

    db.upgrade(get_settings(), revision)
    console.print(f"database at revision {db.current_revision(get_settings())}")


@app.command()
def health() -> None:
    """Check every part with the configured settings; exit 1 if any is unhealthy."""
    if not _print_health():
        raise typer.Exit(1)


def _print_health() -> bool:
    from paywall.health import check_all

    results = check_all(get_settings())
    table = Table("part", "status", "detail", "ms", title="health")
    for r in results:
        status = "[green]healthy[/]" if r.ok else "[red]unhealthy[/]"
        table.add_row(r.part, status, r.detail, f"{r.seconds * 1000:.0f}")
    console.print(table)
    return all(r.ok for r in results)


@app.command()
def serve(
    service: Annotated[
        str, typer.Option(help="auth, customer, subscription, payment, registration or all")
    ] = "all",
    check: Annotated[bool, typer.Option(help="Only check the settings and the port.")] = False,
) -> None:
    """Serve the HTTP API of one service, or of all of them in one process."""
    import uvicorn

    from paywall.stack.process import port_open
    from transactional.services import SERVICES

    settings = get_settings()
    if service != "all" and service not in SERVICES:
        raise PaywallError(f"--service: unknown service {service!r}")
    if port_open(settings.api_host, settings.api_port):
        raise ConfigError("API_PORT", f"{settings.api_host}:{settings.api_port} is already in use")
    if check:
        console.print(f"ready to serve {service} on {settings.api_base_url}")
        return
    from paywall.logs import configure_logging

    configure_logging(settings)
    from transactional.services import combined_app, service_app

    api = combined_app() if service == "all" else service_app(service)
    uvicorn.run(api, host=settings.api_host, port=settings.api_port, log_config=None)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Leave the stack running afterwards.")] = False,
) -> None:
    """The end-to-end demo on the local stack: stack up → migrate → health → summary."""
    from paywall import db

    stack = _stack()
    before = {p.name for p in stack.status() if p.mode == "started"}
    try:
        with console.status("starting the local stack…"):
            stack.up(lambda name, msg: console.log(f"{name}: {msg}"))
        reset_settings()
        settings = get_settings()
        with console.status("migrating the database…"):
            db.upgrade(settings)
        console.log(f"database at revision {db.current_revision(settings)}")
        healthy = _print_health()
        _print_status(stack)
        if not healthy:
            raise PaywallError("some parts are unhealthy (see the table above)")
    finally:
        if not keep and not before:
            stack.down(lambda name, msg: console.log(f"{name}: {msg}"))
    if keep or before:
        console.print("The stack keeps running; stop it with `paywall stack down`.")


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so `finally` blocks stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        app()
    except PaywallError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            err_console.print(f"[red]error:[/] {where}: {msg}", highlight=False)
        sys.exit(2)
