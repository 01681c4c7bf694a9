"""The portal's pages, rendered from Jinja2 templates (templates/*.html.j2), autoescaped.

Server-rendered HTML with its styles inline: the pages work with no script and load
nothing from anywhere else (the browser test runs them with every other host blocked).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from transactional.portal.api import Overview

TEMPLATES_DIR = Path(__file__).parent / "templates"
# Pages hold a customer's data: never cached, never framed, no script of anyone's.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None or currency is None:
        return "-"
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) // 100:,}.{abs(amount) % 100:02d} {currency.upper()}"


def _day(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d") if value else "-"


_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    undefined=StrictUndefined,
    autoescape=select_autoescape(["html", "html.j2"]),
)
_ENV.filters["money"] = _money
_ENV.filters["day"] = _day


def overview(view: Overview, csrf: str, key: str, notes: dict[str, str]) -> str:
    """The portal's one page: plan, next invoice, card, invoices; and the forms that change
    them. `key` is the plan change's Idempotency-Key: a form sent twice changes once."""
    return _ENV.get_template("overview.html.j2").render(
        view=view, csrf=csrf, key=key, notes=notes, choices=_choices(view)
    )


def _choices(view: Overview) -> list[dict[str, Any]]:
    """The plans a customer may move to: on sale, in its currency and interval."""
    plan = view.plan
    if plan is None or view.subscription is None:
        return []
    return [
        p
        for p in view.plans
        if p["id"] != view.subscription["plan_id"]
        and p["currency"] == plan["currency"]
        and p["interval"] == plan["interval"]
    ]


def message(title: str, text: str, action: tuple[str, str] | None = None) -> str:
    """A page that only says something (an expired link, a refused login)."""
    return _ENV.get_template("message.html.j2").render(title=title, text=text, action=action)
