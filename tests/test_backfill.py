"""Airflow 3's own backfill re-pulls a channel's past window, against a real ``airflow standalone``.

``airflow backfill create`` (the CLI) makes one run per hourly data interval of the window; the scheduler runs
them; the warehouse then holds exactly the sandbox's orders updated in those intervals. A second backfill of
the same window through the REST API (``POST /api/v2/backfills``, reprocess behaviour ``completed``) re-runs
every interval and changes nothing: same orders, lines, ledger and exceptions; its runs count only unchanged
orders.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from airflow_standalone import Hub, Standalone, standalone_hub
from sqlalchemy import Engine, text

from sandbox.clock import Clock
from sandbox.server import RunningSandbox

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # the sandbox clock, frozen
HISTORY_START = NOW - timedelta(hours=8)
CODE = "backfill_shop"
LOCATION = "WH-BACKFILL"
TASK_ID = "sync_orders"
# Two hourly intervals in the sandbox's past: logical dates 08:00 and 09:00 (--to-date is inclusive).
FROM_DATE = NOW - timedelta(hours=4)
TO_DATE = NOW - timedelta(hours=3)
RUNS_TIMEOUT = 240
# What a sync run counts that would mean the warehouse changed (SyncResult.as_dict).
CHANGE_COUNTS = (
    "new",
    "updated",
    "stale",
    "reserved_units",
    "released_units",
    "deducted_units",
    "restocked_units",
)


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, database_url: str, airflow_metadata_url: str
) -> Iterator[Hub]:
    with standalone_hub(
        tmp_path_factory.mktemp("backfill"),
        CODE,
        LOCATION,
        {"start_date": HISTORY_START.isoformat(), "page_size": 50},
        engine=engine,
        database_url=database_url,
        airflow_metadata_url=airflow_metadata_url,
        seed=91,
        start=HISTORY_START,
        interval=90,
        clock=Clock.frozen(NOW),
    ) as running:
        yield running


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def backfills(airflow: Standalone, dag_id: str) -> list[dict]:
    answer = airflow.api().get(airflow.url("/api/v2/backfills"), params={"dag_id": dag_id}, timeout=10)
    answer.raise_for_status()
    return sorted(answer.json()["backfills"], key=lambda b: b["id"])


def create_backfill(airflow: Standalone, body: dict) -> requests.Response:
    """``POST /api/v2/backfills``. On SQLite metadata the API answers 503 "Database is locked" when another
    component holds the write lock too long (rare in WAL mode, see airflow_standalone): a client tries again
    shortly."""
    for _ in range(15):
        answer = airflow.api().post(airflow.url("/api/v2/backfills"), json=body, timeout=30)
        if answer.status_code != 503:
            return answer
        time.sleep(2)
    return answer


def wait_for_backfill(airflow: Standalone, dag_id: str, backfill_id: int) -> list[dict]:
    """Wait until the scheduler marks the backfill complete; returns its runs (oldest interval first)."""

    def complete() -> bool:
        answer = airflow.api().get(airflow.url(f"/api/v2/backfills/{backfill_id}"), timeout=10)
        answer.raise_for_status()
        return answer.json()["completed_at"] is not None

    airflow.wait_for(f"backfill {backfill_id} of {dag_id} complete", complete, RUNS_TIMEOUT, every=2)
    return [run for run in airflow.dag_runs(dag_id) if run["run_type"] == "backfill"]


def sandbox_ids_updated(shop: RunningSandbox, start: datetime, end: datetime) -> set[str]:
    """The shop's own answer: ids of the orders whose updated_at is in [start, end]."""
    renderer = shop.app.state.renderer
    return {str(renderer.order_id(state.index)) for state in shop.world.updated_between(start, end)}


def warehouse_ids(engine: Engine) -> set[str]:
    """Orders landed, plus those only queued as exceptions because they could not be mapped at all."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT o.external_id FROM orders o JOIN channels c ON c.id = o.channel_id WHERE c.code = :c "
                "UNION SELECT e.external_id FROM exceptions e JOIN channels c ON c.id = e.channel_id "
                "WHERE c.code = :c AND e.reason IN ('schema_invalid', 'mapping_failed')"
            ),
            {"c": CODE},
        )
        return {row[0] for row in rows}


def snapshot(engine: Engine) -> dict:
    """What a re-pull must not change (exception ``attempts`` may count a re-seen problem; rows may not)."""
    channel = "(SELECT id FROM channels WHERE code = :c)"
    queries = {
        "orders": f"SELECT external_id, payload_digest FROM orders WHERE channel_id = {channel} ORDER BY 1",
        "lines": f"SELECT count(*) FROM order_lines l JOIN orders o ON o.id = l.order_id "
        f"WHERE o.channel_id = {channel}",
        "ledger": "SELECT count(*), coalesce(sum(delta_on_hand), 0), coalesce(sum(delta_reserved), 0) "
        "FROM stock_ledger",
        "levels": "SELECT sku_id, location_id, on_hand, reserved FROM stock_levels ORDER BY 1, 2",
        "exceptions": f"SELECT id, reason, status FROM exceptions WHERE channel_id = {channel} ORDER BY 1",
    }
    with engine.connect() as conn:
        return {name: conn.execute(text(sql), {"c": CODE}).all() for name, sql in queries.items()}


def test_airflow_backfill_repulls_a_past_window_and_a_second_backfill_changes_nothing(hub: Hub) -> None:
    airflow, dag_id, engine = hub.airflow, hub.channel.dag_id, hub.engine

    # 1. The CLI creates the backfill; the scheduler runs one sync per hourly interval of the window.
    airflow.cli(
        "backfill",
        "create",
        "--dag-id",
        dag_id,
        "--from-date",
        iso(FROM_DATE),
        "--to-date",
        iso(TO_DATE),
        "--max-active-runs",
        "1",
    )
    (first,) = backfills(airflow, dag_id)
    runs = wait_for_backfill(airflow, dag_id, first["id"])
    assert [run["state"] for run in runs] == ["success", "success"], airflow.task_logs(dag_id)
    intervals = [(parse(r["data_interval_start"]), parse(r["data_interval_end"])) for r in runs]
    assert intervals == [
        (FROM_DATE, FROM_DATE + hub.channel.schedule),
        (TO_DATE, TO_DATE + hub.channel.schedule),
    ]

    # The warehouse holds the sandbox's orders of exactly that window (overlap 0), nothing else.
    window_start, window_end = intervals[0][0], intervals[-1][1]
    expected = sandbox_ids_updated(hub.shop, window_start, window_end)
    assert len(expected) > 50, "two hours of the sandbox's history hold plenty of orders"
    assert warehouse_ids(engine) == expected
    outside = sandbox_ids_updated(hub.shop, HISTORY_START, window_start - timedelta(seconds=1))
    assert outside and not (warehouse_ids(engine) & outside)
    first_counts = [airflow.return_value(dag_id, run["dag_run_id"], TASK_ID) for run in runs]
    assert sum(c["new"] for c in first_counts) > 0
    for counts, (start, end) in zip(first_counts, intervals, strict=True):
        assert (parse(counts["window_start"]), parse(counts["window_end"])) == (start, end)
    before = snapshot(engine)

    # 2. The same window again through the REST API, re-running the completed intervals.
    answer = create_backfill(
        airflow,
        {
            "dag_id": dag_id,
            "from_date": iso(FROM_DATE),
            "to_date": iso(TO_DATE),
            "reprocess_behavior": "completed",
            "max_active_runs": 1,
        },
    )
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert second["id"] != first["id"] and second["reprocess_behavior"] == "completed"
    reruns = wait_for_backfill(airflow, dag_id, second["id"])
    assert [run["state"] for run in reruns] == ["success", "success"], airflow.task_logs(dag_id)
    assert {run["dag_run_id"] for run in reruns} == {run["dag_run_id"] for run in runs}  # cleared, re-run
    assert all(parse(run["end_date"]) > parse(old["end_date"]) for run, old in zip(reruns, runs, strict=True))

    assert snapshot(engine) == before
    for run, old in zip(reruns, first_counts, strict=True):
        counts = airflow.return_value(dag_id, run["dag_run_id"], TASK_ID)
        assert counts["fetched"] == old["fetched"]
        assert {k: counts[k] for k in CHANGE_COUNTS} == dict.fromkeys(CHANGE_COUNTS, 0), counts
        assert counts["unchanged"] == old["new"] + old["updated"] + old["unchanged"] > 0
