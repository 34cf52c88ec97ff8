"""``make demo-celery``: ``make demo``'s warehouse, sandboxes and channels, run by the distributed topology
(``channelhub.distributed``): API server, scheduler, DAG processor, triggerer and two Celery workers as
separate processes, the machine's Redis as broker (``HUB_CELERY_BROKER_URL``, default database 14, flushed
at start), Airflow's metadata and Celery's results in ``<warehouse database>_airflow``.

    python -m channelhub.demo_celery [--history-hours 6]

Prints the UI address, the login and each worker's name, triggers a first sync of every channel, then the
warehouse summary every 30 s until Ctrl-C, which stops every component (workers first) and the sandboxes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from channelhub.demo import (
    LOG_DIR,
    _admin_password,
    _airflow,
    _airflow_ok,
    airflow_env,
    airflow_metadata_url,
    demo_sandboxes,
    demo_warehouse,
    history_start,
    hold_dags,
    prepare_airflow,
)
from channelhub.distributed import DEFAULT_BROKER_URL, celery_env, run_topology
from channelhub.report import print_reconciliation, print_summary

PORT = int(os.environ.get("AIRFLOW__API__PORT", "8080"))  # as make demo: 8080 unless set


def run(history: timedelta) -> int:
    with ExitStack() as stack:
        config, db_url, engine = demo_warehouse(stack)
        sandboxes = demo_sandboxes(stack, config, engine, history)
        metadata_url = airflow_metadata_url(db_url)
        env = celery_env(
            airflow_env(db_url, metadata_url, sandboxes),
            port=PORT,
            metadata_url=metadata_url,
            broker_url=os.environ.get("HUB_CELERY_BROKER_URL", DEFAULT_BROKER_URL),
        )
        prepare_airflow(env, config)
        # As make demo: every DAG in the metadata database, paused, before the scheduler starts; unpaused
        # below once every component (the API server first) answers.
        print("- every DAG into the metadata database, paused until the components are up ...", flush=True)
        hold_dags(env)
        print(
            "- starting the API server, then scheduler, DAG processor, triggerer and two Celery workers ...",
            flush=True,
        )
        topology = stack.enter_context(run_topology(env, LOG_DIR))
        _airflow_ok(env, "dags", "unpause", "--treat-dag-id-as-regex", "--yes", ".")
        conf = json.dumps({"since": history_start(history).strftime("%Y-%m-%dT%H:%M:%SZ")})
        for sb in sandboxes:
            _airflow(env, "dags", "trigger", sb.channel.dag_id, "-c", conf, log_name="airflow-setup.log")
        workers = ", ".join(topology.workers.values())
        print(
            f"\nAirflow UI: http://localhost:{PORT}  login: admin / {_admin_password()}\n"
            f"ChannelHub page: http://localhost:{PORT}/plugin/channelhub\n"
            f"Celery workers: {workers} (broker {env['AIRFLOW__CELERY__BROKER_URL']})\n"
            f"DAGs: {', '.join(sb.channel.dag_id for sb in sandboxes)} (first run triggered)\n"
            f"Logs: {LOG_DIR}/airflow-<component>.log   Ctrl-C stops everything started here.\n",
            flush=True,
        )
        try:
            while not (stopped := [n for n, p in topology.processes.items() if p.poll() is not None]):
                time.sleep(30)
                print(f"--- {datetime.now(UTC):%H:%M:%S} UTC", flush=True)
                print_summary(engine)
                print_reconciliation(engine)
            print(f"\n{', '.join(stopped)} exited; see {LOG_DIR}. Stopping the rest ...", flush=True)
            return 1
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m channelhub.demo_celery", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--history-hours", type=float, default=6.0, help="how much sandbox history to load first"
    )
    args = parser.parse_args(argv)
    return run(timedelta(hours=args.history_hours))


if __name__ == "__main__":
    raise SystemExit(main())
