"""Alembic environment: online migrations only, against DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by paywall.db.alembic_config"
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            # Two migrators at once (two pods starting) must not interleave.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7261001)")
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `paywall db upgrade`")
run_migrations_online()
