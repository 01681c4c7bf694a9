"""Great Expectations suites and their validation, free of Dagster.

Each suite runs on an in-memory pandas DataFrame through an ephemeral GX context (no
files, no Data Docs); great_expectations is imported inside `validate` (it takes seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streaming.contracts import contracts

if TYPE_CHECKING:
    import pandas as pd

# A clear-text email address; lake payloads carry salted sha256 hashes of personal fields.
EMAIL_REGEX = r"[^@\s]+@[^@\s]+\.[a-z]{2,}"
SUBSCRIPTION_STATUSES = ("incomplete", "trialing", "active", "past_due", "paused", "canceled")


def known_event_types() -> list[str]:
    """Every event type with a registered contract (any schema version)."""
    return sorted({event_type for event_type, _version in contracts()})


@dataclass(frozen=True)
class Expect:
    """One expectation, by its GX class name and arguments (so suites are plain data)."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    expectations: tuple[Expect, ...]


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    unexpected_count: int | None
    examples: list[Any]


@dataclass(frozen=True)
class Validation:
    suite: str
    success: bool
    evaluated: int
    rows: int
    failures: list[Failure]

    def summary(self) -> str:
        if self.success:
            return f"{self.suite}: {self.evaluated} expectations passed on {self.rows} rows"
        lines = [f"{self.suite}: {len(self.failures)} of {self.evaluated} expectations failed"]
        lines += [
            f"- {f.expectation}({f.column}): {f.unexpected_count} unexpected" for f in self.failures
        ]
        return "\n".join(lines)


def lake_contract_suite() -> Suite:
    """What must hold before a lake partition flows on into dbt."""
    return Suite(
        "lake_partition_contract",
        (
            Expect("ExpectColumnValuesToNotBeNull", {"column": "event_id"}),
            Expect("ExpectColumnValuesToNotBeNull", {"column": "occurred_at"}),
            Expect("ExpectColumnValuesToNotBeNull", {"column": "event_type"}),
            Expect(
                "ExpectColumnValuesToBeInSet",
                {"column": "event_type", "value_set": known_event_types()},
            ),
            # Personal data is hashed by the lake job; a clear-text email is a leak.
            Expect("ExpectColumnValuesToNotMatchRegex", {"column": "data", "regex": EMAIL_REGEX}),
        ),
    )


def lake_unique_ids_suite() -> Suite:
    """Unique event ids. Delivery is at least once (a replayed batch files an event again),
    so a duplicate is a warning: staging deduplicates on event_id."""
    return Suite(
        "lake_partition_unique_event_ids",
        (Expect("ExpectColumnValuesToBeUnique", {"column": "event_id"}),),
    )


def mrr_monthly_suite() -> Suite:
    return Suite(
        "mrr_monthly",
        (
            Expect("ExpectColumnValuesToNotBeNull", {"column": "mrr"}),
            Expect("ExpectColumnValuesToBeBetween", {"column": "mrr", "min_value": 0}),
            Expect("ExpectColumnValuesToNotBeNull", {"column": "month"}),
            # One row per month and currency (the mart is per currency).
            Expect("ExpectCompoundColumnsToBeUnique", {"column_list": ["month", "currency"]}),
        ),
    )


def fct_subscriptions_suite() -> Suite:
    return Suite(
        "fct_subscriptions",
        (
            Expect("ExpectColumnValuesToNotBeNull", {"column": "status"}),
            Expect(
                "ExpectColumnValuesToBeInSet",
                {"column": "status", "value_set": list(SUBSCRIPTION_STATUSES)},
            ),
        ),
    )


def validate(suite: Suite, df: pd.DataFrame) -> Validation:
    """Run the suite on the DataFrame in an ephemeral GX context."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(f"{suite.name}_source")
    data_asset = source.add_dataframe_asset(name=suite.name)
    batch = data_asset.add_batch_definition_whole_dataframe(f"{suite.name}_batch")
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
    for expect in suite.expectations:
        make: Callable[..., Any] = getattr(gxe, expect.type)
        gx_suite.add_expectation(make(**expect.kwargs))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.name}_validation", data=batch, suite=gx_suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": df}, result_format={"result_format": "SUMMARY"}
    )
    failures = []
    for r in result.results:
        if r.success:
            continue
        config = r.expectation_config
        details = r.result or {}
        failures.append(
            Failure(
                expectation=config.type if config is not None else "?",
                column=_columns(config.kwargs) if config is not None else None,
                unexpected_count=details.get("unexpected_count"),
                examples=list(details.get("partial_unexpected_list") or [])[:5],
            )
        )
    return Validation(
        suite=suite.name,
        success=bool(result.success),
        evaluated=len(result.results),
        rows=len(df),
        failures=failures,
    )


def _columns(kwargs: Any) -> str | None:
    column = kwargs.get("column")
    if column is not None:
        return str(column)
    columns = kwargs.get("column_list")
    return ", ".join(columns) if columns else None
