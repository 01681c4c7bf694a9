"""`paywall plans`: a tenant's catalog from the operator's shell.

Run on the database directly, through the subscription service's own rules
(`transactional.subscription.catalog`), as an internal caller: no running API and no token
needed. The API is the same: `POST /v1/plans`, `POST /v1/plans/{id}/archive|prices|migrate`.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from paywall.errors import PaywallError
from paywall.settings import get_settings

plans_app = typer.Typer(no_args_is_help=True, help="Plans and prices of a tenant's catalog.")
console = Console(log_path=False)
PAGE = 100
JsonOption = Annotated[bool, typer.Option("--json", help="Print as JSON.")]


def _operator() -> Any:
    from transactional.common.security import Principal

    # The CLI is the operator: an internal caller, which may act on any tenant's catalog.
    return Principal("paywall-cli", "paywall-cli", frozenset({"internal"}), None, None)


def _run(step: Callable[[Any], Any]) -> Any:
    """`step` on the database engine; a refusal is one line (exit 2), never a trace."""
    from paywall.db import engine
    from transactional.common.errors import DomainError

    try:
        return step(engine(get_settings()))
    except DomainError as exc:
        raise PaywallError(str(exc)) from None


def _key() -> str:
    # Each command is one request: a fresh key, so the same command twice acts twice (a
    # second price version), as two API calls with two keys would.
    return str(uuid.uuid4())


def _show(plans: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(plans, indent=2) + "\n")
        return
    table = Table("id", "tenant", "name", "price", "version", "interval", "trial", "state")
    for p in plans:
        table.add_row(
            p["id"],
            p["tenant_id"] or "(platform)",
            p["name"],
            f"{p['amount']} {p['currency']}",
            str(p["price_version"]),
            p["interval"],
            f"{p['trial_days']} d",
            "archived" if p["archived_at"] else "on sale",
        )
    console.print(table)


@plans_app.command("create")
def plans_create(
    name: Annotated[str, typer.Option(help="Shown to customers and on invoices.")],
    amount: Annotated[int, typer.Option(help="Price per interval, in minor units (cents).")],
    currency: Annotated[str, typer.Option(help="Lower-case code, e.g. usd.")],
    interval: Annotated[str, typer.Option(help="month or year.")],
    tenant: Annotated[
        str | None, typer.Option(help="The tenant selling it (omitted: the platform's catalog).")
    ] = None,
    trial_days: Annotated[int, typer.Option(help="Free days before the first charge.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Create a plan, at price version 1; prints it (its id is made for it)."""
    from pydantic import ValidationError

    from transactional.subscription import catalog
    from transactional.subscription.catalog_models import PlanCreate

    try:
        body = PlanCreate(
            name=name,
            amount=amount,
            currency=currency,
            interval=interval,  # type: ignore[arg-type]
            trial_days=trial_days,
            tenant_id=tenant,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "plan"
        raise PaywallError(f"plan {name!r}: {field}: {first['msg']}") from None
    answer = _run(lambda db: catalog.create_plan(db, _operator(), _key(), body))
    _show([answer.body], as_json)


@plans_app.command("list")
def plans_list(
    tenant: Annotated[
        str | None,
        typer.Option(help="This tenant's catalog: its plans and the platform's (default: all)."),
    ] = None,
    archived: Annotated[bool, typer.Option(help="Include plans no longer sold.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Plans, cheapest first, at their current price."""
    from transactional.subscription import repository

    catalog = repository.Catalog(tenant, every=tenant is None)

    def fetch(db: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after: tuple[int, str] | None = None
        with db.connect() as conn:
            while True:
                page = repository.plans(conn, catalog, after, PAGE, archived=archived)
                found += [p.model_dump(mode="json") for p in page]
                if len(page) < PAGE:
                    return found
                after = page[-1].amount, page[-1].id

    _show(_run(fetch), as_json)


@plans_app.command("archive")
def plans_archive(plan_id: Annotated[str, typer.Argument()]) -> None:
    """Stop selling a plan; its subscribers keep renewing at their price."""
    from transactional.subscription import catalog

    answer = _run(lambda db: catalog.archive(db, _operator(), _key(), plan_id))
    console.print(f"plan {answer.body['id']} archived")


@plans_app.command("price")
def plans_price(
    plan_id: Annotated[str, typer.Argument()],
    amount: Annotated[int, typer.Option(help="The new price per interval, in minor units.")],
    as_json: JsonOption = False,
) -> None:
    """A new price version: what new subscribers pay. Existing ones keep theirs until
    `paywall plans migrate`."""
    from pydantic import ValidationError

    from transactional.subscription import catalog
    from transactional.subscription.catalog_models import PriceCreate

    try:
        body = PriceCreate(amount=amount)
    except ValidationError as exc:
        raise PaywallError(f"amount: {exc.errors()[0]['msg']}") from None
    answer = _run(lambda db: catalog.add_price(db, _operator(), _key(), plan_id, body))
    _show([answer.body], as_json)


@plans_app.command("migrate")
def plans_migrate(
    plan_id: Annotated[str, typer.Argument()],
    subscription: Annotated[
        uuid.UUID | None, typer.Option(help="Only this subscription (default: every one).")
    ] = None,
) -> None:
    """Move the plan's subscribers to its current price, from their next renewal."""
    from transactional.subscription import catalog
    from transactional.subscription.catalog_models import PlanMigrate

    body = PlanMigrate(subscription_id=subscription)
    answer = _run(lambda db: catalog.migrate(db, _operator(), _key(), plan_id, body))
    plan = answer.body["plan"]
    console.print(
        f"{answer.body['subscriptions']} subscription(s) of {plan['id']} move to price "
        f"version {plan['price_version']} ({plan['amount']} {plan['currency']}) at their "
        "next renewal"
    )
