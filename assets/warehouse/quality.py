"""Great Expectations validations as Dagster check results, with the failures as metadata
(for raw_events' own contract check and the checks in checks.py)."""

from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from assets.warehouse.suites import Validation


def _metadata(validation: Validation) -> dict[str, Any]:
    return {
        "suite": validation.suite,
        "rows": validation.rows,
        "expectations": validation.evaluated,
        "failed": len(validation.failures),
        "failures": MetadataValue.md(validation.summary()),
        "examples": MetadataValue.json(
            {
                f"{f.expectation}({f.column})": [str(x) for x in f.examples]
                for f in validation.failures
            }
        ),
    }


def validation_result(
    validation: Validation, severity: AssetCheckSeverity, check_name: str | None = None
) -> AssetCheckResult:
    """A GX validation as a Dagster check result, with the failures as metadata."""
    return AssetCheckResult(
        check_name=check_name,
        passed=validation.success,
        severity=severity,
        metadata=_metadata(validation),
    )
