"""The distributed topology for tests: ``channelhub.distributed.run_topology`` (API server, scheduler, DAG
processor, triggerer and two Celery workers as separate processes) behind the same REST helpers as
``airflow_standalone`` (``Standalone``: token, api(), trigger, wait_for_run, ...).

    with celery_airflow({"HUB_DATABASE_URL": url, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta, ...},
                        home=tmp / "airflow") as (airflow, topology):
        run_id = airflow.trigger("sync_orders__shop", conf={...})
        topology.kill_worker(topology.worker_named(hostname))

The broker is the machine's Redis, database ``HUB_TEST_CELERY_BROKER_URL`` or 15 (flushed at start).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_standalone import ADMIN, Standalone, free_port, standalone_env, write_passwords

from channelhub.distributed import Topology, celery_env, run_topology

TEST_BROKER_URL = os.environ.get("HUB_TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")


@contextmanager
def celery_airflow(
    extra_env: dict[str, str], home: Path, heartbeat_timeout_seconds: int | None = None
) -> Iterator[tuple[Standalone, Topology]]:
    """The topology with ``extra_env`` (HUB_*, AIRFLOW_CONN_*, and the metadata database's URL as
    ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``: Postgres, every component writes to it) in AIRFLOW_HOME
    ``home``; every component healthy and both workers consuming before it is handed over."""
    port = free_port()
    passwords, passwords_file = write_passwords(home)
    env = celery_env(
        standalone_env(home, port, extra_env, passwords_file),
        port=port,
        metadata_url=extra_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        broker_url=TEST_BROKER_URL,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds,
    )
    with run_topology(env, home / "component-logs") as topology:
        yield (
            Standalone(
                base_url=topology.base_url,
                home=home,
                env=env,
                username=ADMIN,
                password=passwords[ADMIN],
                process=topology.processes["api-server"],  # a wait fails early if it exits
                log_path=topology.log_path("scheduler"),  # what a failed wait shows
                passwords=passwords,
            ),
            topology,
        )
