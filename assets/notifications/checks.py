"""The notification batch's check: nothing it could send is left pending after it ran."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    ResourceParam,
    asset_check,
)
from sqlalchemy import text

from assets.notifications.assets import notification_batch
from assets.shared import day_of
from assets.shared.resources import Database


@asset_check(asset=notification_batch)
def notification_batch_settled(
    context: AssetCheckExecutionContext, database: ResourceParam[Database]
) -> AssetCheckResult:
    """Every notice due by the day whose recipient is known was sent, or recorded failed or
    skipped. A notice whose customer's own event has not reached us yet stays pending
    (counted as waiting, not a failure): the next batch sends it. With the materialization,
    its day; on its own, today.
    """
    partition = context.run.tags.get("dagster/partition")
    with database.engine.connect() as conn:
        day = day_of(partition) if partition else conn.execute(text("SELECT current_date")).one()[0]
        rows = conn.execute(
            text(
                "SELECT s.dedupe_key, s.template, s.due_on, r.customer_id AS known "
                "FROM notification.sends s LEFT JOIN notification.recipients r "
                "ON r.customer_id = s.customer_id "
                "WHERE s.status = 'pending' AND s.due_on <= :d ORDER BY s.id"
            ),
            {"d": day},
        ).all()
    stuck = [r for r in rows if r.known is not None]
    listed = [f"- {r.template} due {r.due_on}: {r.dedupe_key}" for r in stuck[:20]]
    return AssetCheckResult(
        passed=not stuck,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "day": day.isoformat(),
            "pending": len(stuck),
            "waiting_for_recipient": len(rows) - len(stuck),
            "problems": MetadataValue.md("\n".join(listed) or "none"),
        },
    )
