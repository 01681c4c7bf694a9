"""raw.events in Redshift: COPY the partition's Parquet from S3 into a temp table, then
delete + insert in one transaction. The SQL is plain strings (checked with sqlglot in tests);
it runs through any DB-API connection, redshift_connector by default."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, Self

from assets.warehouse.base import (
    EVENTS_TABLE,
    LAKE_COLUMNS,
    LOADED_TABLE,
    RAW_SCHEMA,
    LoadedPartition,
    LoadResult,
    day_bounds,
)
from assets.warehouse.config import RedshiftDsn, WarehouseConfig, warehouse_config
from assets.warehouse.lake import LakeFile, LakePartition, PartitionStats
from paywall.errors import ConfigError
from paywall.settings import Settings

STAGE_TABLE = "stage_lake_events"
_IAM_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

# Lake column types in Redshift; `data` stays text so json_extract_path_text reads it.
_COLUMN_TYPES: dict[str, str] = {
    "event_id": "VARCHAR(64) NOT NULL",
    "event_type": "VARCHAR(128) NOT NULL",
    "schema_version": "INTEGER",
    "occurred_at": "TIMESTAMPTZ NOT NULL",
    "producer": "VARCHAR(128)",
    "key": "VARCHAR(256)",
    "topic": "VARCHAR(256)",
    "partition": "INTEGER",
    "offset": "BIGINT",
    "data": "VARCHAR(65535)",
    "ingested_at": "TIMESTAMPTZ",
}
assert tuple(_COLUMN_TYPES) == LAKE_COLUMNS, "Redshift columns must follow the lake layout"
_COLS = ", ".join(f'"{c}"' for c in LAKE_COLUMNS)


class DBAPIConnection(Protocol):
    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _ts(value: dt.datetime) -> str:
    return _lit(value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00"))


def redshift_ddl() -> list[str]:
    columns = ",\n  ".join(f'"{c}" {t}' for c, t in _COLUMN_TYPES.items())
    return [
        f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{EVENTS_TABLE} (\n  {columns},\n"
        '  "loaded_at" TIMESTAMPTZ NOT NULL\n)\n'
        'DISTSTYLE KEY DISTKEY ("key") COMPOUND SORTKEY ("event_type", "occurred_at")',
        f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{LOADED_TABLE} (\n"
        "  event_type VARCHAR(128) NOT NULL,\n"
        "  event_date DATE NOT NULL,\n"
        "  rows_loaded BIGINT NOT NULL,\n"
        "  lake_files INTEGER NOT NULL,\n"
        "  lake_bytes BIGINT NOT NULL,\n"
        "  lake_last_modified TIMESTAMPTZ,\n"
        "  loaded_at TIMESTAMPTZ NOT NULL,\n"
        "  PRIMARY KEY (event_type, event_date)\n"
        ")\nDISTSTYLE ALL",
    ]


def redshift_load_sql(
    bucket: str,
    partition: LakePartition,
    iam_role: str,
    stats: PartitionStats,
    loaded_at: dt.datetime,
) -> list[str]:
    """The statements of one partition load, to run in one transaction, in order."""
    if not _IAM_ROLE.match(iam_role):
        raise ConfigError("REDSHIFT_IAM_ROLE", f"{iam_role!r} is not an IAM role ARN")
    if not _BUCKET.match(bucket):
        raise ValueError(f"not an S3 bucket name: {bucket!r}")
    part = LakePartition.of(partition.event_type, partition.event_date)  # validates the type
    start, end = day_bounds(part.event_date)
    events = f"{RAW_SCHEMA}.{EVENTS_TABLE}"
    stage_columns = ",\n  ".join(f'"{c}" {t}' for c, t in _COLUMN_TYPES.items())
    statements = [
        f"CREATE TEMPORARY TABLE {STAGE_TABLE} (\n  {stage_columns}\n)",
    ]
    if stats.files:  # COPY fails on a prefix without objects
        statements.append(
            f"COPY {STAGE_TABLE} FROM {_lit(f's3://{bucket}/{part.prefix}')} "
            f"IAM_ROLE {_lit(iam_role)} FORMAT AS PARQUET"
        )
    statements += [
        f"DELETE FROM {events} WHERE event_type = {_lit(part.event_type)} "
        f"AND occurred_at >= {_ts(start)} AND occurred_at < {_ts(end)}",
        f"DELETE FROM {events} USING {STAGE_TABLE} "
        f"WHERE {events}.event_id = {STAGE_TABLE}.event_id",
        f"INSERT INTO {events} ({_COLS}, loaded_at) "
        f"SELECT {_COLS}, {_ts(loaded_at)} FROM {STAGE_TABLE}",
        f"DELETE FROM {RAW_SCHEMA}.{LOADED_TABLE} WHERE event_type = {_lit(part.event_type)} "
        f"AND event_date = {_lit(part.event_date.isoformat())}",
        f"INSERT INTO {RAW_SCHEMA}.{LOADED_TABLE} (event_type, event_date, rows_loaded, "
        "lake_files, lake_bytes, lake_last_modified, loaded_at) "
        f"SELECT {_lit(part.event_type)}, CAST({_lit(part.event_date.isoformat())} AS DATE), "
        f"COUNT(*), {stats.files}, {stats.bytes}, "
        f"{_ts(stats.last_modified) if stats.last_modified else 'NULL'}, {_ts(loaded_at)} "
        f"FROM {STAGE_TABLE}",
        f"SELECT COUNT(*) FROM {STAGE_TABLE}",
        f"DROP TABLE {STAGE_TABLE}",
    ]
    return statements


def loaded_partitions_sql() -> str:
    return (
        "SELECT event_type, event_date, rows_loaded, lake_files, lake_bytes, "
        f"lake_last_modified, loaded_at FROM {RAW_SCHEMA}.{LOADED_TABLE} "
        "ORDER BY event_type, event_date"
    )


def redshift_connect(dsn: RedshiftDsn) -> DBAPIConnection:
    import redshift_connector

    conn: DBAPIConnection = redshift_connector.connect(
        host=dsn.host, port=dsn.port, database=dsn.database, user=dsn.user, password=dsn.password
    )
    return conn


class RedshiftWarehouse:
    name = "redshift"

    def __init__(
        self, settings: Settings, connect: Callable[[], DBAPIConnection], iam_role: str
    ) -> None:
        self.settings = settings
        self.connect = connect
        self.iam_role = iam_role

    @classmethod
    def from_config(cls, settings: Settings, config: WarehouseConfig | None = None) -> Self:
        config = config or warehouse_config()
        dsn, role = config.redshift_dsn, config.redshift_iam_role
        if dsn is None or role is None:
            raise ConfigError("REDSHIFT_DSN", "unset; the Redshift warehouse needs it")
        return cls(settings, lambda: redshift_connect(dsn), role)

    def _run(self, statements: Sequence[str]) -> list[Any]:
        """Run the statements in one transaction; the last statement's rows come back."""
        conn = self.connect()
        try:
            cur = conn.cursor()
            rows: list[Any] = []
            for sql in statements:
                cur.execute(sql)
                rows = list(cur.fetchall()) if cur.description else []
            conn.commit()
            return rows
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def ensure_tables(self) -> None:
        self._run(redshift_ddl())

    def replace_partition(self, partition: LakePartition, files: list[LakeFile]) -> LoadResult:
        stats = PartitionStats.of(files)
        loaded_at = dt.datetime.now(dt.UTC)
        statements = redshift_load_sql(
            self.settings.lake_bucket, partition, self.iam_role, stats, loaded_at
        )
        # One transaction; the row count comes from the SELECT COUNT(*) on the stage table.
        conn = self.connect()
        try:
            cur = conn.cursor()
            rows = 0
            for sql in statements:
                cur.execute(sql)
                if sql.startswith("SELECT COUNT(*)"):
                    rows = int(cur.fetchall()[0][0])
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        return LoadResult(
            partition.event_type, partition.event_date, rows, stats.files, stats.bytes, loaded_at
        )

    def loaded_partitions(self) -> dict[LakePartition, LoadedPartition]:
        rows = self._run([loaded_partitions_sql()])
        return {
            LakePartition(r[0], r[1]): LoadedPartition(
                rows=int(r[2]), stats=PartitionStats(int(r[3]), int(r[4]), r[5]), loaded_at=r[6]
            )
            for r in rows
        }
