"""The `paywall` command: settings, the local stack, migrations, health and the demo."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from paywall.cli.audit import audit_app
from paywall.cli.events import app as events_app
from paywall.cli.housekeeping import app as housekeeping_app
from paywall.cli.probe import HeartbeatFile
from paywall.cli.probe import app as probe_app
from paywall.errors import ConfigError, PaywallError, error_lines, unreachable
from paywall.settings import get_settings, reset_settings, state_dir

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
stack_app = typer.Typer(no_args_is_help=True, help="Real servers on loopback for local use.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations (Alembic).")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics declared in streaming/topics.py.")
stream_app = typer.Typer(no_args_is_help=True, help="Spark Structured Streaming jobs.")
deploy_app = typer.Typer(no_args_is_help=True, help="What a deploy makes beside the manifests.")
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
app.add_typer(audit_app, name="audit")
app.add_typer(stream_app, name="stream")
app.add_typer(deploy_app, name="deploy")
app.add_typer(events_app, name="events")
app.add_typer(housekeeping_app, name="housekeeping")
app.add_typer(probe_app, name="probe")

if TYPE_CHECKING:
    from fastapi import FastAPI

console = Console(log_path=False)
err_console = Console(stderr=True)


def _add_onboarding(root: typer.Typer) -> None:
    from paywall.cli.coupons import coupons_app
    from paywall.cli.partners import cards_app, clients_app, tenants_app
    from paywall.cli.plans import plans_app
    from paywall.cli.webhooks import app as webhooks_app

    root.add_typer(webhooks_app, name="webhooks")
    root.add_typer(coupons_app, name="coupons")
    root.add_typer(tenants_app, name="tenants")
    root.add_typer(clients_app, name="clients")
    root.add_typer(cards_app, name="cards")
    root.add_typer(plans_app, name="plans")


_add_onboarding(app)


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


def _cores() -> int:
    return len(os.sched_getaffinity(0))


@app.command()
def serve(
    service: Annotated[
        str, typer.Option(help="auth, customer, subscription, payment, registration or all")
    ] = "all",
    host: Annotated[
        str | None, typer.Option(help="Bind to this address (default: API_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Bind to this port (default: API_PORT, 8000).", min=1, max=65535),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default: WEB_CONCURRENCY, else the number of cores).",
            envvar="WEB_CONCURRENCY",
            min=1,
            max=256,
            show_default=False,
        ),
    ] = None,
    check: Annotated[bool, typer.Option(help="Only check the settings and the port.")] = False,
) -> None:
    """Serve the HTTP API of one service, or of all of them, from worker processes."""
    # The services reach each other at API_HOST:API_PORT: the options set them for all.
    if host is not None:
        os.environ["API_HOST"] = host
    if port is not None:
        os.environ["API_PORT"] = str(port)
    reset_settings()
    settings = get_settings()
    from paywall.stack.process import port_open
    from transactional import services
    from transactional.common import workers as worker_pool

    # Before the workers import any service: prometheus_client reads it at import.
    with worker_pool.metrics_dir():
        if service != "all" and service not in services.SERVICES:
            raise PaywallError(f"--service: unknown service {service!r}")
        if port_open(settings.api_host, settings.api_port):
            where = f"{settings.api_host}:{settings.api_port}"
            raise ConfigError("API_PORT", f"{where} is already in use")
        count = workers or _cores()
        if check:
            console.print(f"ready to serve {service} on {settings.api_base_url} ({count} workers)")
            return

        def factory() -> FastAPI:
            return services.combined_app() if service == "all" else services.service_app(service)

        worker_pool.run_workers(factory, settings.api_host, settings.api_port, count)


@topics_app.command("sync")
def topics_sync() -> None:
    """Create every declared topic the broker lacks."""
    from streaming.admin import sync_topics

    settings = get_settings()
    created = sync_topics(settings)
    console.print(
        f"created: {', '.join(created) or 'nothing (all topics exist)'} "
        f"(replication factor {settings.replication_factor}, "
        f"min.insync.replicas {settings.min_insync_replicas})"
    )


MetricsPort = Annotated[
    int | None, typer.Option(help="Serve Prometheus /metrics on this port.", min=1, max=65535)
]


def _serve_metrics(port: int | None) -> None:
    if port is not None:
        from prometheus_client import start_http_server

        try:
            start_http_server(port)
        except OSError as exc:
            raise PaywallError(f"--metrics-port: cannot listen on {port}: {exc.strerror}") from exc


@app.command()
def relay(
    once: Annotated[bool, typer.Option(help="Publish what is pending, then exit.")] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=10_000,
            show_default="500",
            help="Rows per transaction and broker flush: larger waits less on acks, holds "
            "a schema's lock longer and resends more after a broker failure.",
        ),
    ] = None,
    metrics_port: MetricsPort = None,
    heartbeat: HeartbeatFile = None,
) -> None:
    """Publish committed outbox rows of every service to Kafka."""
    from paywall.db import engine
    from paywall.logs import configure_logging
    from streaming import relay as outbox_relay

    settings = get_settings()
    configure_logging(settings)
    _serve_metrics(metrics_port)
    batch_size = batch_size or outbox_relay.BATCH_SIZE
    if once:
        producer = outbox_relay.make_producer(settings)
        published = outbox_relay.drain(engine(settings), producer, batch_size)
        console.print(f"published {published} event(s)")
        return
    from streaming.heartbeat import Heartbeat

    outbox_relay.run(
        engine(settings),
        settings,
        stop=lambda: False,
        heartbeat=Heartbeat(heartbeat),
        batch_size=batch_size,
    )


@app.command()
def consume(
    consumer: Annotated[str, typer.Argument(help="notification, audit, erasure or webhooks")],
    max_messages: Annotated[
        int | None, typer.Option(help="Stop after handling this many messages.")
    ] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without messages.")
    ] = None,
    group_id: Annotated[
        str | None,
        typer.Option(help="The Kafka consumer group (default: the consumer's name)."),
    ] = None,
    metrics_port: MetricsPort = None,
    heartbeat: HeartbeatFile = None,
) -> None:
    """Run one event consumer; more processes in its group share the topics' partitions."""
    import time

    from paywall.cli import consumers
    from paywall.logs import configure_logging

    consumers.checked(consumer)
    settings = get_settings()
    configure_logging(settings)
    _serve_metrics(metrics_port)
    from streaming.heartbeat import Heartbeat

    loop = consumers.loop(consumer, settings, group_id)
    loop.heartbeat = Heartbeat(heartbeat)
    handled, last = 0, time.monotonic()
    try:
        while max_messages is None or handled < max_messages:
            if loop.poll_once():
                handled, last = handled + 1, time.monotonic()
            elif idle_exit is not None and time.monotonic() - last > idle_exit:
                break
    finally:
        loop.close()
    console.print(f"{consumer}: handled {handled} message(s) {loop.stats}")


@stream_app.command("lake")
def stream_lake(
    available_now: Annotated[
        bool, typer.Option(help="Drain what is in Kafka now, then stop.")
    ] = False,
    checkpoint: Annotated[
        str | None, typer.Option(help="Checkpoint location (default: under the state dir).")
    ] = None,
    topics: Annotated[
        str | None, typer.Option(help="Comma-separated topics (default: every event topic).")
    ] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Spark Structured Streaming: every event topic → Parquet in the S3 lake, exactly once."""
    from paywall.health import check_kafka
    from paywall.logs import configure_logging
    from streaming.lake.job import run_lake_stream

    settings = get_settings()
    # Inside Spark a missing broker surfaces as a page of JVM and Python traces: check first.
    check_kafka(settings)
    configure_logging(settings)
    _serve_metrics(metrics_port)
    run_lake_stream(
        settings,
        available_now=available_now,
        checkpoint=checkpoint,
        topics=topics.split(",") if topics else None,
    )


@deploy_app.command("kong-config")
def deploy_kong_config(
    jwks: Annotated[Path, typer.Option(help="auth's /jwks.json, saved.", exists=True)],
    kong: Annotated[Path, typer.Option(help="Kong's config in git.", exists=True)] = Path(
        "deploy/kong/kong.yaml"
    ),
) -> None:
    """Print Kong's declarative config with auth's signing keys (see deploy/kong/kong.yaml)."""
    from paywall.cli.kong import kong_config

    sys.stdout.write(
        kong_config(kong.read_text(encoding="utf-8"), jwks.read_text(encoding="utf-8"))
    )


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Leave the stack running afterwards.")] = False,
    signups: Annotated[int, typer.Option(min=1, max=1000, help="How many signups.")] = 12,
) -> None:
    """The end-to-end demo on the local stack (see paywall/cli/demo_flow.py for the stages)."""
    from paywall.cli import demo_billing
    from paywall.cli import demo_flow as flow

    demo_billing.require_pdftoppm()  # before minutes of work, not after
    stack = _stack()
    before = {p.name for p in stack.status() if p.mode == "started"}
    try:
        with console.status("starting the local stack…"):
            stack.up(lambda name, msg: console.log(f"{name}: {msg}"))
        reset_settings()
        if not _print_health():
            raise PaywallError("some parts are unhealthy (see the table above)")
        flow.run(console, signups)
    finally:
        if not keep and not before:
            stack.down(lambda name, msg: console.log(f"{name}: {msg}"))
    console.print(
        "Next: `.venv/bin/paywall serve` for the API (docs at /docs), "
        "`.venv/bin/dagster dev -w workspace.yaml` for the Dagster UI (http://127.0.0.1:3000)."
    )
    if keep or before:
        console.print("The stack keeps running; stop it with `paywall stack down`.")


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so `finally` blocks stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        app()
    except PaywallError as exc:
        _error(str(exc))
        sys.exit(2)
    except ValidationError as exc:
        for line in error_lines(exc):
            _error(line)
        sys.exit(2)
    except Exception as exc:
        problem = unreachable(exc)
        if problem is None:
            raise
        _error(str(problem))
        sys.exit(2)


def _error(line: str) -> None:
    # One line however narrow the terminal, and the message as it is: never rich markup
    # (a message may hold brackets).
    err_console.print(Text.assemble(("error:", "red"), " ", line), soft_wrap=True)
