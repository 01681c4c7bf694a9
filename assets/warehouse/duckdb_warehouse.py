"""raw.events in a local DuckDB file, filled from the lake's Parquet through Arrow."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from assets.warehouse.base import (
    EVENTS_TABLE,
    LAKE_COLUMNS,
    LOADED_TABLE,
    RAW_SCHEMA,
    LoadedPartition,
    LoadResult,
    day_bounds,
)
from assets.warehouse.lake import LakeFile, LakePartition, PartitionStats, read_files
from paywall.settings import Settings

_COLUMNS_SQL = ", ".join(f'"{c}"' for c in LAKE_COLUMNS)

DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{EVENTS_TABLE} (
        "event_id" VARCHAR NOT NULL,
        "event_type" VARCHAR NOT NULL,
        "schema_version" INTEGER,
        "occurred_at" TIMESTAMPTZ NOT NULL,
        "producer" VARCHAR,
        "key" VARCHAR,
        "topic" VARCHAR,
        "partition" INTEGER,
        "offset" BIGINT,
        "data" VARCHAR,
        "ingested_at" TIMESTAMPTZ,
        "loaded_at" TIMESTAMPTZ NOT NULL
    )""",
    f"""CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{LOADED_TABLE} (
        event_type VARCHAR NOT NULL,
        event_date DATE NOT NULL,
        rows_loaded BIGINT NOT NULL,
        lake_files INTEGER NOT NULL,
        lake_bytes BIGINT NOT NULL,
        lake_last_modified TIMESTAMPTZ,
        loaded_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (event_type, event_date)
    )""",
)


class DuckDBWarehouse:
    """One short-lived connection per call: DuckDB allows one writing process per file,
    and dbt opens the same file right after a load."""

    name = "duckdb"

    def __init__(self, settings: Settings, path: Path | str) -> None:
        self.settings = settings
        self.path = Path(path)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path))
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()

    def ensure_tables(self) -> None:
        with self.connect() as con:
            for statement in DDL:
                con.execute(statement)

    def replace_partition(self, partition: LakePartition, files: list[LakeFile]) -> LoadResult:
        incoming = read_files(self.settings, files)  # read before the transaction opens
        stats = PartitionStats.of(files)
        start, end = day_bounds(partition.event_date)
        loaded_at = dt.datetime.now(dt.UTC)
        with self.connect() as con:
            con.register("incoming", incoming)
            con.begin()
            try:
                # The day's rows, and any row being reloaded whatever day it was filed under.
                con.execute(
                    f"DELETE FROM {RAW_SCHEMA}.{EVENTS_TABLE} WHERE event_type = ? AND ("
                    "(occurred_at >= ? AND occurred_at < ?) "
                    "OR event_id IN (SELECT event_id FROM incoming))",
                    [partition.event_type, start, end],
                )
                con.execute(
                    f"INSERT INTO {RAW_SCHEMA}.{EVENTS_TABLE} ({_COLUMNS_SQL}, loaded_at) "
                    f"SELECT {_COLUMNS_SQL}, ? FROM incoming",
                    [loaded_at],
                )
                con.execute(
                    f"INSERT OR REPLACE INTO {RAW_SCHEMA}.{LOADED_TABLE} "
                    "(event_type, event_date, rows_loaded, lake_files, lake_bytes, "
                    "lake_last_modified, loaded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        partition.event_type,
                        partition.event_date,
                        incoming.num_rows,
                        stats.files,
                        stats.bytes,
                        stats.last_modified,
                        loaded_at,
                    ],
                )
                con.commit()
            except BaseException:
                con.rollback()
                raise
            finally:
                con.unregister("incoming")
        return LoadResult(
            partition.event_type,
            partition.event_date,
            incoming.num_rows,
            stats.files,
            stats.bytes,
            loaded_at,
        )

    def loaded_partitions(self) -> dict[LakePartition, LoadedPartition]:
        with self.connect() as con:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = ? AND table_name = ?",
                [RAW_SCHEMA, LOADED_TABLE],
            ).fetchone()
            if not exists or not exists[0]:
                return {}
            rows = con.execute(
                "SELECT event_type, event_date, rows_loaded, lake_files, lake_bytes, "
                f"lake_last_modified, loaded_at FROM {RAW_SCHEMA}.{LOADED_TABLE} "
                "ORDER BY event_type, event_date"
            ).fetchall()
        return {
            LakePartition(r[0], r[1]): LoadedPartition(
                rows=int(r[2]),
                stats=PartitionStats(int(r[3]), int(r[4]), _utc(r[5])),
                loaded_at=_utc(r[6]) or dt.datetime.min.replace(tzinfo=dt.UTC),
            )
            for r in rows
        }


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
