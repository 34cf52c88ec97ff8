"""The distributed topology without containers: API server, scheduler, DAG processor, triggerer and two
Celery workers as separate processes (Redis as broker, Postgres for Airflow's metadata and the warehouse).

1. Three Shopify channels sync at once (each sandbox answers slowly, so the three tasks overlap): their task
   instances' hostnames name both workers (a worker takes one task per free slot, two slots each).
2. A fourth channel's sync of six hours of orders is under way when the worker running it is SIGKILLed with
   every process under it: the scheduler fails the try once its heartbeat is older than the timeout, the retry
   runs on the other worker and succeeds, and the channel's warehouse rows (orders at their versions, lines,
   ledger, levels, exceptions) equal those of an uninterrupted ``sync_orders`` of the same window into a
   fresh database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from airflow_celery import celery_airflow
from airflow_standalone import Standalone
from conftest import create_test_database
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from channelhub import db
from channelhub.config import HubConfig, load_config
from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.distributed import Topology
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from reliability.crash import STATE_QUERIES, differences
from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.server import RunningSandbox, run_sandbox, sandbox_connection

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # every sandbox's clock, frozen
HISTORY_START = NOW - timedelta(hours=6)
SYNCED = {"celery_b": 182, "celery_c": 183, "celery_d": 184}  # phase 1: code -> sandbox seed
KILLED = "celery_a"  # phase 2
KILLED_SEED = 181
TASK_ID = "sync_orders"
HEARTBEAT_TIMEOUT = 15  # seconds without a heartbeat before the scheduler fails a running try
RUN_TIMEOUT = 150


def location(code: str) -> str:
    # A location per channel: its stock, ledger and levels are its own, comparable with a reference run
    # of that channel alone.
    return f"WH-{code.upper()}"


@dataclass
class Setup:
    airflow: Standalone
    topology: Topology
    sandboxes: dict[str, RunningSandbox]
    config: HubConfig
    engine: Engine


def write_config(folder: Path) -> tuple[Path, HubConfig]:
    codes = [KILLED, *SYNCED]
    document = {
        "locations": [{"code": location(code), "name": f"{code} warehouse"} for code in codes],
        "channels": [
            {
                "code": code,
                "platform": "shopify",
                "conn_id": code,
                "fulfilment_location": location(code),
                "stock_policy": {"locations": [location(code)]},
                "schedule_minutes": 1440,  # the triggered runs are the test's; a scheduled one finds nothing
                "overlap_minutes": 0,
                "page_size": 20,
                "batch_size": 20,  # a commit per page: the kill lands with part of the window landed
                "retries": 2,
                "retry_delay_seconds": 1,
            }
            for code in codes
        ],
    }
    path = folder / "channels.yaml"
    path.write_text(yaml.safe_dump(document))
    return path, load_config(path)


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str, airflow_metadata_url: str
) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("celery")
    warehouse_url = create_test_database(pg_server_url)
    engine = create_engine(warehouse_url)
    config_file, config = write_config(folder)
    register_config(engine, config)
    with ExitStack() as stack:
        stack.callback(db.drop_database, pg_server_url, make_url(warehouse_url).database)
        stack.callback(engine.dispose)
        seeds = {KILLED: KILLED_SEED, **SYNCED}
        sandboxes = {
            code: stack.enter_context(
                run_sandbox(
                    "shopify",
                    seed=seed,
                    start=HISTORY_START,
                    interval=60,
                    clock=Clock.frozen(NOW),
                    leak_per_second=100.0,
                    # Slow answers: the three phase-1 syncs overlap, more than one worker's two slots.
                    faults=Faults(seed=seed, latency_seconds=0 if code == KILLED else 0.25),
                )
            )
            for code, seed in seeds.items()
        }
        env = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_metadata_url,
            "HUB_DATABASE_URL": warehouse_url,
            "HUB_CHANNELS_CONFIG": str(config_file),
        }
        for code, shop in sandboxes.items():
            seed_from_catalog(engine, config.channel(code), shop.world.catalog)
            connection = sandbox_connection("shopify", shop.base_url, shop.access_token)
            env[f"AIRFLOW_CONN_{code.upper()}"] = json.dumps(connection)
        home = folder / "airflow"
        home.mkdir()
        airflow, topology = stack.enter_context(
            celery_airflow(env, home, heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT)
        )
        for code in seeds:
            channel = config.channel(code)
            airflow.wait_for_dag(channel.dag_id)
            airflow.set_pool(channel.pool, 1)
        yield Setup(airflow, topology, sandboxes, config, engine)


def task_instance(airflow: Standalone, dag_id: str, run_id: str) -> dict[str, Any]:
    answer = airflow.api().get(
        airflow.url(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK_ID}"), timeout=10
    )
    answer.raise_for_status()
    return answer.json()


def tries(airflow: Standalone, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    answer = airflow.api().get(
        airflow.url(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK_ID}/tries"), timeout=10
    )
    answer.raise_for_status()
    return sorted(answer.json()["task_instances"], key=lambda ti: ti["try_number"])


def trigger_sync(airflow: Standalone, dag_id: str) -> str:
    since = HISTORY_START.isoformat().replace("+00:00", "Z")
    return airflow.trigger(dag_id, conf={"since": since})


def channel_state(engine: Engine, code: str) -> dict[str, list[tuple]]:
    """The channel's rows of what crash injection compares (orders with their payload digest, i.e. the
    version landed; lines; ledger, levels of its own location; exceptions)."""
    where = {"orders": 0, "lines": 0, "ledger": 2, "levels": 1, "exceptions": 0}
    value = {
        "orders": code,
        "lines": code,
        "ledger": location(code),
        "levels": location(code),
        "exceptions": code,
    }
    with engine.connect() as conn:
        return {
            name: [
                tuple(row) for row in conn.execute(text(STATE_QUERIES[name])) if row[column] == value[name]
            ]
            for name, column in where.items()
        }


def test_both_workers_run_tasks(hub: Setup) -> None:
    airflow = hub.airflow
    runs = {}
    for code in SYNCED:
        dag_id = hub.config.channel(code).dag_id
        airflow.unpause(dag_id)
        runs[dag_id] = trigger_sync(airflow, dag_id)
    hostnames = {}
    for dag_id, run_id in runs.items():
        run = airflow.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
        assert run["state"] == "success", airflow.task_logs(dag_id)
        hostnames[dag_id] = task_instance(airflow, dag_id, run_id)["hostname"]
    assert set(hostnames.values()) == set(hub.topology.workers.values()), hostnames
    with hub.engine.connect() as conn:
        landed = dict(
            conn.execute(
                text(
                    "SELECT c.code, count(*) FROM orders o JOIN channels c ON c.id = o.channel_id GROUP BY 1"
                )
            ).all()
        )
    assert all(landed.get(code, 0) > 0 for code in SYNCED), landed


def test_killed_worker_task_is_retried_on_the_other(hub: Setup, pg_server_url: str) -> None:
    airflow, topology = hub.airflow, hub.topology
    channel = hub.config.channel(KILLED)
    shop = hub.sandboxes[KILLED]
    # Slow answers: the sync takes long enough to be killed half-way.
    requests.post(
        f"{shop.base_url}/_sandbox/faults", json={"latency_seconds": 0.5}, timeout=10
    ).raise_for_status()
    airflow.unpause(channel.dag_id)
    run_id = trigger_sync(airflow, channel.dag_id)

    def landed() -> int:
        with hub.engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT count(*) FROM orders o JOIN channels c ON c.id = o.channel_id WHERE c.code = :c"
                ),
                {"c": KILLED},
            ).scalar_one()

    def under_way() -> dict | None:
        ti = task_instance(airflow, channel.dag_id, run_id)
        return ti if ti["state"] == "running" and ti["hostname"] and landed() > 0 else None

    first = airflow.wait_for(f"{channel.dag_id} part-way", under_way, timeout=RUN_TIMEOUT, every=0.5)
    victim = topology.worker_named(first["hostname"])
    topology.kill_worker(victim)
    killed_at = landed()
    requests.post(
        f"{shop.base_url}/_sandbox/faults", json={"latency_seconds": 0}, timeout=10
    ).raise_for_status()

    run = airflow.wait_for_run(channel.dag_id, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", airflow.task_logs(channel.dag_id)
    history = tries(airflow, channel.dag_id, run_id)
    assert [ti["try_number"] for ti in history] == [1, 2], history
    assert history[0]["hostname"] == first["hostname"] and history[0]["state"] != "success", history
    survivor = next(host for name, host in topology.workers.items() if name != victim)
    assert history[1]["hostname"] == survivor and history[1]["state"] == "success", history

    # The reference: the same window synced uninterrupted into a fresh warehouse.
    reference_url = create_test_database(pg_server_url)
    reference = create_engine(reference_url)
    try:
        register_config(reference, hub.config)
        seed_from_catalog(reference, channel, shop.world.catalog)
        window_end = datetime.fromisoformat(run["run_after"].replace("Z", "+00:00"))
        credentials = ChannelCredentials(channel.conn_id, shop.base_url, secret=Secret(shop.access_token))
        sync_orders(reference, channel, HISTORY_START, window_end, credentials=credentials)
        want = channel_state(reference, KILLED)
    finally:
        reference.dispose()
        db.drop_database(pg_server_url, make_url(reference_url).database)
    got = channel_state(hub.engine, KILLED)
    assert 0 < killed_at < len(want["orders"]), (killed_at, len(want["orders"]))
    assert differences(got, want) == []
