"""MRR per month and currency from the warehouse's `marts.mrr_monthly`, and its chart.

The marts are the one definition of MRR (dbt/models/marts/mrr_monthly.sql): the billing
report and the demo read them rather than recomputing MRR from billing's tables.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from assets.shared import markdown_table

# starting_mrr + the movements = mrr (the mart's own identity, see its YAML).
COMPONENTS = ("new", "expansion", "contraction", "churned", "reactivation")
MRR_SQL = (
    "SELECT month, currency, starting_mrr, new_mrr, expansion_mrr, contraction_mrr, "
    "churned_mrr, reactivation_mrr, mrr FROM marts.mrr_monthly ORDER BY month, currency"
)


@dataclass(frozen=True)
class MonthMrr:
    """One month of one currency, major units."""

    month: date
    currency: str
    starting: float
    components: dict[str, float]
    mrr: float

    @property
    def bridged(self) -> float:
        return self.starting + sum(self.components.values())


def mrr_rows(records: list[dict[str, Any]]) -> list[MonthMrr]:
    """The mart's rows (as the warehouse query returns them) as MonthMrr."""

    def month_of(value: Any) -> date:
        # A date, a datetime or pandas' Timestamp, by driver: the ISO day is common to all.
        return date.fromisoformat(str(value)[:10])

    return [
        MonthMrr(
            month=month_of(r["month"]),
            currency=str(r["currency"]),
            starting=float(r["starting_mrr"] or 0),
            components={c: float(r[f"{c}_mrr"] or 0) for c in COMPONENTS},
            mrr=float(r["mrr"] or 0),
        )
        for r in records
    ]


def mrr_table(rows: list[MonthMrr]) -> str:
    """Markdown: a row per month and currency, MRR and its components."""
    body: list[list[object]] = [
        [
            r.month.strftime("%Y-%m"),
            r.currency.upper(),
            f"{r.starting:,.2f}",
            *(f"{r.components[c]:,.2f}" for c in COMPONENTS),
            f"{r.mrr:,.2f}",
        ]
        for r in rows
    ]
    return markdown_table(["month", "currency", "starting", *COMPONENTS, "mrr"], body)


def render_chart(rows: list[MonthMrr]) -> bytes:
    """A PNG: MRR per month (a bar per currency), and under it the month's movements
    (new, expansion, reactivation up; contraction, churned down) of every currency."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a server, a Dagster run or the demo's terminal
    import matplotlib.pyplot as plt

    months = sorted({r.month for r in rows})
    currencies = sorted({r.currency for r in rows})
    by = {(r.month, r.currency): r for r in rows}
    labels = [m.strftime("%Y-%m") for m in months]
    xs = list(range(len(months)))
    width = 0.8 / max(len(currencies), 1)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    for i, cur in enumerate(currencies):
        values = [by[(m, cur)].mrr if (m, cur) in by else 0.0 for m in months]
        offset = [x + (i - (len(currencies) - 1) / 2) * width for x in xs]
        bars = top.bar(offset, values, width, label=f"MRR ({cur.upper()})")
        top.bar_label(bars, fmt="%.0f", fontsize=8)
    top.set_title("Monthly recurring revenue")
    top.legend(loc="upper left")
    top.margins(y=0.15)
    colors = {
        "new": "#2e8b57",
        "expansion": "#4682b4",
        "reactivation": "#9acd32",
        "contraction": "#ff8c00",
        "churned": "#dc382d",
    }
    up = [0.0] * len(months)
    down = [0.0] * len(months)
    for comp in COMPONENTS:
        values = [
            sum(by[(m, c)].components[comp] for c in currencies if (m, c) in by) for m in months
        ]
        base = [down[j] if v < 0 else up[j] for j, v in enumerate(values)]
        bottom.bar(xs, values, 0.6, bottom=base, label=comp, color=colors[comp])
        for j, v in enumerate(values):
            if v < 0:
                down[j] += v
            else:
                up[j] += v
    bottom.axhline(0, color="#333333", linewidth=0.8)
    bottom.margins(y=0.1)
    bottom.set_title("MRR movements")
    # Under the axis: the movements' bars fill the panel's height.
    bottom.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=8, ncols=len(COMPONENTS)
    )
    bottom.set_xticks(xs, labels)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()


def write_chart(rows: list[MonthMrr], path: Path) -> bytes:
    png = render_chart(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return png


def inline_image(png: bytes, alt: str) -> str:
    """Markdown showing the PNG itself (a data URI): Dagster's UI renders it in the
    asset's metadata with no file server behind it."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
