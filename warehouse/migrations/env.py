"""Alembic environment of the warehouse (``channelhub.db.migrate`` sets script_location and the URL).

Migrations are written by hand under ``versions/``; ``target_metadata`` is there so that
``alembic revision --autogenerate`` can draft the next one and the schema test can compare.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool, text

from warehouse.models import metadata

config = context.config
target_metadata = metadata

# Several processes (demo, CLI, Airflow tasks) may migrate at once; one waits for the other.
MIGRATION_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('channelhub.warehouse.migrations'))"


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, transaction_per_migration=False
        )
        with context.begin_transaction():
            connection.execute(text(MIGRATION_LOCK_SQL))
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
