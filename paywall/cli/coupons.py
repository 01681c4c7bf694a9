"""`paywall coupons`: a tenant's coupons from the operator's shell.

Run on the database directly, through the billing service's own rules
(`transactional.billing.coupons`), acting as an internal caller for the tenant named:
no running API and no token needed. The API is the same: `POST|GET /v1/coupons`.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from paywall.errors import PaywallError
from paywall.settings import get_settings

coupons_app = typer.Typer(no_args_is_help=True, help="Coupons of a tenant: discounts on invoices.")
console = Console(log_path=False)
PAGE = 100


def _operator() -> Any:
    from transactional.common.security import Principal

    # The CLI is the operator: an internal caller, which may act for any tenant.
    return Principal("paywall-cli", "paywall-cli", frozenset({"internal"}), None, None)


def _run(step: Any) -> Any:
    from paywall.db import engine
    from transactional.common.errors import DomainError

    try:
        return step(engine(get_settings()))
    except DomainError as exc:
        raise PaywallError(str(exc)) from None


def _show(coupons: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(coupons, indent=2) + "\n")
        return
    table = Table("id", "tenant", "code", "off", "duration", "redeemed", "state", title="coupons")
    for c in coupons:
        off = f"{c['percent_off']} %" if c["percent_off"] else f"{c['amount_off']} {c['currency']}"
        periods = f" x{c['duration_periods']}" if c["duration_periods"] else ""
        limit = f"/{c['max_redemptions']}" if c["max_redemptions"] else ""
        state = "archived" if c["archived_at"] else ("live" if c["redeemable"] else "spent")
        table.add_row(
            c["id"],
            c["tenant_id"] or "",
            c["code"],
            off,
            c["duration"] + periods,
            f"{c['times_redeemed']}{limit}",
            state,
        )
    console.print(table)


@coupons_app.command("create")
def coupons_create(
    code: Annotated[str, typer.Argument(help="What customers type: letters, digits, - and _.")],
    tenant: Annotated[str, typer.Option(help="The tenant whose coupon it is.")],
    percent_off: Annotated[float | None, typer.Option(help="Percent off (two decimals).")] = None,
    amount_off: Annotated[
        int | None, typer.Option(help="Minor units off (with --currency).")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="e.g. usd, with --amount-off.")] = None,
    duration: Annotated[str, typer.Option(help="once, repeating or forever.")] = "once",
    periods: Annotated[
        int | None, typer.Option(help="Invoices, with --duration repeating.")
    ] = None,
    max_redemptions: Annotated[int | None, typer.Option(help="How many may redeem it.")] = None,
    redeem_by: Annotated[
        datetime | None, typer.Option(help="Last moment to redeem it (UTC).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Shown on invoices (default: the code).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Create a coupon of a tenant."""
    from datetime import UTC

    from pydantic import ValidationError

    from transactional.billing import coupons
    from transactional.billing.coupon_models import CouponCreate

    try:
        body = CouponCreate(
            code=code,
            name=name or code,
            percent_off=percent_off,
            amount_off=amount_off,
            currency=currency,
            duration=duration,  # type: ignore[arg-type]
            duration_periods=periods,
            max_redemptions=max_redemptions,
            redeem_by=redeem_by.replace(tzinfo=redeem_by.tzinfo or UTC) if redeem_by else None,
            tenant_id=tenant,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PaywallError(f"coupon {code!r}: {first['msg']}") from None
    answer = _run(lambda db: coupons.create_coupon(db, _operator(), str(uuid.uuid4()), body))
    _show([answer.body], as_json)


@coupons_app.command("list")
def coupons_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's coupons.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """Coupons, newest first, with how often each was redeemed."""
    from transactional.billing import coupons

    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = _run(
            lambda db, after=cursor: coupons.list_coupons(db, _operator(), PAGE, after, None)
        )
        found += [
            c.model_dump(mode="json") for c in page.data if tenant is None or c.tenant_id == tenant
        ]
        cursor = page.next_cursor
        if cursor is None:
            break
    _show(found, as_json)


@coupons_app.command("archive")
def coupons_archive(coupon_id: Annotated[uuid.UUID, typer.Argument()]) -> None:
    """No more redemptions of the coupon; discounts already made keep running."""
    from transactional.billing import coupons

    archived = _run(
        lambda db: coupons.archive_coupon(db, _operator(), coupon_id, str(uuid.uuid4()))
    )
    console.print(f"coupon {archived.code} archived")
