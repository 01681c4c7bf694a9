"""What every domain's assets share: daily partitions (a partition's date is that run's
"today", never the wall clock) and the retry policy (every asset here is idempotent)."""

from __future__ import annotations

from datetime import date

from dagster import Backoff, DailyPartitionsDefinition, Jitter, RetryPolicy

from paywall.settings import get_settings

# The first day comes from settings (PARTITIONS_START) when the asset modules are first
# imported, that is when the code location loads.
daily = DailyPartitionsDefinition(
    start_date=get_settings().first_partition_day.isoformat(), timezone="UTC"
)

RETRIES = RetryPolicy(
    max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


def day_of(partition_key: str) -> date:
    return date.fromisoformat(partition_key)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table for asset metadata (Dagster's UI renders it); None shows as -."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join("-" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)
