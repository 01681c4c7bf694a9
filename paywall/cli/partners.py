"""`paywall tenants`, `paywall clients` and `paywall cards`: onboarding a partner.

The operator's side of the admin API, run on the database directly (the same rules, in
`transactional.auth.admin`): no running API and no token needed. A client's secret is
printed once, when it is made or rotated; only its hash is kept.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection

from paywall.errors import PaywallError, invalid
from paywall.settings import get_settings

T = TypeVar("T")
tenants_app = typer.Typer(no_args_is_help=True, help="Tenants: the partners.")
clients_app = typer.Typer(no_args_is_help=True, help="OAuth clients of tenants and operators.")
cards_app = typer.Typer(no_args_is_help=True, help="Test cards on the local Stripe stand-in.")
console = Console(log_path=False)
err_console = Console(stderr=True)


class Format(StrEnum):
    text = "text"
    env = "env"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", help="text; env: KEY=value lines for a shell; json.")
]
PAGE = 100


@contextmanager
def _transaction() -> Iterator[Connection]:
    """A transaction on auth's schema; a refusal is one line (exit 2), never a trace."""
    from paywall.db import engine
    from transactional.common.errors import DomainError

    try:
        with engine(get_settings()).begin() as conn:
            yield conn
    except DomainError as exc:
        raise PaywallError(str(exc)) from None


def _all(fetch: Callable[[Connection, str | None], tuple[list[T], str | None]]) -> list[T]:
    with _transaction() as conn:
        found, cursor = fetch(conn, None)
        while cursor is not None:
            more, cursor = fetch(conn, cursor)
            found += more
    return found


@tenants_app.command("create")
def tenants_create(
    tenant_id: Annotated[str, typer.Argument(help="Lower-case letters, digits, dashes.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
) -> None:
    """Create a tenant."""
    from pydantic import ValidationError

    from transactional.auth import admin
    from transactional.auth.admin_models import TenantCreate

    try:
        body = TenantCreate(id=tenant_id, name=name or tenant_id)
    except ValidationError as exc:
        raise PaywallError(f"tenant id {tenant_id!r}: {exc.errors()[0]['msg']}") from None
    with _transaction() as conn:
        tenant = admin.create_tenant(conn, body, None).body
    console.print(f"tenant {tenant['id']} created ({tenant['name']})")


@tenants_app.command("list")
def tenants_list(output: FormatOption = Format.text) -> None:
    """Every tenant, by id."""
    from transactional.auth import admin

    def page(conn: Connection, cursor: str | None) -> tuple[list[Any], str | None]:
        found = admin.list_tenants(conn, PAGE, cursor)
        return found.data, found.next_cursor

    tenants = [t.model_dump(mode="json") for t in _all(page)]
    if output is not Format.text:
        _print_json(tenants)
        return
    table = Table("id", "name", "created", title=f"{len(tenants)} tenant(s)")
    for t in tenants:
        table.add_row(t["id"], t["name"], t["created_at"])
    console.print(table)


@clients_app.command("create")
def clients_create(
    tenant: Annotated[str | None, typer.Option(help="The tenant it acts for.")] = None,
    name: Annotated[str | None, typer.Option(help="What it is (default: its tenant's).")] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="A scope; repeat it (default: every partner scope).")
    ] = None,
    admin_client: Annotated[
        bool,
        typer.Option("--admin", help="An operator client of no tenant, with scope admin."),
    ] = False,
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option(
            help="A login client for the tenant's web or mobile app, sending its users back "
            "here (repeat it); no secret, PKCE."
        ),
    ] = None,
    output: FormatOption = Format.text,
) -> None:
    """Create a confidential client (client_credentials), its secret printed once; or, with
    --redirect-uri, a login client for the tenant's customers."""
    from pydantic import ValidationError

    from transactional.auth import admin
    from transactional.auth.admin_models import ClientCreate
    from transactional.auth.config import ADMIN_SCOPE

    if admin_client == (tenant is not None):
        raise PaywallError("give either --tenant TENANT or --admin")
    kind = "web app" if redirect_uri else "backend"
    fields: dict[str, Any] = {
        "tenant_id": tenant,
        "name": name or (f"{tenant} {kind}" if tenant else "operator"),
        "redirect_uris": redirect_uri or [],
    }
    if admin_client or scope:
        fields["scopes"] = [ADMIN_SCOPE] if admin_client else scope
    try:
        body = ClientCreate(**fields)
    except ValidationError as exc:
        raise invalid(exc) from None
    with _transaction() as conn:
        made = admin.create_client_for(conn, body, None).body
    _print_secret(made, output)


@clients_app.command("list")
def clients_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's clients.")] = None,
    output: FormatOption = Format.text,
) -> None:
    """Clients by id, with their tenant, scopes and whether they are disabled."""
    from transactional.auth import admin

    def page(conn: Connection, cursor: str | None) -> tuple[list[Any], str | None]:
        found = admin.list_clients(conn, tenant, PAGE, cursor)
        return found.data, found.next_cursor

    clients = [c.model_dump(mode="json") for c in _all(page)]
    if output is not Format.text:
        _print_json(clients)
        return
    table = Table("client_id", "tenant", "name", "scopes", "disabled", title="clients")
    for c in clients:
        table.add_row(
            c["client_id"],
            c["tenant_id"] or "",
            c["name"],
            " ".join(c["scopes"]),
            c["disabled_at"] or "",
        )
    console.print(table)


@clients_app.command("rotate-secret")
def clients_rotate_secret(
    client_id: Annotated[str, typer.Argument()], output: FormatOption = Format.text
) -> None:
    """A new secret for the client; the old one stops working now. Printed once."""
    from transactional.auth import admin

    with _transaction() as conn:
        rotated = admin.rotate_secret(conn, client_id).model_dump(mode="json")
    _print_secret(rotated, output)


@clients_app.command("disable")
def clients_disable(client_id: Annotated[str, typer.Argument()]) -> None:
    """No more tokens for the client, and those it holds stop working at every service."""
    from transactional.auth import admin

    with _transaction() as conn:
        admin.disable_client(conn, client_id)
    console.print(f"client {client_id} disabled; its tokens are revoked")


@cards_app.command("create")
def cards_create(
    declined: Annotated[
        bool, typer.Option(help="A card Stripe attaches but declines when charged.")
    ] = False,
) -> None:
    """Print the id of a new test payment method (pm_…) on the local Stripe stand-in."""
    from paywall.clients import DECLINED_CARD, GOOD_CARD, make_test_card

    settings = get_settings()
    if settings.stripe_api_base is None:  # real Stripe: test cards come from its dashboard
        raise PaywallError("STRIPE_API_BASE: test cards are made on the local Stripe only")
    sys.stdout.write(f"{make_test_card(settings, DECLINED_CARD if declined else GOOD_CARD)}\n")


def _print_secret(client: dict[str, Any], output: Format) -> None:
    login = bool(client.get("redirect_uris"))  # a public client: no secret to show
    if output is Format.env:
        sys.stdout.write(f"CLIENT_ID={client['client_id']}\n")
        if not login:
            sys.stdout.write(f"CLIENT_SECRET={client['client_secret']}\n")
    elif output is Format.json:
        _print_json(client)
    else:
        console.print(f"client_id:     {client['client_id']}")
        if login:
            console.print(f"redirect_uris: {' '.join(client['redirect_uris'])}")
        else:
            console.print(f"client_secret: {client['client_secret']}")
        console.print(f"scopes:        {' '.join(client['scopes'])}")
    if login:
        err_console.print("A login client: no secret; its app uses PKCE (code_challenge S256).")
    else:
        err_console.print("The secret is shown this once: keep it now (only its hash is stored).")


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
