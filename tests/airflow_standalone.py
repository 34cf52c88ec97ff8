"""A real ``airflow standalone`` for tests: API server (UI and plugins), scheduler, DAG processor and
triggerer in their own process group, with SQLite metadata in a temporary AIRFLOW_HOME.

    with airflow_standalone({"HUB_DATABASE_URL": url, "HUB_CHANNELS_CONFIG": path, ...}) as airflow:
        api = airflow.api()                                  # requests.Session with a JWT of the admin
        api.get(airflow.url("/api/v2/dags")).raise_for_status()
        airflow.cli("backfill", "create", "--dag-id", ...)  # the CLI against the same metadata database

Login: SimpleAuthManager (what standalone forces) with the users of ``[core] simple_auth_manager_users``
and their passwords from ``[core] simple_auth_manager_passwords_file``; writing that file before the start
gives a known password instead of the generated one. ``POST /auth/token`` turns it into a JWT.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from channelhub.demo import _terminate, airflow_healthy, wait_until

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ADMIN = "admin"
# One user of each SimpleAuthManager role (the user's name is the role's), each with a known password.
ROLES = ("admin", "op", "user", "viewer")
TERMINAL_RUN_STATES = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Standalone:
    base_url: str  # e.g. http://127.0.0.1:41234 (UI, REST API, plugins)
    home: Path
    env: dict[str, str] = field(repr=False)
    username: str
    password: str = field(repr=False)
    process: subprocess.Popen = field(repr=False)
    log_path: Path = field(repr=False)
    passwords: dict[str, str] = field(default_factory=dict, repr=False)  # every role's user
    _session: requests.Session | None = field(default=None, repr=False)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """A JWT from the auth manager's login endpoint (what the UI's login form calls too); of the admin,
        or of ``username`` (a role's user: its password is known)."""
        username = username or self.username
        answer = requests.post(
            self.url("/auth/token"),
            json={"username": username, "password": password or self.passwords.get(username, self.password)},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def api(self) -> requests.Session:
        """A session that sends the admin's JWT with every request (made once, then reused)."""
        if self._session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.token()}"
            self._session = session
        return self._session

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """``airflow <args>`` with this instance's environment (same metadata database)."""
        done = subprocess.run(
            [str(VENV_BIN / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            output = done.stdout[-3000:] + done.stderr[-3000:]
            raise AssertionError(f"airflow {' '.join(args)} exited {done.returncode}:\n{output}")
        return done

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def task_logs(self, dag_id: str, chars: int = 4000) -> str:
        """The tails of a DAG's task logs (what a failed run's assertion should show)."""
        files = sorted((self.home / "logs").glob(f"dag_id={dag_id}/**/*.log"))
        return "\n".join(
            f"--- {f.relative_to(self.home)}\n{f.read_text(errors='replace')[-chars:]}" for f in files
        )

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
        """Poll ``probe`` until it returns something truthy (``demo.wait_until``); fail with the standalone
        log's tail."""
        try:
            return wait_until(what, probe, timeout, self.process, every)
        except (RuntimeError, TimeoutError) as err:
            err.add_note(self.log_tail())  # pytest prints notes under the error
            raise

    # ---------------------------------------------------------------- REST API helpers the tests share
    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict:
        def parsed() -> dict | None:
            answer = self.api().get(self.url(f"/api/v2/dags/{dag_id}"), timeout=10)
            return answer.json() if answer.status_code == 200 else None

        return self.wait_for(f"DAG {dag_id} parsed", parsed, timeout)

    def set_pool(self, name: str, slots: int) -> None:
        answer = self.api().post(self.url("/api/v2/pools"), json={"name": name, "slots": slots}, timeout=10)
        if answer.status_code == 409:  # already there: set its slots
            answer = self.api().patch(self.url(f"/api/v2/pools/{name}"), json={"slots": slots}, timeout=10)
        answer.raise_for_status()

    def unpause(self, dag_id: str) -> None:
        answer = self.api().patch(self.url(f"/api/v2/dags/{dag_id}"), json={"is_paused": False}, timeout=10)
        answer.raise_for_status()

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None) -> str:
        answer = self.api().post(
            self.url(f"/api/v2/dags/{dag_id}/dagRuns"),
            json={"logical_date": logical_date, "conf": conf or {}},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["dag_run_id"]

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict]:
        answer = self.api().get(
            self.url(f"/api/v2/dags/{dag_id}/dagRuns"),
            params={"limit": 100, "order_by": "logical_date", **params},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict:
        def finished() -> dict | None:
            answer = self.api().get(self.url(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"), timeout=10)
            answer.raise_for_status()
            run = answer.json()
            return run if run["state"] in TERMINAL_RUN_STATES else None

        return self.wait_for(f"run {run_id} of {dag_id}", finished, timeout)

    def return_value(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """A task's return value (its XCom), as the REST API gives it."""
        answer = self.api().get(
            self.url(
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
            ),
            params={"deserialize": "true"},
            timeout=10,
        )
        answer.raise_for_status()
        value = answer.json()["value"]
        return json.loads(value) if isinstance(value, str) else value


@dataclass
class Hub:
    """A running ``airflow standalone`` with the hub's DAGs for one Shopify sandbox channel."""

    airflow: Standalone
    shop: Any  # sandbox.server.RunningSandbox
    channel: Any  # channelhub.config.ChannelConfig
    engine: Any  # the warehouse's sqlalchemy Engine


@contextmanager
def standalone_hub(
    folder: Path,
    code: str,
    location: str,
    channel_settings: dict[str, Any],
    *,
    engine: Any,
    database_url: str,
    airflow_metadata_url: str,
    extra_env: dict[str, str] | None = None,
    **sandbox: Any,
) -> Iterator[Hub]:
    """A config of one Shopify channel ``code`` (hourly, no overlap, no retries, then ``channel_settings``)
    fulfilling from ``location``, written and registered; a Shopify sandbox (``run_sandbox(**sandbox)``)
    seeded into the warehouse as that channel; and a standalone Airflow whose DAG of that channel is parsed,
    unpaused (backfill runs wait while their DAG is paused) and given a pool."""
    from hub_configs import write_hub_config

    from channelhub.demo import seed_from_catalog
    from channelhub.sync import register_config
    from sandbox.server import run_sandbox, sandbox_connection

    settings = {
        "schedule_minutes": 60,
        "overlap_minutes": 0,  # each run pulls exactly its data interval
        "retries": 0,
        **channel_settings,
    }
    config_file, config = write_hub_config(folder, code, location=location, **settings)
    register_config(engine, config)
    channel = config.channel(code)
    with run_sandbox("shopify", **sandbox) as shop:
        seed_from_catalog(engine, channel, shop.world.catalog)
        env = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_metadata_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": airflow_metadata_url,  # psycopg 3 is async too
            "HUB_DATABASE_URL": database_url,
            "HUB_CHANNELS_CONFIG": str(config_file),
            f"AIRFLOW_CONN_{code.upper()}": json.dumps(
                sandbox_connection("shopify", shop.base_url, shop.access_token)
            ),
            **(extra_env or {}),
        }
        home = folder / "airflow"
        home.mkdir(exist_ok=True)
        with airflow_standalone(env, home=home) as airflow:
            airflow.wait_for_dag(channel.dag_id)
            airflow.set_pool(channel.pool, 1)
            airflow.unpause(channel.dag_id)
            yield Hub(airflow, shop, channel, engine)


def write_passwords(home: Path) -> tuple[dict[str, str], Path]:
    """A known password for every role's user, in the file SimpleAuthManager reads them from (written
    before the API server starts, it is used instead of generated passwords)."""
    passwords = {role: secrets.token_urlsafe(12) for role in ROLES}
    passwords_file = home / "passwords.json"
    passwords_file.write_text(json.dumps(passwords))
    return passwords, passwords_file


def standalone_env(home: Path, port: int, extra: dict[str, str], passwords_file: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    return {
        **inherited,
        # standalone starts its components as plain `airflow ...`: the venv's bin must come first.
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{role}:{role}" for role in ROLES),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__CORE__PARALLELISM": "4",
        # Workers reach the Execution API through base_url: it must name the port picked here.
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        **extra,
    }


@contextmanager
def airflow_standalone(
    extra_env: dict[str, str], home: Path | None = None, startup_timeout: float = 240
) -> Iterator[Standalone]:
    """Start ``airflow standalone`` with ``extra_env`` (HUB_*, AIRFLOW_CONN_*, AIRFLOW__* overrides) in
    ``home`` (its AIRFLOW_HOME: config, SQLite metadata, logs; a new temporary folder by default), wait until
    the API server, scheduler, DAG processor and triggerer report healthy, and stop the whole process group
    on exit."""
    home = home or Path(tempfile.mkdtemp(prefix="channelhub-standalone-"))
    port = free_port()
    passwords, passwords_file = write_passwords(home)
    env = standalone_env(home, port, extra_env, passwords_file)
    if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in extra_env:
        # SQLite's default journal lets one component's open read block another's commit ("database is
        # locked", e.g. POST /api/v2/backfills while the scheduler reads); in WAL mode readers never block
        # the writer. The mode is stored in the file, so setting it on the empty database is enough.
        with closing(sqlite3.connect(home / "airflow.db")) as metadata:
            metadata.execute("PRAGMA journal_mode=WAL")
    log_path = home / "standalone.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "standalone"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its API server, scheduler and workers are stopped as one group
        )
    airflow = Standalone(
        base_url=f"http://127.0.0.1:{port}",
        home=home,
        env=env,
        username=ADMIN,
        password=passwords[ADMIN],
        process=process,
        passwords=passwords,
        log_path=log_path,
    )
    try:
        airflow.wait_for(
            "airflow standalone healthy", lambda: airflow_healthy(airflow.base_url), startup_timeout
        )
        yield airflow
    finally:
        _terminate(process)
