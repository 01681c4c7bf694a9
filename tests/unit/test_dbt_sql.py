"""The warehouse SQL that cannot run here, checked with sqlglot: the dbt project compiled for
Redshift and Postgres without a connection, and the Redshift lake load statements."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from assets.warehouse import LakePartition, PartitionStats, redshift_ddl, redshift_load_sql
from paywall.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DBT_DIR = REPO / "dbt"
ROLE = "arn:aws:iam::123456789012:role/paywall-redshift-copy"
MODELS = {
    "stg_customers",
    "stg_subscription_events",
    "stg_invoice_events",
    "stg_credit_note_events",
    "stg_payments",
    "stg_payment_accounts",
    "stg_registrations",
    "stg_users",
    "int_subscription_states",
    "int_customer_mrr_monthly",
    "dim_plans",
    "dim_customers",
    "fct_subscriptions",
    "fct_payments",
    "fct_invoices",
    "fct_credit_notes",
    "mrr_monthly",
    "churn_monthly",
    "cohort_retention",
    "time_spine_daily",
}
# What analysts query through MetricFlow (models/semantic).
METRICS = {"mrr", "arpu", "customer_churn_rate", "net_revenue_retention", "failed_payment_rate"}
MONEY = re.compile(r"amount|mrr|net_paid")
RATIO = re.compile(r"_rate$|retention$")
# Functions of another warehouse that must not leak into the Redshift SQL.
NOT_REDSHIFT = re.compile(
    r"json_extract_string|->>|::json|\bnow\(\)|to_months|date_add\(|\binterval 1\b", re.I
)


def compile_offline(target: str, tmp: Path, incremental: bool) -> dict[str, str]:
    """Compiled SQL of every model and data test, by name, rendered with the target's
    macros. `offline_compile` stands in for is_incremental(), which would ask the database;
    --no-populate-cache keeps dbt from connecting."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            "compile",
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--target",
            target,
            "--target-path",
            str(tmp / "target"),
            "--log-path",
            str(tmp / "logs"),
            "--no-populate-cache",
            "--vars",
            json.dumps({"offline_compile": True, "offline_incremental": incremental}),
        ]
    )
    assert result.success, result.exception
    manifest = json.loads((tmp / "target" / "manifest.json").read_text())
    return {
        node["name"]: node["compiled_code"]
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "test") and node.get("compiled_code")
    }


@pytest.fixture(scope="module")
def redshift_sql(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # The incremental branch: the full-refresh SQL plus the loaded_at filter.
    return compile_offline("redshift", tmp_path_factory.mktemp("dbt_redshift"), True)


@pytest.fixture(scope="module")
def postgres_sql(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return compile_offline("postgres", tmp_path_factory.mktemp("dbt_postgres"), False)


def test_every_model_and_test_parses_as_redshift(redshift_sql: dict[str, str]) -> None:
    assert set(redshift_sql) >= MODELS
    assert len(redshift_sql) - len(MODELS) >= 40  # the data tests
    for name, sql in redshift_sql.items():
        tree = sqlglot.parse_one(sql, read="redshift")
        assert isinstance(tree, exp.Query), name
        assert not NOT_REDSHIFT.search(sql), f"{name} uses another warehouse's SQL"


def test_redshift_models_use_the_redshift_macros(redshift_sql: dict[str, str]) -> None:
    staging = redshift_sql["stg_subscription_events"]
    assert "nullif(json_extract_path_text(data, 'plan_id', true), '')" in staging
    assert "convert_timezone('UTC', occurred_at)" in staging
    assert 'loaded_at >= (select max(loaded_at) from "paywall"."staging"' in staging
    assert "getdate()" in redshift_sql["int_subscription_states"]
    # Redshift refuses a WITH nested in a CTE: staging CTEs stay at the top level.
    tree = sqlglot.parse_one(staging, read="redshift")
    assert all(cte.this.args.get("with_") is None for cte in tree.find_all(exp.CTE))


def test_every_model_parses_as_postgres(postgres_sql: dict[str, str]) -> None:
    assert set(postgres_sql) >= MODELS
    for name, sql in postgres_sql.items():
        sqlglot.parse_one(sql, read="postgres")
        assert "json_extract_string" not in sql, name
    assert "(data::json->>'plan_id')" in postgres_sql["stg_subscription_events"]


def test_project_has_every_model_the_singular_tests_and_redshift_keys(tmp_path: Path) -> None:
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            "parse",
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--target",
            "duckdb",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ]
    )
    assert result.success, result.exception
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert models == MODELS
    singular = {
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test" and not n.get("test_metadata")
    }
    assert {
        "assert_mrr_components_sum_to_change",
        "assert_no_overlapping_subscription_intervals",
    } <= singular
    marts = {
        n["name"]: n["config"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and "marts" in n["fqn"]
    }
    assert all(c.get("dist") for c in marts.values()), "every mart names its Redshift dist"
    _marts_are_governed(manifest)
    semantic = json.loads((tmp_path / "target" / "semantic_manifest.json").read_text())
    assert {m["name"] for m in semantic["metrics"]} >= METRICS
    exposed = {dep for e in manifest["exposures"].values() for dep in e["depends_on"]["nodes"]}
    assert "model.paywall.mrr_monthly" in exposed


def _marts_are_governed(manifest: dict[str, Any]) -> None:
    """Every mart: an enforced contract, every column typed and described, money as
    numeric(18,2) with a currency column beside it."""
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or "marts" not in node["fqn"]:
            continue
        name, columns = node["name"], node["columns"]
        assert node["config"]["contract"]["enforced"], f"{name}: contract not enforced"
        assert node["description"], f"{name}: no description"
        for column, spec in columns.items():
            assert spec["description"], f"{name}.{column}: no description"
            assert spec["data_type"], f"{name}.{column}: no data type"
            if MONEY.search(column) and not RATIO.search(column):
                assert spec["data_type"] == "numeric(18,2)", f"{name}.{column}: money type"
            if spec["data_type"] == "numeric(18,2)":
                assert "currency" in columns, f"{name}.{column}: no currency beside it"


# --- the Redshift lake load -------------------------------------------------------------

STATS = PartitionStats(2, 4096, dt.datetime(2025, 1, 5, 10, 0, tzinfo=dt.UTC))
LOADED_AT = dt.datetime(2025, 1, 6, 1, 2, 3, tzinfo=dt.UTC)


def _load_sql(stats: PartitionStats = STATS) -> list[str]:
    part = LakePartition.of("subscription.created", "2025-01-05")
    return redshift_load_sql("paywall-lake", part, ROLE, stats, LOADED_AT)


def test_redshift_ddl_parses_with_dist_and_sort_keys() -> None:
    statements = [sqlglot.parse_one(s, read="redshift") for s in redshift_ddl()]
    events = statements[1].sql("redshift")
    assert 'DISTKEY("key")' in events
    assert 'COMPOUND SORTKEY("event_type", "occurred_at")' in events
    assert '"loaded_at" TIMESTAMP WITH TIME ZONE NOT NULL' in events


def test_redshift_load_copies_the_partition_and_replaces_it() -> None:
    statements = _load_sql()
    trees = [sqlglot.parse_one(s, read="redshift") for s in statements]
    kinds = [type(t).__name__ for t in trees]
    assert kinds == [
        "Create",  # temp staging table, lake columns only
        "Copy",
        "Delete",  # the day's rows
        "Delete",  # and any row being reloaded, by event_id
        "Insert",
        "Delete",  # bookkeeping
        "Insert",
        "Select",
        "Drop",
    ]
    copy = trees[1]
    assert isinstance(copy, exp.Copy)
    files = copy.args["files"]
    assert [f.name for f in files] == [
        "s3://paywall-lake/events/subscription.created/event_date=2025-01-05/"
    ]
    assert copy.args["credentials"].args["iam_role"].name == ROLE
    assert "FORMAT AS PARQUET" in statements[1]
    delete_day = statements[2]
    assert "occurred_at >= '2025-01-05 00:00:00.000000+00'" in delete_day
    assert "occurred_at < '2025-01-06 00:00:00.000000+00'" in delete_day
    assert "'2025-01-06 01:02:03.000000+00'" in statements[4]  # loaded_at


def test_an_empty_partition_skips_copy_but_still_deletes() -> None:
    statements = _load_sql(PartitionStats(0, 0, None))
    assert not any(s.startswith("COPY") for s in statements)
    assert any(s.startswith("DELETE FROM raw.events WHERE event_type = ") for s in statements)
    for s in statements:
        sqlglot.parse_one(s, read="redshift")


@pytest.mark.parametrize(
    ("event_type", "role", "bucket"),
    [
        ("x'; DROP TABLE raw.events; --", ROLE, "paywall-lake"),
        ("subscription.created", "arn:aws:iam::1:role/x' --", "paywall-lake"),
        ("subscription.created", ROLE, "bad bucket'"),
    ],
)
def test_redshift_load_refuses_what_it_cannot_quote_safely(
    event_type: str, role: str, bucket: str
) -> None:
    with pytest.raises((ValueError, ConfigError)):
        redshift_load_sql(
            bucket, LakePartition(event_type, dt.date(2025, 1, 5)), role, STATS, LOADED_AT
        )
