"""Many channels: what 1, 50 and 200 configured channels cost Airflow and the warehouse.

    .venv/bin/python bench/scale.py --channels 1 50 200 --minutes 6      (or: make bench-scale)
    .venv/bin/python bench/scale.py --parse-only                         (DAG parse time alone, ~1 min)

Per N, channels spread over the platforms of the registry, each one shop of its platform's many-shops
sandbox (``sandbox.many_shops``: one port per platform, each shop its own orders and credential):

1. **DAG parse time**: the dags folder parsed in a fresh interpreter with a ``channels.yaml`` of N channels,
   each file timed as Airflow's DAG processor parses it (``DagBag``); what matters against
   ``dagbag_import_timeout`` (30 s by default) is the slowest file, and the sum is what a processor spends
   per loop.
2. **Live, on the distributed topology** (``channelhub.distributed``: API server, scheduler, DAG processor,
   triggerer, two Celery workers of concurrency 2, the machine's Redis and Postgres): every channel's
   ``sync_orders__`` and ``push_stock__`` DAG unpaused on a ``--schedule-minutes`` schedule for
   ``--minutes``, then from Airflow's metadata database:
   - scheduling delay: a task's start minus the moment its run was due (``dag_run.run_after``), p50 / p95;
   - tasks finished per second, in all and per worker (by the task instance's hostname, the worker's name);
   - the warehouse's connections (``pg_stat_activity``, sampled every 2 s): peak and mean.

Figures print as a table; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import monotonic, sleep

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import choose_server, scratch_database

from channelhub.demo import seed_from_catalog
from channelhub.platforms import PLATFORMS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCATION = "SCALE-WH"
SEED = 20261206
ORDER_EVERY = 600.0  # seconds between two orders of one shop: 200 shops make one order every 3 s
AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")

_PARSE = """
import json, time
from airflow.dag_processing.dagbag import DagBag
began = time.perf_counter()
bag = DagBag(dag_folder=%r)
print(json.dumps({
    "seconds": time.perf_counter() - began,
    "dags": len(bag.dags),
    "errors": len(bag.import_errors),
    "files": {s.file.rsplit("/", 1)[-1]: s.duration.total_seconds() for s in bag.dagbag_stats},
}))
"""


def channel_codes(count: int) -> list[tuple[str, str, int]]:
    """(code, platform, shop number) of ``count`` channels, dealt over the registry's platforms in turn."""
    platforms = sorted(PLATFORMS)
    return [
        (f"{platform}_{shop:03d}", platform, shop)
        for platform, shop in ((platforms[i % len(platforms)], i // len(platforms)) for i in range(count))
    ]


def config_document(count: int, schedule_minutes: int, start: datetime) -> dict:
    return {
        "locations": [{"code": LOCATION, "name": "Scale benchmark warehouse"}],
        "channels": [
            {
                "code": code,
                "platform": platform,
                "conn_id": code,
                "fulfilment_location": LOCATION,
                "schedule_minutes": schedule_minutes,
                "start_date": start.isoformat(),
            }
            for code, platform, _ in channel_codes(count)
        ],
    }


def parse_time(config_file: Path) -> dict:
    """The dags folder parsed once in a fresh interpreter with ``config_file``."""
    env = {**os.environ, "HUB_CHANNELS_CONFIG": str(config_file), "AIRFLOW__CORE__LOAD_EXAMPLES": "false"}
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="channelhub-scale-home-"))
    out = subprocess.run(
        [sys.executable, "-c", _PARSE % str(PROJECT_ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def live_run(count: int, config_file: Path, folder: Path, minutes: float, database_url: str | None) -> dict:
    """The channels of ``config_file`` on the distributed topology for ``minutes``; the figures as a dict."""
    from channelhub import db
    from channelhub.config import load_config
    from channelhub.demo import LOG_DIR, airflow_env, hold_dags, prepare_airflow
    from channelhub.distributed import DEFAULT_BROKER_URL, WORKER_CONCURRENCY, celery_env, run_topology
    from channelhub.sync import register_config
    from sandbox.many_shops import run_many_shops

    config = load_config(config_file)
    server = choose_server(database_url, keep=False)
    metadata_name = f"channelhub_scale_meta_{count}_{os.getpid()}"
    with ExitStack() as stack:
        warehouse_url = stack.enter_context(scratch_database(server, keep=False))
        db.ensure_database(server.url, metadata_name)
        stack.callback(db.drop_database, server.url, metadata_name)
        metadata_url = make_url(server.url).set(database=metadata_name).render_as_string(hide_password=False)
        engine = create_engine(warehouse_url, pool_size=2)
        stack.callback(engine.dispose)
        register_config(engine, config)
        shops_of: dict[str, int] = {}
        for _, platform, shop in channel_codes(count):
            shops_of[platform] = max(shops_of.get(platform, 0), shop + 1)
        now = datetime.now(UTC)
        sandboxes = {
            platform: stack.enter_context(
                run_many_shops(
                    platform, shops, seed=SEED, start=now - timedelta(hours=2), interval=ORDER_EVERY
                )
            )
            for platform, shops in shops_of.items()
        }
        env = {
            **airflow_env(warehouse_url, metadata_url, []),
            "AIRFLOW_HOME": str(folder / f"airflow-{count}"),
            "HUB_CHANNELS_CONFIG": str(config_file),
        }
        for code, platform, shop in channel_codes(count):
            channel = config.channel(code)
            seed_from_catalog(engine, channel, sandboxes[platform].shop(shop).world.catalog)
            env[f"AIRFLOW_CONN_{code.upper()}"] = json.dumps(sandboxes[platform].connection(shop))
        port = free_port()
        env = celery_env(env, port=port, metadata_url=metadata_url, broker_url=DEFAULT_BROKER_URL)
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)  # where the Airflow CLI calls of the set-up log
        prepare_airflow(env, config)
        hold_dags(env)
        topology = stack.enter_context(run_topology(env, folder / f"logs-{count}"))
        # The loop the issue is about: orders in (sync) and stock out (push); reconciliation is hourly.
        for pattern in ("^sync_orders__", "^push_stock__"):
            subprocess.run(
                [AIRFLOW_BIN, "dags", "unpause", "--treat-dag-id-as-regex", "--yes", pattern],
                env=env, capture_output=True, check=True,
            )  # fmt: skip
        began = datetime.now(UTC)
        samples = sample_connections(engine, make_url(warehouse_url).database, minutes * 60)
        ended = datetime.now(UTC)
        figures = task_figures(metadata_url, began, ended)
        figures["connections_peak"] = max(samples, default=0)
        figures["connections_mean"] = statistics.fmean(samples) if samples else 0.0
        figures["worker_slots"] = len(topology.workers) * WORKER_CONCURRENCY
        return figures


def sample_connections(engine, database: str, seconds: float) -> list[int]:
    """The warehouse's open connections every 2 s for ``seconds`` (this sampler's own one left out)."""
    samples = []
    deadline = monotonic() + seconds
    while monotonic() < deadline:
        with engine.connect() as conn:
            samples.append(
                conn.execute(
                    text("SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = :d"), {"d": database}
                ).scalar_one()
            )
        sleep(2)
    return samples


def task_figures(metadata_url: str, began: datetime, ended: datetime) -> dict:
    """From Airflow's metadata: each task that started in [began, ended) and its run's due time."""
    engine = create_engine(metadata_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT ti.start_date, ti.end_date, ti.state, ti.hostname, dr.run_after "
                    "FROM task_instance ti "
                    "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
                    "WHERE ti.start_date >= :began AND ti.start_date < :ended"
                ),
                {"began": began, "ended": ended},
            ).all()
    finally:
        engine.dispose()
    delays = [(r.start_date - r.run_after).total_seconds() for r in rows if r.run_after is not None]
    finished = [r for r in rows if r.end_date is not None and r.end_date < ended]
    seconds = (ended - began).total_seconds()
    per_worker: dict[str, float] = {}
    for r in finished:
        name = (r.hostname or "?").split("@")[0]
        per_worker[name] = per_worker.get(name, 0) + 1 / seconds
    return {
        "tasks": len(rows),
        "finished": len(finished),
        "failed": sum(r.state == "failed" for r in rows),
        "delay_p50": percentile(delays, 0.5),
        "delay_p95": percentile(delays, 0.95),
        "tasks_per_second": len(finished) / seconds,
        "per_worker": per_worker,
    }


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--minutes", type=float, default=6.0, help="live run per N")
    parser.add_argument("--schedule-minutes", type=int, default=5)
    parser.add_argument("--parse-only", action="store_true")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="channelhub-scale-") as folder:
        for count in args.channels:
            start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
            config_file = Path(folder) / f"channels_{count}.yaml"
            config_file.write_text(yaml.safe_dump(config_document(count, args.schedule_minutes, start)))
            parsed = parse_time(config_file)
            row = {"channels": count, "parse": parsed}
            print(
                f"{count:>4} channels: {parsed['dags']} DAGs parsed in {parsed['seconds']:.2f} s, "
                f"slowest file {max(parsed['files'].values()):.2f} s, import errors {parsed['errors']}",
                flush=True,
            )
            if not args.parse_only:
                row["live"] = live_run(count, config_file, Path(folder), args.minutes, args.database_url)
                live = row["live"]
                print(
                    f"      live {args.minutes:g} min: {live['tasks']} tasks ({live['failed']} failed), "
                    f"delay p50 {live['delay_p50']:.1f} s p95 {live['delay_p95']:.1f} s, "
                    f"{live['tasks_per_second']:.2f} tasks/s, warehouse "
                    f"connections peak {live['connections_peak']}",
                    flush=True,
                )
            rows.append(row)
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    print()
    print(
        "| channels | DAGs | parse (all files) | slowest file | delay p50 | delay p95 | tasks/s | per worker "
        "| warehouse connections peak / mean |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        parsed, live = row["parse"], row.get("live")
        cells = [
            str(row["channels"]),
            str(parsed["dags"]),
            f"{parsed['seconds']:.2f} s",
            f"{max(parsed['files'].values()):.2f} s",
        ]
        if live:
            cells += [
                f"{live['delay_p50']:.1f} s",
                f"{live['delay_p95']:.1f} s",
                f"{live['tasks_per_second']:.2f}",
                ", ".join(f"{w} {r:.2f}" for w, r in sorted(live["per_worker"].items())),
                f"{live['connections_peak']} / {live['connections_mean']:.1f}",
            ]
        else:
            cells += ["-"] * 5
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
