"""The invoice as a document: an HTML page and a PDF, from one Jinja2 template
(templates/invoice.html.j2).

The PDF is the template's body laid out by fpdf2's HTML renderer (pure Python, from PyPI:
no system libraries, so the same image renders it everywhere). Amounts are shown in major
units with the currency's code; every value is autoescaped.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from fpdf import FPDF
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from transactional.billing.models import Invoice

TEMPLATES_DIR = Path(__file__).parent / "templates"


def _money(amount: int, currency: str) -> str:
    # Every currency the plans use has two decimals (Stripe's zero-decimal ones are not sold).
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) // 100:,}.{abs(amount) % 100:02d} {currency.upper()}"


def _day(value: datetime | date) -> str:
    return value.strftime("%Y-%m-%d")


_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    undefined=StrictUndefined,
    autoescape=select_autoescape(["html", "html.j2"]),
)
_ENV.filters["money"] = _money
_ENV.filters["day"] = _day


def html(invoice: Invoice, *, standalone: bool = True) -> str:
    return _ENV.get_template("invoice.html.j2").render(invoice=invoice, standalone=standalone)


def pdf(invoice: Invoice) -> bytes:
    document = FPDF(format="A4")
    document.set_title(f"Invoice {invoice.id}")
    document.set_creator("paywall billing")
    document.add_page()
    document.set_font("Helvetica", size=10)
    document.write_html(html(invoice, standalone=False))
    return bytes(document.output())
