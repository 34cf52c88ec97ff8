"""Issue 4 end to end, through the real DAGs (``dag.test()``), two sandbox channels and one warehouse:

orders on two channels reserve shared stock; a shipment CSV deducts it and the tracking appears on the
right channel; the other channel's listed quantity falls accordingly; a count CSV corrects drift and every
channel is pushed the new sellable quantity; re-running every DAG changes nothing.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from hub_configs import write_hub_config
from sqlalchemy import text

from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection
from sandbox.shopify import API_PREFIX
from warehouse.shipment_outbox import orders_ready_to_ship
from warehouse.stock import ledger_drift, oversold, stock_level

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=5)
LOCATION = "WH-E2E"
SHOP, WECHAT = "e2e_shop", "e2e_wechat"


@pytest.fixture(scope="module")
def sandboxes():
    clock = Clock.frozen(NOW)
    with (
        run_sandbox("shopify", seed=61, start=START, interval=150, clock=clock) as shop,
        run_sandbox("wechat_channels", seed=62, start=START, interval=150, clock=clock) as wechat,
    ):
        yield {SHOP: shop, WECHAT: wechat}


@pytest.fixture()
def hub(tmp_path, monkeypatch, sandboxes, engine, database_url, airflow_db):
    imports = tmp_path / "imports"
    imports.mkdir()
    config_file, config = write_hub_config(
        tmp_path,
        {code: sandbox.platform for code, sandbox in sandboxes.items()},
        location=LOCATION,
        schedule_minutes=15,
        overlap_minutes=0,
        page_size=100,
        retries=0,
        stock_policy={"locations": [LOCATION]},
    )
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_IMPORT_DIR", str(imports))
    for code, sandbox in sandboxes.items():
        conn = sandbox_connection(sandbox.platform, sandbox.base_url, sandbox.access_token)
        monkeypatch.setenv(f"AIRFLOW_CONN_{code.upper()}", json.dumps(conn))
    register_config(engine, config)
    for code, sandbox in sandboxes.items():
        seed_from_catalog(engine, config.channel(code), sandbox.world.catalog)
    return imports


@functools.cache
def dag_bag(config_file: str):  # the DAG files read the config when parsed: one parse per config
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag


def run(dag_id: str, **options) -> None:
    dag_run = dag_bag(os.environ["HUB_CHANNELS_CONFIG"]).get_dag(dag_id).test(**options)
    assert dag_run.state == "success", f"{dag_id} failed"


def run_everything() -> None:
    for code in (SHOP, WECHAT):
        run(f"sync_orders__{code}", logical_date=NOW, run_conf={"since": START.isoformat()})
    run("store_import", logical_date=NOW)
    for code in (SHOP, WECHAT):
        run(f"push_shipments__{code}", logical_date=NOW)
        run(f"push_stock__{code}", logical_date=NOW)


def listed(sandbox, sku: str) -> int | None:
    """What the channel ended up listing for ``sku`` (the sandbox's record of the hub's stock sets)."""
    variant = sandbox.world.catalog.by_sku(sku)
    levels = [v for (p, index, _), v in sandbox.world.overlay.stock_levels.items() if index == variant.index]
    return levels[-1] if levels else None


def free_units(engine, sku: str) -> int:
    with engine.connect() as conn:
        on_hand, reserved = stock_level(conn, sku, LOCATION)
    return on_hand - reserved


def drop_csv(folder: Path, name: str, rows: list[dict]) -> None:
    path = folder / name
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    old = time.time() - 60  # the folder import leaves files younger than 10 s alone (still being written)
    os.utime(path, (old, old))


def an_open_shopify_order(engine) -> tuple[str, list[tuple[str, str, int]]]:
    with engine.connect() as conn:
        ready = orders_ready_to_ship(conn, SHOP, limit=1)
    assert ready, "the sandbox history must hold an open, reserved Shopify order"
    return ready[0]


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        return {
            "ledger": conn.execute(text("SELECT count(*) FROM stock_ledger")).scalar_one(),
            "levels": conn.execute(
                text("SELECT sku_id, on_hand, reserved FROM stock_levels ORDER BY sku_id, location_id")
            ).all(),
            "pushes": conn.execute(text("SELECT count(*) FROM stock_push_log")).scalar_one(),
            "shipments": conn.execute(
                text("SELECT id, push_status, push_attempts FROM shipments ORDER BY id")
            ).all(),
        }


def test_orders_shipments_counts_and_stock_flow_out_to_every_channel(hub, sandboxes, engine):
    shop, wechat = sandboxes[SHOP], sandboxes[WECHAT]

    # 1. Before a channel's first sync, what it sold is not reserved here: no listing is raised. Each channel
    #    shows its opening stock, as the warehouse does, so nothing is set.
    for code in (SHOP, WECHAT):
        run(f"push_stock__{code}", logical_date=NOW)
    sku = shop.world.catalog.mapped_variants[0].sku
    assert free_units(engine, sku) > 0 and listed(wechat, sku) is None and listed(shop, sku) is None

    # 2. Orders on both channels reserve the shared stock; the stock push tells the other channel.
    for code in (SHOP, WECHAT):
        run(f"sync_orders__{code}", logical_date=NOW, run_conf={"since": START.isoformat()})
    for code in (SHOP, WECHAT):
        run(f"push_stock__{code}", logical_date=NOW)
    order_id, lines = an_open_shopify_order(engine)
    shipped_sku = lines[0][1]
    reserved_free = free_units(engine, shipped_sku)
    assert listed(wechat, shipped_sku) == listed(shop, shipped_sku) == reserved_free
    with engine.connect() as conn:
        on_hand_before, reserved_before = stock_level(conn, shipped_sku, LOCATION)
    assert reserved_before > 0 and listed(wechat, shipped_sku) < on_hand_before  # the orders took their share

    # 3. The warehouse ships the Shopify order: on-hand and reservation fall; the tracking reaches Shopify.
    tracking = "1Z999AA10123456784"
    drop_csv(
        hub,
        "shipments_wms_1.csv",
        [
            {
                "shipment_id": f"WMS-{order_id}",
                "channel": SHOP,
                "order_id": order_id,
                "line_id": line_id,
                "sku": "",
                "quantity": quantity,
                "carrier": "UPS",
                "tracking_number": tracking,
                "shipped_at": NOW.isoformat(),
            }
            for line_id, _, quantity in lines
        ],
    )
    run("store_import", logical_date=NOW)
    units = sum(q for _, s, q in lines if s == shipped_sku)
    with engine.connect() as conn:
        assert stock_level(conn, shipped_sku, LOCATION) == (on_hand_before - units, reserved_before - units)
    run(f"push_shipments__{SHOP}", logical_date=NOW)
    run(f"push_shipments__{WECHAT}", logical_date=NOW)
    answer = requests.get(
        f"{shop.base_url}{API_PREFIX}/orders/{order_id}.json",
        headers={"X-Shopify-Access-Token": shop.access_token},
        timeout=10,
    ).json()["order"]
    assert [f["tracking_number"] for f in answer["fulfillments"] if f.get("tracking_number") == tracking]
    assert answer["fulfillment_status"] == "fulfilled"

    # 4. A stock count finds 3 units fewer on the shelf: a ledger adjustment, and every channel is told.
    with engine.connect() as conn:
        on_hand, _ = stock_level(conn, shipped_sku, LOCATION)
    drop_csv(
        hub,
        "counts_wh_1.csv",
        [
            {
                "count_id": "C-1",
                "location": LOCATION,
                "sku": shipped_sku,
                "counted_quantity": on_hand - 3,
                "counted_at": NOW.isoformat(),
            }
        ],
    )
    run("store_import", logical_date=NOW)
    for code in (SHOP, WECHAT):
        run(f"push_stock__{code}", logical_date=NOW)
    assert listed(shop, shipped_sku) == listed(wechat, shipped_sku) == reserved_free - 3
    with engine.connect() as conn:
        assert oversold(conn) == 0 and ledger_drift(conn) == []
        adjust = conn.execute(
            text("SELECT delta_on_hand FROM stock_ledger WHERE kind = 'adjust' AND idempotency_key LIKE :k"),
            {"k": f"count:{LOCATION}:{shipped_sku}:%"},
        ).scalar_one()
    assert adjust == -3

    # 5. Re-running every DAG changes nothing: no ledger row, level, push or shipment push more.
    before = snapshot(engine)
    channel_records = (len(shop.world.overlay.stock_history), shop.world.overlay.summary())
    run_everything()
    assert snapshot(engine) == before
    assert (len(shop.world.overlay.stock_history), shop.world.overlay.summary()) == channel_records
