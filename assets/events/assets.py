"""The daily completeness check of the event bus as a partitioned asset, with its check."""

from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from assets.shared import RETRIES, daily, day_of
from assets.shared.resources import Database
from streaming import completeness

NO_GAPS = "event_completeness_no_gaps"
MAX_LISTED = 50


@asset(
    partitions_def=daily,
    group_name="events",
    kinds={"postgres", "kafka"},
    retry_policy=RETRIES,
    check_specs=[
        AssetCheckSpec(
            NO_GAPS,
            asset="event_completeness",
            description="Every event the outboxes published that day is in the audit log.",
        )
    ],
    description=(
        "The partition's day of every service's outbox against audit.log: counts per schema, "
        "the event ids published but never audited (gaps), and their repair: those rows are "
        "marked unpublished, the relay sends them again, consumers dedupe by event id."
    ),
)
def event_completeness(
    context: AssetExecutionContext, database: ResourceParam[Database]
) -> MaterializeResult:
    day = day_of(context.partition_key)
    grace = database.settings.events_grace_seconds
    report = completeness.check(database.engine, day, grace)
    requeued = completeness.repair(database.engine, report) if report.gaps else {}
    missing = [f"{s.schema} {event_id}" for s in report.schemas for event_id in s.missing]
    metadata: dict[str, Any] = {
        **report.totals(),
        "requeued": sum(requeued.values()),
        "day": day.isoformat(),
        "grace_seconds": grace,
        "per_schema": MetadataValue.md(_table(report)),
        "missing": MetadataValue.md("\n".join(f"- {m}" for m in missing[:MAX_LISTED]) or "none"),
    }
    if report.gaps:
        context.log.warning(f"{report.gaps} event(s) of {day} were not audited; requeued them")
    check = AssetCheckResult(
        check_name=NO_GAPS,
        passed=report.complete,
        severity=AssetCheckSeverity.ERROR,
        metadata={"gaps": report.gaps, "requeued": sum(requeued.values())},
    )
    return MaterializeResult(metadata=metadata, check_results=[check])


def _table(report: completeness.Report) -> str:
    lines = [
        "| schema | published | audited | gaps | in flight | unpublished |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.schema} | {s.published} | {s.audited} | {len(s.missing)} | {s.in_flight} "
        f"| {s.unpublished} |"
        for s in report.schemas
    ]
    return "\n".join(lines)
