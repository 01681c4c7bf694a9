"""The warehouse's invoices against the billing schema's: `fct_invoices` is rebuilt from
invoice events that went through the outbox, Kafka, the lake and a load, so any event lost
or doubled on the way shows here as a difference in counts or money.

Compared per currency and status: invoices, total, amount paid and amount due, in minor
units. The warehouse lags the billing schema by its load, so both sides leave out what the
warehouse cannot have seen yet: the invoices changed after the watermark. The lake is
loaded a partition (one event type, one day) at a time, so one type can be loaded further
than another; the watermark is the earliest of the per-type newest events, the point up to
which every type is loaded. An invoice paid after it is left out on both sides, not counted
as a difference; a check run on a warehouse that lags compares less, never wrongly.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from assets.billing.reconciliation import Finding
from assets.warehouse.resources import WarehouseResource

FIGURES = ("invoices", "total", "amount_paid", "amount_due")
Key = tuple[str, str]  # (currency, status)


def invoices_match(engine: Engine, warehouse: WarehouseResource) -> Finding:
    watermark = _watermark(warehouse)
    if watermark is None:
        return Finding(passed=True, numbers={"invoices_compared": 0})
    with engine.connect() as conn:
        later = [
            str(row[0])
            for row in conn.execute(
                text("SELECT id FROM billing.invoices WHERE updated_at > :w"), {"w": watermark}
            )
        ]
        billing = _by_key(
            conn.execute(
                text(
                    "SELECT currency, status, count(*), sum(total), sum(amount_paid), "
                    "sum(amount_due) FROM billing.invoices WHERE updated_at <= :w "
                    "GROUP BY currency, status"
                ),
                {"w": watermark},
            ).all()
        )
    # Ids are uuids (hex and dashes): safe to inline, and the list is short (since the load).
    excluded = ", ".join(f"'{invoice_id}'" for invoice_id in later) or "''"
    frame = warehouse.query(
        "SELECT currency, invoice_status, count(*), sum(total_amount) * 100, "
        "sum(amount_paid) * 100, sum(amount_due) * 100 FROM marts.fct_invoices "
        f"WHERE cast(invoice_id AS varchar) NOT IN ({excluded}) "
        "GROUP BY currency, invoice_status"
    )
    stored = _by_key(frame.itertuples(index=False, name=None))
    problems = [
        f"{currency} {status}: {name} billing {billing.get((currency, status), {}).get(name, 0)}"
        f" vs warehouse {stored.get((currency, status), {}).get(name, 0)}"
        for currency, status in sorted(set(billing) | set(stored))
        for name in FIGURES
        if billing.get((currency, status), {}).get(name, 0)
        != stored.get((currency, status), {}).get(name, 0)
    ]
    return Finding(
        passed=not problems,
        problems=problems,
        numbers={
            "invoices_compared": sum(v["invoices"] for v in billing.values()),
            "changed_since_load": len(later),
        },
    )


def _watermark(warehouse: WarehouseResource) -> datetime | None:
    frame = warehouse.query(
        "SELECT min(newest) AS w FROM (SELECT event_type, max(occurred_at) AS newest "
        "FROM staging.stg_invoice_events GROUP BY event_type) AS per_type"
    )
    value: Any = frame["w"].iloc[0] if len(frame) else None
    if value is None or value != value:  # NaT/NaN: no invoice event loaded yet
        return None
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value  # type: ignore[no-any-return]


def _by_key(rows: Iterable[Any]) -> dict[Key, dict[str, int]]:
    out: dict[Key, dict[str, int]] = {}
    for row in rows:
        values = zip(FIGURES, row[2:], strict=True)
        out[(str(row[0]), str(row[1]))] = {k: int(Decimal(str(v or 0))) for k, v in values}
    return out
