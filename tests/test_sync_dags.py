"""The per-channel DAGs, run for real (``dag.test()``) against the Shopify sandbox and a real warehouse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hub_configs import write_hub_config
from sqlalchemy import text

from channelhub.config import load_config
from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config
from sandbox.clock import Clock
from sandbox.server import run_sandbox

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the sandbox clock, frozen
HISTORY_START = NOW - timedelta(hours=8)
SCHEDULE = timedelta(minutes=15)
OVERLAP = timedelta(minutes=5)
LOCATION = "WH-DAGTEST"


@pytest.fixture(scope="module")
def shop():
    with run_sandbox(
        "shopify", seed=42, start=HISTORY_START, interval=45, clock=Clock.frozen(NOW), bucket_size=40
    ) as sandbox:
        yield sandbox


@pytest.fixture()
def channel_env(tmp_path, monkeypatch, shop, engine, database_url, airflow_db, request):
    """A config with one channel of its own (so tests do not share orders), its connection and stock."""
    code = f"shop_{request.node.name[5:25].lower().replace('[', '_').replace(']', '')}".rstrip("_")
    config_file, config = write_hub_config(
        tmp_path,
        code,
        location=LOCATION,
        schedule_minutes=int(SCHEDULE.total_seconds() // 60),
        overlap_minutes=int(OVERLAP.total_seconds() // 60),
        start_date="2026-11-01T00:00:00Z",
        page_size=50,
    )
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{code.upper()}",
        json.dumps({"conn_type": "http", "host": shop.base_url, "password": shop.access_token}),
    )
    channel = config.channel(code)
    register_config(engine, config)
    seed_from_catalog(engine, channel, shop.world.catalog)
    return channel


def load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag.get_dag(dag_id)


def sandbox_ids_updated(shop, start: datetime, end: datetime) -> set[str]:
    """The shop's own answer: ids of orders whose current updated_at is in [start, end] (inclusive)."""
    renderer = shop.app.state.renderer
    return {str(renderer.order_id(state.index)) for state in shop.world.updated_between(start, end)}


def landed_ids(engine, channel_code: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT o.external_id FROM orders o JOIN channels c ON c.id = o.channel_id "
                "WHERE c.code = :code"
            ),
            {"code": channel_code},
        )
        return {row[0] for row in rows}


def exception_ids(engine, channel_code: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.external_id FROM exceptions e JOIN channels c ON c.id = e.channel_id "
                "WHERE c.code = :code AND e.reason IN ('schema_invalid', 'mapping_failed')"
            ),
            {"code": channel_code},
        )
        return {row[0] for row in rows}


def test_dag_folder_imports_and_declares_one_dag_per_channel(airflow_db):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.timetables.interval import DeltaDataIntervalTimetable

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    config = load_config()
    assert {c.dag_id for c in config.channels if c.enabled} <= set(bag.dag_ids)
    for channel in config.channels:
        dag = bag.get_dag(channel.dag_id)
        assert isinstance(dag.timetable, DeltaDataIntervalTimetable)  # a real data interval per run
        assert dag.max_active_runs == 1
        (task,) = dag.tasks
        assert task.pool == channel.pool
        assert task.retries >= 1 and task.retry_exponential_backoff


def test_invalid_config_is_an_import_error_that_names_the_problem(tmp_path, monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    broken = tmp_path / "channels.yaml"
    broken.write_text(
        yaml.safe_dump({"locations": [{"code": "W", "name": "W"}], "channels": [{"code": "x"}]})
    )
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(broken))
    errors = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).import_errors
    per_channel_dag_files = {"sync_orders.py", "push_stock.py", "push_shipments.py", "reconcile.py"}
    assert {Path(file).name for file in errors} == per_channel_dag_files
    assert all("channels[0]: 'platform' is a required property" in error for error in errors.values())


def test_a_dag_run_lands_the_sandbox_orders(channel_env, shop, engine):
    dag = load_dag(channel_env.dag_id)
    since = NOW - timedelta(hours=3)
    run = dag.test(logical_date=NOW, run_conf={"since": since.isoformat()})
    assert run.state == "success"

    expected = sandbox_ids_updated(shop, since - OVERLAP, NOW)  # the pull reaches back by the overlap
    assert len(expected) > 100, "the window spans several pages of 50"
    assert landed_ids(engine, channel_env.code) | exception_ids(engine, channel_env.code) == expected
    assert landed_ids(engine, channel_env.code), "orders must land"

    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT s.last_counts FROM sync_state s JOIN channels c ON c.id = s.channel_id "
                "WHERE c.code = :code AND s.stream = 'orders'"
            ),
            {"code": channel_env.code},
        ).scalar_one()
        reserved = conn.execute(
            text(
                "SELECT coalesce(sum(l.reserved_quantity), 0) FROM order_lines l "
                "JOIN orders o ON o.id = l.order_id "
                "JOIN channels c ON c.id = o.channel_id WHERE c.code = :code"
            ),
            {"code": channel_env.code},
        ).scalar_one()
    assert counts["fetched"] >= len(expected) and counts["new"] == len(landed_ids(engine, channel_env.code))
    assert reserved > 0, "open orders reserve stock"

    # The same run again changes nothing.
    rerun = dag.test(logical_date=NOW, run_conf={"since": since.isoformat()})
    assert rerun.state == "success"
    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT s.last_counts FROM sync_state s JOIN channels c ON c.id = s.channel_id "
                "WHERE c.code = :code AND s.stream = 'orders'"
            ),
            {"code": channel_env.code},
        ).scalar_one()
    assert counts["new"] == 0 and counts["updated"] == 0


def test_backfill_of_two_past_intervals_lands_exactly_their_orders(channel_env, shop, engine):
    """What an Airflow backfill does, interval by interval: each run pulls its own data interval."""
    dag = load_dag(channel_env.dag_id)
    first_end = NOW - timedelta(hours=2)
    second_end = first_end + SCHEDULE
    for interval_end in (first_end, second_end):
        run = dag.test(logical_date=interval_end)  # a run's data interval is [end - 15 min, end)
        assert run.state == "success"
        assert (run.data_interval_start, run.data_interval_end) == (interval_end - SCHEDULE, interval_end)

    pulled_from = first_end - SCHEDULE - OVERLAP
    expected = sandbox_ids_updated(shop, pulled_from, second_end)
    assert expected, "the two intervals must hold orders"
    assert landed_ids(engine, channel_env.code) | exception_ids(engine, channel_env.code) == expected
    # Nothing from outside the two intervals (the rest of the day has hundreds of orders).
    before = sandbox_ids_updated(shop, HISTORY_START, pulled_from - timedelta(seconds=1))
    after = sandbox_ids_updated(shop, second_end + timedelta(seconds=1), NOW)
    outside = before | after
    assert len(outside) > 100
    assert not (landed_ids(engine, channel_env.code) & outside)


def test_a_manual_run_without_logical_date_covers_the_interval_before_it(channel_env, shop, engine):
    """Airflow 3 triggers manual runs without a logical date (no data interval): the task pulls the schedule
    interval (plus overlap) up to the moment the run was triggered."""
    dag = load_dag(channel_env.dag_id)
    run = dag.test(run_after=NOW, logical_date=None)
    assert run.state == "success" and run.data_interval_end is None
    expected = sandbox_ids_updated(shop, NOW - SCHEDULE - OVERLAP, NOW)
    assert expected
    assert landed_ids(engine, channel_env.code) | exception_ids(engine, channel_env.code) == expected


def test_one_channels_outage_does_not_stop_another_channels_dag(
    tmp_path, monkeypatch, shop, engine, database_url
):
    """Each channel is its own DAG: a channel whose API is down fails its own run (for Airflow to retry and
    alert), while the other channel's run lands its orders."""
    from sandbox.faults import Faults

    channels = [("iso_healthy", shop), ("iso_down", None)]
    with run_sandbox(
        "shopify", seed=43, start=HISTORY_START, interval=45, clock=Clock.frozen(NOW), faults=Faults(seed=1)
    ) as broken_shop:
        broken_shop.faults.update(server_error_rate=1.0)
        channels[1] = ("iso_down", broken_shop)
        config_file, config = write_hub_config(
            tmp_path,
            [code for code, _ in channels],
            location=LOCATION,
            schedule_minutes=15,
            overlap_minutes=5,
            retries=0,
        )
        monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
        monkeypatch.setenv("HUB_DATABASE_URL", database_url)
        register_config(engine, config)
        for code, sandbox in channels:
            monkeypatch.setenv(
                f"AIRFLOW_CONN_{code.upper()}",
                json.dumps({"conn_type": "http", "host": sandbox.base_url, "password": sandbox.access_token}),
            )
            seed_from_catalog(engine, config.channel(code), shop.world.catalog)

        down = load_dag("sync_orders__iso_down").test(logical_date=NOW)
        healthy = load_dag("sync_orders__iso_healthy").test(logical_date=NOW)

    assert down.state == "failed"
    assert healthy.state == "success"
    assert landed_ids(engine, "iso_down") == set()
    expected = sandbox_ids_updated(shop, NOW - SCHEDULE - OVERLAP, NOW)
    assert expected and landed_ids(engine, "iso_healthy") | exception_ids(engine, "iso_healthy") == expected


def test_a_refused_credential_fails_the_run_at_once_without_retries(
    tmp_path, monkeypatch, shop, engine, database_url, airflow_db
):
    """Retrying a refused key only repeats the refusal: the task fails for good on its first try (and
    alerts), although the channel allows retries."""
    code = "refused_key"
    config_file, config = write_hub_config(tmp_path, code, location=LOCATION, retries=3)
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{code.upper()}",
        json.dumps({"conn_type": "http", "host": shop.base_url, "password": "shpat_not_the_real_token"}),
    )
    register_config(engine, config)

    run = load_dag(f"sync_orders__{code}").test(logical_date=NOW)

    (task_instance,) = run.get_task_instances()
    assert run.state == "failed"
    assert task_instance.state == "failed", task_instance.state
    assert task_instance.try_number == 1  # dag.test() would have run the 3 retries (minutes of backoff)
    assert landed_ids(engine, code) == set()
