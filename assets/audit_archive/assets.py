"""The audit archive asset and the check that re-downloads and verifies it."""

from dataclasses import asdict

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
    asset_check,
)

from assets.audit_archive import archive
from assets.shared import RETRIES, daily, day_of
from assets.shared.resources import Database, Lake


@asset(
    partitions_def=daily,
    group_name="audit",
    kinds={"s3", "postgres"},
    retry_policy=RETRIES,
    description=(
        "The day's audit.log rows (by append time) as gzip'd JSON lines in S3, with a "
        "manifest: row count, first/last seq and hash, SHA-256 of the object."
    ),
)
def audit_archive(
    context: AssetExecutionContext,
    database: ResourceParam[Database],
    lake: ResourceParam[Lake],
) -> MaterializeResult:
    day = day_of(context.partition_key)
    manifest = archive.archive(database.engine, lake.client, lake.bucket, day)
    meta = {k: v for k, v in asdict(manifest).items() if v is not None}
    return MaterializeResult(
        metadata={**meta, "uri": MetadataValue.path(f"s3://{lake.bucket}/{manifest.object_key}")}
    )


@asset_check(asset=audit_archive, blocking=True)
def audit_archive_verified(
    context: AssetCheckExecutionContext,
    database: ResourceParam[Database],
    lake: ResourceParam[Lake],
) -> AssetCheckResult:
    """Re-download and verify: checksum, manifest, chain segment and its database anchors.

    With the materialization, the day just archived; run on its own (a sweep that catches
    later tampering), every archived day. Not partitioned itself: Dagster 1.13 cannot run a
    partitioned check without its asset.
    """
    partition = context.run.tags.get("dagster/partition")
    days = [day_of(partition)] if partition else archive.archived_days(lake.client, lake.bucket)
    problems: list[str] = []
    rows = 0
    for day in days:
        result = archive.verify(database.engine, lake.client, lake.bucket, day)
        rows += result.rows
        problems.extend(f"{day}: {p}" for p in result.problems)
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "days": len(days),
            "rows": rows,
            "problems": MetadataValue.md("\n".join(f"- {p}" for p in problems[:50]) or "none"),
        },
    )
