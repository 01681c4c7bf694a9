"""Dagster's daily partitions start where settings say: the go-live date in production,
else the first of the month three months back (where the demo's story starts), so a new
install does not show a year of missing days."""

from __future__ import annotations

from datetime import date

import pytest

from paywall.settings import Settings


def test_partitions_start_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTITIONS_START", "2026-12-01")
    assert Settings().first_partition_day == date(2026, 12, 1)  # type: ignore[call-arg]


def test_partitions_start_defaults_to_the_first_of_the_month_three_months_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PARTITIONS_START", raising=False)
    first = Settings().first_partition_day  # type: ignore[call-arg]
    today = date.today()
    assert first.day == 1
    months = (today.year - first.year) * 12 + today.month - first.month
    assert months == 3


def test_a_bad_partitions_start_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTITIONS_START", "someday")
    with pytest.raises(ValueError, match="PARTITIONS_START"):
        Settings()  # type: ignore[call-arg]
