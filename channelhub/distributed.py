"""The distributed topology without containers: Airflow's components as separate processes, tasks run by
Celery workers, the machine's Redis as broker, Postgres for metadata and Celery's results.

What ``airflow standalone`` folds into one process tree is started here one process per component, as the
docker-compose services run it (airflow-apiserver, airflow-scheduler, airflow-dag-processor,
airflow-triggerer, airflow-worker x N):

    with run_topology(env, log_dir, port=8080) as topology:   # env: HUB_*, AIRFLOW_CONN_*, metadata URL
        topology.base_url, topology.workers                    # {"worker1": "worker1@host", ...}
        topology.kill_worker("worker1")                        # SIGKILL a worker and every process under it

``make demo-celery`` (``channelhub demo --celery``) and ``tests/test_celery_topology.py`` both run it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

WORKERS = ("worker1", "worker2")
WORKER_CONCURRENCY = 2  # task slots per worker: the machines this runs on have 2 cores
# The machine's Redis, a database number of its own (flushed at start: a stale message of an earlier run
# would otherwise be delivered to this run's workers). HUB_CELERY_BROKER_URL overrides it.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the workers: the task instance's ``hostname`` is its Celery worker's
    name (``worker1@host``), so two workers on one machine can be told apart in the UI and the REST API.
    Every other component keeps the machine's name."""
    return os.environ.get("HUB_WORKER_HOSTNAME") or socket.getfqdn()


def celery_env(
    base: dict[str, str],
    *,
    port: int,
    metadata_url: str,
    broker_url: str,
    heartbeat_timeout_seconds: int | None = None,
) -> dict[str, str]:
    """``base`` (the environment a standalone Airflow would get) turned into the distributed one's: every
    component reads the same settings, as the compose file's shared ``x-airflow-common`` environment."""
    # Celery's database result backend is SQLAlchemy: the same URL (psycopg 3 driver), prefixed "db+".
    result_backend = "db+" + make_url(metadata_url).render_as_string(hide_password=False)
    env = {
        **base,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata_url,  # psycopg 3 is async too
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        # A worker takes one message per free slot, no more: a queued task waits in Redis for whichever worker
        # frees a slot first instead of in a busy worker's prefetch buffer.
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        # Separate processes must agree on what standalone shares in memory: the key signing the API's and
        # the Execution API's tokens, and the key sealing connections and variables in the metadata.
        "AIRFLOW__API_AUTH__JWT_SECRET": base.get("AIRFLOW__API_AUTH__JWT_SECRET")
        or secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": base.get("AIRFLOW__CORE__FERNET_KEY") or Fernet.generate_key().decode(),
        # Task processes on the workers report to the API server's Execution API.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
    }
    if heartbeat_timeout_seconds is not None:
        # A worker that dies with its task leaves the task instance "running" until its heartbeat is this
        # old; then the scheduler fails the try and the retry goes to a live worker.
        env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = str(heartbeat_timeout_seconds)
        env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL"] = str(
            max(1, heartbeat_timeout_seconds // 3)
        )
    return env


def flush_broker(broker_url: str) -> None:
    """Empty the broker's Redis database: messages of an earlier run (a killed worker's unacknowledged
    task) must not reach this run's workers."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        client.flushdb()
    finally:
        client.close()


@dataclass
class Topology:
    base_url: str
    env: dict[str, str] = field(repr=False)
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(repr=False)  # by component name
    workers: dict[str, str]  # worker name -> Celery hostname (what task instances report as hostname)

    def log_path(self, component: str) -> Path:
        return self.log_dir / f"airflow-{component}.log"

    def worker_named(self, hostname: str) -> str:
        """The worker whose Celery hostname (a task instance's ``hostname``) this is."""
        return next(name for name, host in self.workers.items() if host == hostname)

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL worker ``name`` and every process under it (its pool's children, their task supervisors
        and task processes): a machine dying, nothing shuts down cleanly. Returns the pids killed."""
        root = psutil.Process(self.processes[name].pid)
        tree = [root, *root.children(recursive=True)]
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(root.pid, signal.SIGKILL)  # anything that started meanwhile in its process group
        self.processes[name].wait()
        return [process.pid for process in tree]

    def tail(self, chars: int = 3000) -> str:
        """The end of every component's log (what a failed wait should show)."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}"
            for path in sorted(self.log_dir.glob("airflow-*.log"))
        )


def _start(stack: ExitStack, topology: Topology, component: str, args: list[str], env: dict[str, str]):
    from channelhub.demo import _terminate

    log = topology.log_path(component).open("ab")
    stack.callback(log.close)
    process = subprocess.Popen(
        [AIRFLOW_BIN, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    stack.callback(_terminate, process)  # its own group: stopped with everything it started
    topology.processes[component] = process
    return process


def _api_answers(base_url: str) -> bool:
    answer = requests.get(f"{base_url}/api/v2/monitor/health", timeout=5)
    return answer.status_code == 200 and answer.json()["metadatabase"]["status"] == "healthy"


def _worker_ready(topology: Topology, name: str) -> bool:
    # Celery's own line once the worker consumes from the broker: "<hostname> ready."
    return f"{topology.workers[name]} ready." in topology.log_path(name).read_text(errors="replace")


@contextmanager
def run_topology(
    env: dict[str, str],
    log_dir: Path,
    *,
    workers: tuple[str, ...] = WORKERS,
    startup_timeout: float = 240,
) -> Iterator[Topology]:
    """Start the distributed topology with ``env`` (``celery_env``'s), logging to ``log_dir/airflow-*.log``;
    stop every component on exit (workers first, so no task is left half-way by a missing API server).

    Order matters: the metadata database is migrated first; the API server must answer before the
    scheduler may queue a task (the task reports to its Execution API, and a try whose API does not answer
    fails); the workers must consume before the caller triggers anything."""
    # Imported here: the workers import this module for worker_hostname, which needs none of it.
    from channelhub.demo import airflow_healthy, wait_until

    log_dir.mkdir(parents=True, exist_ok=True)
    flush_broker(env["AIRFLOW__CELERY__BROKER_URL"])
    with open(log_dir / "airflow-setup.log", "ab") as log:
        if subprocess.run([AIRFLOW_BIN, "db", "migrate"], env=env, stdout=log, stderr=log).returncode:
            raise RuntimeError(f"airflow db migrate failed; see {log_dir / 'airflow-setup.log'}")
    host = socket.gethostname()
    topology = Topology(
        base_url=env["AIRFLOW__API__BASE_URL"],
        env=env,
        log_dir=log_dir,
        processes={},
        workers={name: f"{name}@{host}" for name in workers},
    )

    def wait(what: str, probe, process: subprocess.Popen) -> None:
        try:
            wait_until(what, probe, startup_timeout, process, every=1.0)
        except (RuntimeError, TimeoutError) as err:
            err.add_note(topology.tail())
            raise

    with ExitStack() as stack:
        api = _start(stack, topology, "api-server", ["api-server"], env)
        wait("the API server", lambda: _api_answers(topology.base_url), api)
        for component in ("scheduler", "dag-processor", "triggerer"):
            _start(stack, topology, component, [component], env)
        for name in workers:
            hostname = topology.workers[name]
            _start(
                stack,
                topology,
                name,
                # Task logs are files in the shared AIRFLOW_HOME the API server reads itself: no log server
                # (two on one machine would want the same port).
                ["celery", "worker", "--celery-hostname", hostname, "--skip-serve-logs"],
                {
                    **env,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "channelhub.distributed.worker_hostname",
                    "HUB_WORKER_HOSTNAME": hostname,
                },
            )
        wait("scheduler, DAG processor and triggerer", lambda: airflow_healthy(topology.base_url), api)
        for name in workers:
            wait(
                f"Celery worker {name}",
                lambda name=name: _worker_ready(topology, name),
                topology.processes[name],
            )
        yield topology
