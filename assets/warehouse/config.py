"""Which warehouse, from `Settings`.

WAREHOUSE_PATH      DuckDB file (default `<PAYWALL_STATE_DIR>/warehouse.duckdb`); dbt's
                    `duckdb` target reads the same variable.
REDSHIFT_DSN        `redshift://user:password@host:5439/database`; set = load into Redshift.
REDSHIFT_IAM_ROLE   the role ARN Redshift assumes to COPY from the lake bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from paywall.errors import ConfigError
from paywall.settings import Settings, get_settings, state_dir

REDSHIFT_DSN_ENV = "REDSHIFT_DSN"
REDSHIFT_IAM_ROLE_ENV = "REDSHIFT_IAM_ROLE"


@dataclass(frozen=True)
class RedshiftDsn:
    host: str
    port: int
    database: str
    user: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"RedshiftDsn({self.user}@{self.host}:{self.port}/{self.database})"


@dataclass(frozen=True)
class WarehouseConfig:
    duckdb_path: Path
    redshift_dsn: RedshiftDsn | None
    redshift_iam_role: str | None

    @property
    def kind(self) -> str:
        return "redshift" if self.redshift_dsn is not None else "duckdb"


def warehouse_config(settings: Settings | None = None) -> WarehouseConfig:
    settings = settings or get_settings()
    given = settings.warehouse_path
    path = given.resolve() if given else state_dir() / "warehouse.duckdb"
    dsn = settings.redshift_dsn.get_secret_value().strip() if settings.redshift_dsn else ""
    role = (settings.redshift_iam_role or "").strip() or None
    parsed = parse_redshift_dsn(dsn) if dsn else None
    if parsed is not None and role is None:
        raise ConfigError(REDSHIFT_IAM_ROLE_ENV, "unset; Redshift needs it to COPY from S3")
    return WarehouseConfig(path, parsed, role)


def parse_redshift_dsn(dsn: str) -> RedshiftDsn:
    parts = urlsplit(dsn)
    if parts.scheme not in ("redshift", "postgresql", "postgres") or not parts.hostname:
        raise ConfigError(REDSHIFT_DSN_ENV, "must look like redshift://user:pass@host:5439/db")
    database = parts.path.lstrip("/")
    if not database or not parts.username:
        raise ConfigError(REDSHIFT_DSN_ENV, "needs a user and a database")
    return RedshiftDsn(
        host=parts.hostname,
        port=parts.port or 5439,
        database=unquote(database),
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
    )
