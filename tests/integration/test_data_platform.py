"""Lake → warehouse → dbt → data quality as Dagster runs them, on the local stack's real S3
(moto) and a DuckDB file of our own: the sensor finds the lake partitions, each is validated
and loaded (Great Expectations as asset checks), one run builds dbt on the last, and a
partition with a clear-text email fails the blocking check: not loaded, dbt never runs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    ExecuteInProcessResult,
    SensorResult,
    SkipReason,
    build_sensor_context,
    materialize,
)

from assets.shared.resources import Lake
from assets.warehouse import LakePartition
from assets.warehouse.assets import (
    RANGE_END,
    RANGE_START,
    lake_partitions,
    partition_key,
    raw_events,
)
from assets.warehouse.checks import mart_checks, raw_events_unique_event_ids
from assets.warehouse.dbt import dbt_key, dbt_resource, paywall_dbt
from assets.warehouse.resources import WarehouseResource
from assets.warehouse.sensors import lake_partitions_sensor
from paywall.clients import ensure_bucket, s3_client
from paywall.settings import Settings
from streaming.lake import layout
from tests.integration import test_warehouse as lake_fixtures

pytestmark = pytest.mark.integration

BUCKET = "paywall-lake-platform-test"
LEAKY = LakePartition("customer.updated", dt.date(2025, 3, 20))


def warehouse_assets() -> list[Any]:
    """warehouse_job's selection: made from the dbt manifest, so at run time, not import."""
    return [raw_events, raw_events_unique_event_ids, paywall_dbt(), *mart_checks()]


@dataclass
class Platform:
    settings: Settings
    instance: DagsterInstance
    resources: dict[str, Any]
    lake: dict[LakePartition, int]

    def tick(self) -> SensorResult | SkipReason:
        """One sensor evaluation; its new partition keys are added as the daemon would."""
        context = build_sensor_context(instance=self.instance, resources=self.resources)
        result = lake_partitions_sensor(context)
        assert isinstance(result, SensorResult | SkipReason)
        if isinstance(result, SensorResult):
            for request in result.dynamic_partitions_requests or []:
                self.instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys or [])
                )
        return result

    def run(
        self, assets: list[Any], key: str | None, tags: dict[str, str] | None = None
    ) -> ExecuteInProcessResult:
        return materialize(
            assets,
            partition_key=key,
            tags=tags,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        path = WarehouseResource(self.settings).config.duckdb_path
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def platform(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Our own bucket (other tests write lakes too) and DuckDB file, the synthetic history of
    test_warehouse written in the lake layout, an ephemeral Dagster instance."""
    ours = settings.model_copy(
        update={
            "lake_bucket": BUCKET,
            "warehouse_path": tmp_path_factory.mktemp("platform") / "warehouse.duckdb",
        }
    )
    ensure_bucket(ours, BUCKET)
    client = s3_client(ours)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lake_fixtures, "BUCKET", BUCKET)  # its writer puts files in BUCKET
        lake = lake_fixtures.write_lake(ours, lake_fixtures.synthetic_history())
    resources = {
        "lake": Lake(ours),
        "warehouse": WarehouseResource(ours),
        "dbt": dbt_resource(ours),
    }
    with DagsterInstance.ephemeral() as instance:
        yield Platform(ours, instance, resources, lake)


def _checks(result: ExecuteInProcessResult) -> dict[str, tuple[bool, str]]:
    return {
        e.check_name: (e.passed, e.severity.value) for e in result.get_asset_check_evaluations()
    }


def test_sensor_loads_validates_and_dbt_builds_every_lake_partition(platform: Platform) -> None:
    first = platform.tick()
    assert isinstance(first, SensorResult)
    expected = sorted(partition_key(p) for p in platform.lake)
    # The new partitions are neighbours: one run loads them all and builds dbt once.
    (request,) = list(first.run_requests or [])
    assert request.tags == {RANGE_START: expected[0], RANGE_END: expected[-1]}
    assert request.run_key and request.run_key.startswith(f"{expected[0]}..{expected[-1]}@")
    assert platform.instance.get_dynamic_partitions(lake_partitions.name or "") == expected

    result = platform.run(warehouse_assets(), None, request.tags)
    assert result.success
    loaded = result.asset_materializations_for_node("raw_events")
    assert sorted(m.partition or "" for m in loaded) == expected  # each partition, one run
    assert loaded[0].metadata["dagster/row_count"].value == sum(platform.lake.values())
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {AssetKey("raw_events"), dbt_key("mrr_monthly"), dbt_key("fct_subscriptions")} <= (
        materialized
    )
    checks = _checks(result)
    assert checks["raw_events_contract"] == (True, "ERROR")
    # The replayed batch files one event twice: a warning, staging dedupes.
    assert checks["raw_events_unique_event_ids"] == (False, "WARN")
    assert checks["mrr_monthly_quality"] == (True, "ERROR")
    assert checks["fct_subscriptions_quality"] == (True, "ERROR")
    dbt_tests = {
        k: v for k, v in checks.items() if not k.startswith(("raw_events", "mrr_", "fct_"))
    }
    assert len(dbt_tests) >= 30
    assert all(passed for passed, _ in dbt_tests.values()), dbt_tests

    total = sum(platform.lake.values())
    assert platform.query("SELECT count(*) FROM raw.events") == [(total,)]
    months = platform.query("SELECT count(*), min(mrr) FROM marts.mrr_monthly")
    assert months[0][0] >= 3 and months[0][1] >= 0

    again = platform.tick()
    assert isinstance(again, SkipReason)  # everything loaded: nothing requested


def test_a_clear_text_email_fails_the_blocking_check_and_dbt_does_not_run(
    platform: Platform,
) -> None:
    # Runs after the full build above (module order): the marts exist from it.
    built_before = platform.query("SELECT count(*) FROM marts.fct_subscriptions")
    row = {
        "event_id": "11111111-1111-4111-8111-111111111111",
        "event_type": LEAKY.event_type,
        "schema_version": 1,
        "occurred_at": dt.datetime(2025, 3, 20, 12, tzinfo=dt.UTC),
        "producer": "customer-service",
        "key": "00000000-0000-4000-8000-000000000001",
        "data": json.dumps({"customer_id": "c1", "email": "alice@example.com"}),
        "topic": "paywall.customer",
        "partition": 0,
        "offset": 99,
        "ingested_at": dt.datetime(2025, 3, 20, 12, 0, 5, tzinfo=dt.UTC),
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lake_fixtures, "BUCKET", BUCKET)
        lake_fixtures._put(
            lake_fixtures.lake_filesystem(platform.settings),
            layout.event_file_key(LEAKY.event_type, LEAKY.event_date, lake_fixtures.QUERY, 7, 0),
            [row],
        )

    tick = platform.tick()
    assert isinstance(tick, SensorResult)
    assert [r.partition_key for r in tick.run_requests or []] == [partition_key(LEAKY)]

    result = platform.run(warehouse_assets(), partition_key(LEAKY))
    assert not result.success
    checks = _checks(result)
    assert checks["raw_events_contract"] == (False, "ERROR")
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "raw_events_contract"
    )
    assert "expect_column_values_to_not_match_regex(data)" in str(
        evaluation.metadata["failures"].value
    )
    # Blocked: the dbt step never started (the contract check's step failed before it).
    assert not any(e.is_step_start for e in result.events_for_node("paywall_dbt"))
    assert result.is_node_failed("raw_events")
    assert not result.asset_materializations_for_node("raw_events")
    assert not result.asset_materializations_for_node("paywall_dbt")
    assert "mrr_monthly_quality" not in checks
    # Validated before the load: the leak never reached raw.events for a later build.
    assert platform.query(
        f"SELECT count(*) FROM raw.events WHERE event_type = '{LEAKY.event_type}' "
        f"AND occurred_at::DATE = DATE '{LEAKY.event_date}'"
    ) == [(0,)]
    assert platform.query("SELECT count(*) FROM marts.fct_subscriptions") == built_before
