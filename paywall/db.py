"""Database engine and migrations (Alembic), from DATABASE_URL."""

from __future__ import annotations

from functools import lru_cache

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine

from paywall.errors import ConfigError
from paywall.settings import Settings

# Each service owns its tables in a schema of its own; no service reads another's.
SERVICE_SCHEMAS = ("auth", "customer", "subscription", "payment", "registration", "billing")


def sqlalchemy_url(database_url: str) -> str:
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ConfigError("DATABASE_URL", "must be a postgresql:// URL")
    return f"postgresql+psycopg://{rest}"


# A database that is down must cost a request a second or two, then a 503; never minutes.
# psycopg waits 130 s for a connection by default (2 s is libpq's floor); unacknowledged
# writes on a connection to a black-holed server fail after TCP_USER_TIMEOUT instead of
# TCP's ~15 minutes of retransmits; a request waits for a pooled connection this long
# rather than SQLAlchemy's 30 s. pool_pre_ping replaces connections the server dropped
# (a restart), so the first request after it does not fail on a dead one.
CONNECT_TIMEOUT_SECONDS = 2
TCP_USER_TIMEOUT_MS = 3000
POOL_TIMEOUT_SECONDS = 3


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        # Statement parameters (emails, password hashes) stay out of error messages.
        hide_parameters=True,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        },
    )


def engine(settings: Settings) -> Engine:
    if not settings.database_url:
        raise ConfigError("DATABASE_URL", "unset; run `paywall stack up` or set it")
    return _engine(sqlalchemy_url(settings.database_url))


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "transactional:migrations")
    url = sqlalchemy_url(settings.database_url or "")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "heads") -> None:
    from paywall.health import check_postgres

    check_postgres(settings)  # an unreachable server is a one-line error, not a traceback
    command.upgrade(alembic_config(settings), revision)


def current_revision(settings: Settings) -> str | None:
    """The applied heads, one per service branch, comma-separated."""
    from alembic.runtime.migration import MigrationContext

    with engine(settings).connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None
