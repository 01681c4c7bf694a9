"""`paywall housekeeping …`: the periodic clean-ups, each run by its own CronJob
(deploy/k8s/base/jobs/housekeeping.yaml). Each is safe to run again at any time."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from paywall.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(no_args_is_help=True, help="Periodic clean-ups (run by CronJobs).")
console = Console(log_path=False)


def _engine() -> Engine:
    from paywall.db import engine

    return engine(get_settings())


@app.command("signing-keys")
def signing_keys() -> None:
    """Rotate auth's signing key on schedule: publish the next one ahead, switch to it,
    retire the old one, forget keys no JWKS shows any more."""
    from transactional.auth.keys import scheduled_rotation

    with _engine().begin() as conn:
        console.print(f"signing keys: {scheduled_rotation(conn)}")


@app.command("auth-tokens")
def auth_tokens() -> None:
    """Delete authorization codes, refresh tokens and revocations nothing can use any more."""
    from transactional.auth.repository import purge_expired

    with _engine().begin() as conn:
        console.print(f"auth: deleted {purge_expired(conn)} expired row(s)")


@app.command()
def outbox() -> None:
    """Delete outbox rows published more than OUTBOX_RETENTION_DAYS ago (never unpublished)."""
    from streaming.outbox_retention import purge_published

    days = get_settings().outbox_retention_days
    deleted = purge_published(_engine(), timedelta(days=days))
    per_schema = ", ".join(f"{schema} {n}" for schema, n in deleted.items())
    total = sum(deleted.values())
    console.print(f"outbox: deleted {total} row(s) published over {days} days ago ({per_schema})")


@app.command("idempotency-keys")
def idempotency_keys() -> None:
    """Forget expired registration, subscription and catalog keys (payment keys are kept
    for good)."""
    from transactional.common.idempotency import KEY_LIFETIME
    from transactional.registration.repository import purge_expired_keys
    from transactional.subscription.catalog_repository import forget_requests
    from transactional.subscription.repository import forget_request_keys

    with _engine().begin() as conn:
        signups = purge_expired_keys(conn)
        subscriptions = forget_request_keys(conn, KEY_LIFETIME)
        catalog = forget_requests(conn, KEY_LIFETIME)
    console.print(
        f"idempotency keys: {signups} finished signup(s) deleted, "
        f"{subscriptions} subscription key(s) cleared, {catalog} catalog key(s) deleted"
    )


@app.command()
def webhooks() -> None:
    """Delete webhook events and delivery logs older than WEBHOOK_RETENTION_DAYS (never an
    event still being delivered)."""
    from streaming.webhooks.store import purge

    days = get_settings().webhook_retention_days
    with _engine().begin() as conn:
        events, deliveries = purge(conn, timedelta(days=days))
    console.print(
        f"webhooks: deleted {events} event(s) and {deliveries} more finished delivery(ies) "
        f"over {days} days old"
    )
