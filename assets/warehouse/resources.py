"""The warehouse domain's own resource: the warehouse (DuckDB file locally, Redshift when
REDSHIFT_DSN is set). dbt's CLI resource is beside the dbt assets (dbt.py)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import duckdb

from assets.warehouse.base import Warehouse
from assets.warehouse.config import WarehouseConfig, warehouse_config
from assets.warehouse.loader import warehouse_from_config
from assets.warehouse.redshift import redshift_connect
from paywall.settings import Settings

if TYPE_CHECKING:
    import pandas as pd


class WarehouseResource:
    """The loader's `Warehouse`, the environment dbt runs with, and read queries for the
    checks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def config(self) -> WarehouseConfig:
        return warehouse_config(self.settings)

    @cached_property
    def warehouse(self) -> Warehouse:
        return warehouse_from_config(self.settings, self.config)

    def dbt_env(self) -> dict[str, str]:
        """What dbt's profiles.yml reads from the environment, from settings."""
        dsn = self.config.redshift_dsn
        if dsn is None:
            return {"DBT_TARGET": "duckdb", "WAREHOUSE_PATH": str(self.config.duckdb_path)}
        return {
            "DBT_TARGET": "redshift",
            "DBT_REDSHIFT_HOST": dsn.host,
            "DBT_REDSHIFT_PORT": str(dsn.port),
            "DBT_REDSHIFT_USER": dsn.user,
            "DBT_REDSHIFT_PASSWORD": dsn.password,
            "DBT_REDSHIFT_DBNAME": dsn.database,
        }

    def query(self, sql: str) -> pd.DataFrame:
        """A read-only query as a DataFrame (for the data-quality checks)."""
        import pandas as pd

        dsn = self.config.redshift_dsn
        if dsn is None:
            with duckdb.connect(str(self.config.duckdb_path), read_only=True) as con:
                con.execute("SET TimeZone = 'UTC'")
                return con.execute(sql).df()
        conn = redshift_connect(dsn)
        try:
            cur = conn.cursor()
            cur.execute(sql)
            names = [d[0] for d in cur.description]
            return pd.DataFrame.from_records(list(cur.fetchall()), columns=names)
        finally:
            conn.close()
