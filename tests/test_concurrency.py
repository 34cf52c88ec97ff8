"""Issue 6, concurrency: three channels' syncs (separate processes, as Airflow workers are), a stock count
and a store sales import, and every channel's stock push, all at once on one location with scarce stock.

Afterwards no unit is oversold, every level equals its ledger sums and the reservations its order lines
hold, and running everything again changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hub_configs import write_hub_config
from sqlalchemy import text

from channelhub.demo import seed_from_catalog
from channelhub.stock_push import push_stock
from channelhub.sync import register_config
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection
from warehouse.stock import ledger_drift, oversold

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
START = NOW - timedelta(hours=6)
LOCATION = "WH-SCARCE"
PLATFORMS = ("shopify", "woocommerce", "wechat_channels")
CHANNELBIN = str(Path(sys.executable).parent / "channelhub")

RESERVATIONS_MATCH_SQL = """
SELECT s.code, l.reserved, coalesce(sum(ol.reserved_quantity), 0) AS held
  FROM stock_levels l
  JOIN skus s ON s.id = l.sku_id
  JOIN locations loc ON loc.id = l.location_id AND loc.code = :location
  LEFT JOIN order_lines ol ON ol.sku_id = l.sku_id AND ol.location_id = l.location_id
 GROUP BY s.code, l.reserved
HAVING l.reserved <> coalesce(sum(ol.reserved_quantity), 0)
"""


@pytest.fixture(scope="module")
def sandboxes():
    clock = Clock.frozen(NOW)
    with (
        run_sandbox("shopify", seed=81, start=START, interval=90, clock=clock, leak_per_second=100.0) as shop,
        run_sandbox("woocommerce", seed=82, start=START, interval=90, clock=clock) as woo,
        run_sandbox("wechat_channels", seed=83, start=START, interval=90, clock=clock) as wechat,
    ):
        yield {"race_shopify": shop, "race_woocommerce": woo, "race_wechat_channels": wechat}


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        return {
            "ledger": conn.execute(text("SELECT count(*) FROM stock_ledger")).scalar_one(),
            "levels": conn.execute(
                text(
                    "SELECT l.sku_id, l.on_hand, l.reserved FROM stock_levels l JOIN locations loc "
                    "ON loc.id = l.location_id WHERE loc.code = :l ORDER BY l.sku_id"
                ),
                {"l": LOCATION},
            ).all(),
        }


def test_syncs_imports_and_pushes_at_once_never_oversell(
    tmp_path, monkeypatch, sandboxes, engine, database_url
):
    config_file, config = write_hub_config(
        tmp_path,
        {code: sandbox.platform for code, sandbox in sandboxes.items()},
        location=LOCATION,
        overlap_minutes=0,
        page_size=50,
        batch_size=40,  # many small transactions: more interleaving
        stock_policy={"locations": [LOCATION]},
    )
    env = {**os.environ, "HUB_CHANNELS_CONFIG": str(config_file), "HUB_DATABASE_URL": database_url}
    for code, sandbox in sandboxes.items():
        conn = sandbox_connection(sandbox.platform, sandbox.base_url, sandbox.access_token)
        env[f"AIRFLOW_CONN_{code.upper()}"] = json.dumps(conn)
        monkeypatch.setenv(f"AIRFLOW_CONN_{code.upper()}", json.dumps(conn))  # for the in-process pushes
    register_config(engine, config)
    for code, sandbox in sandboxes.items():
        seed_from_catalog(engine, config.channel(code), sandbox.world.catalog)
    catalog = next(iter(sandboxes.values())).world.catalog
    # Scarce: a count finds a few units of every SKU, while the orders of three channels compete for them.
    counts = tmp_path / "counts_scarce.csv"
    counts.write_text(
        "count_id,location,sku,counted_quantity,counted_at\n"
        + "".join(
            f"SC-{v.sku},{LOCATION},{v.sku},{3 + i % 4},{START.isoformat()}\n"
            for i, v in enumerate(catalog.variants)
        )
    )
    sales = tmp_path / "sales_pos.csv"
    sales.write_text(
        "receipt_id,line_no,location,sku,quantity,sold_at\n"
        + "".join(f"R-{i},1,{LOCATION},{v.sku},1,{NOW.isoformat()}\n" for i, v in enumerate(catalog.variants))
    )

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CHANNELBIN, *args], env=env, capture_output=True, text=True, timeout=300)

    def everything() -> list[subprocess.CompletedProcess]:
        jobs = [
            ("sync", "--channel", code, "--since", START.isoformat(), "--until", NOW.isoformat())
            for code in sandboxes
        ] + [("import", "counts", str(counts)), ("import", "sales", str(sales))]
        with ThreadPoolExecutor(max_workers=len(jobs) + len(sandboxes)) as pool:
            runs = [pool.submit(cli, *job) for job in jobs]
            pushes = [pool.submit(push_stock, engine, config.channel(code)) for code in sandboxes]
            for push in pushes:
                push.result()  # raises if a push failed
            return [run.result() for run in runs]

    for run in everything():
        # Exit 1 from an import: some rows were refused (a sale beyond on-hand), queued, not lost.
        assert run.returncode in (0, 1), run.stderr[-2000:]

    with engine.connect() as conn:
        assert oversold(conn) == 0
        assert ledger_drift(conn) == []
        assert conn.execute(text(RESERVATIONS_MATCH_SQL), {"location": LOCATION}).all() == []
        competing = conn.execute(
            text(
                "SELECT count(*) FROM exceptions e JOIN channels c ON c.id = e.channel_id "
                "WHERE c.code LIKE 'race_%' AND e.reason = 'insufficient_stock' AND e.status = 'open'"
            )
        ).scalar_one()
        failed = (
            conn.execute(
                text(
                    "SELECT e.detail FROM exceptions e JOIN channels c ON c.id = e.channel_id "
                    "WHERE c.code LIKE 'race_%' AND e.reason = 'apply_failed' AND e.status = 'open'"
                )
            )
            .scalars()
            .all()
        )
    assert competing > 0, "the stock must be scarce enough that orders compete for it"
    assert failed == [], "no batch may fail on a deadlock or a lost race"

    before = snapshot(engine)
    for run in everything():
        assert run.returncode in (0, 1), run.stderr[-2000:]
    assert snapshot(engine) == before


# -- issue 21: routed orders over two locations -----------------------------------------------------

ROUTED_RESERVATIONS_MATCH_SQL = """
SELECT s.code, loc.code, l.reserved, coalesce(sum(ol.reserved_quantity), 0) AS held
  FROM stock_levels l
  JOIN skus s ON s.id = l.sku_id AND s.code LIKE :prefix
  JOIN locations loc ON loc.id = l.location_id
  LEFT JOIN order_lines ol ON ol.sku_id = l.sku_id AND ol.location_id = l.location_id
 GROUP BY s.code, loc.code, l.reserved
HAVING l.reserved <> coalesce(sum(ol.reserved_quantity), 0)
"""


def test_routed_orders_over_scarce_stock_at_two_locations_never_oversell(engine):
    """Six workers ingest orders routed (split, nearest) over a few units at two locations, while another
    drains one location (``move_away``) twice: no level goes negative or above on-hand, levels equal their
    ledger and the lines' reservations, and both locations served orders."""
    import random
    from dataclasses import replace

    from warehouse import catalog
    from warehouse.ingest import ingest_orders
    from warehouse.route_lines import set_channel_routing
    from warehouse.route_moves import move_away
    from warehouse.routing import RoutingRules
    from warehouse.testing import Shop, landed, make_line, make_order

    shop = Shop.create(engine)
    east = f"{shop.prefix}-east"
    with engine.begin() as conn:
        catalog.upsert_location(conn, east, "east warehouse", province="浙江省", city="杭州市")
        set_channel_routing(conn, shop.channel, RoutingRules((shop.location, east), split=True, nearest=True))
    names = ["A", "B", "C", "D"]
    for name in names:
        shop.add_sku(name, 3)
        with engine.begin() as conn:
            catalog.receive_stock(conn, shop.sku(name), east, 3, f"receive:race:{shop.prefix}:{name}")

    rng = random.Random(21)
    orders = []
    for n in range(60):
        lines = [
            make_line(str(i), shop.sku(name), rng.randint(1, 2))
            for i, name in enumerate(rng.sample(names, rng.randint(1, 2)), 1)
        ]
        order = make_order(f"R{n:03d}", lines)
        if n % 2:
            order = replace(
                order, shipping_address=replace(order.shipping_address, province="浙江", city="杭州")
            )
        orders.append(landed(order))
    workers = [orders[i::6] for i in range(6)]

    def work(batch: list) -> None:
        for start in range(0, len(batch), 2):
            ingest_orders(engine, shop.channel, batch[start : start + 2])

    def drain() -> None:
        for _ in range(2):
            move_away(engine, shop.location, channel=shop.channel, actor="race")

    with ThreadPoolExecutor(max_workers=7) as pool:
        jobs = [pool.submit(work, batch) for batch in workers] + [pool.submit(drain)]
        for job in jobs:
            job.result()

    with engine.connect() as conn:
        assert oversold(conn) == 0
        assert ledger_drift(conn) == []
        assert conn.execute(text(ROUTED_RESERVATIONS_MATCH_SQL), {"prefix": f"{shop.prefix}-%"}).all() == []
        negative = conn.execute(
            text("SELECT count(*) FROM stock_levels WHERE on_hand - reserved < 0 OR on_hand < 0")
        ).scalar_one()
        used = dict(
            conn.execute(
                text(
                    "SELECT loc.code, sum(l.reserved) FROM stock_levels l JOIN locations loc "
                    "ON loc.id = l.location_id JOIN skus s ON s.id = l.sku_id AND s.code LIKE :prefix "
                    "GROUP BY loc.code"
                ),
                {"prefix": f"{shop.prefix}-%"},
            ).all()
        )
        short = conn.execute(
            text(
                "SELECT count(*) FROM exceptions e JOIN channels c ON c.id = e.channel_id "
                "WHERE c.code = :c AND e.reason = 'insufficient_stock' AND e.status = 'open'"
            ),
            {"c": shop.channel},
        ).scalar_one()
        failed = conn.execute(
            text(
                "SELECT count(*) FROM exceptions e JOIN channels c ON c.id = e.channel_id "
                "WHERE c.code = :c AND e.reason = 'apply_failed'"
            ),
            {"c": shop.channel},
        ).scalar_one()
    assert negative == 0
    assert short > 0, "the stock must be scarce enough that orders compete for it"
    assert failed == 0, "no batch may fail on a deadlock or a lost race"
    assert used.get(east, 0) > 0 and sum(used.values()) <= 2 * 3 * len(names)


# -- transfers (issue 21): transfers out of a location while orders reserve the same scarce stock ------


def test_transfers_and_reservations_at_once_never_oversell(engine):
    """Orders reserving and transfers sending out of one location's scarce stock, all at once, then the
    receipts at the destination while more orders reserve: no unit is oversold or counted twice, levels equal
    the ledger, and units in transit count for no channel."""
    from threading import Barrier

    from warehouse import catalog
    from warehouse.stock import stock_level
    from warehouse.stock_policy import StockPolicy, channel_stock
    from warehouse.store_imports import import_text
    from warehouse.testing import Shop, make_line, make_order
    from warehouse.transfers import TRANSIT_CODE

    shop = Shop.create(engine)
    store = f"{shop.prefix}-store"
    with engine.begin() as conn:
        catalog.upsert_location(conn, store, "store", "store")
    sku = shop.add_sku("SCARCE", 20)
    # 16 units ordered (1 each) and 16 sent (2 each) of 20: whatever the interleaving, both get some and
    # every unit is taken once (an order refused means none was free; a transfer refused, fewer than 2).
    orders, transfers = 16, 8
    start = Barrier(orders + transfers)

    def reserve(i: int) -> None:
        start.wait()
        shop.ingest(make_order(f"{shop.prefix}-o{i}", [make_line("l1", sku, 1)]))

    def send(i: int) -> int:
        start.wait()
        row = f"{shop.prefix}-T{i},1,{shop.location},{store},{sku},2,2026-12-01T09:00:00Z\n"
        text_ = "transfer_id,line_no,from_location,to_location,sku,quantity,sent_at\n" + row
        report = import_text(engine, "transfers", text_, file="t.csv", source="t.csv")
        return report.units["sent"]  # 0: refused, more than was free

    with ThreadPoolExecutor(max_workers=orders + transfers) as pool:
        reserving = [pool.submit(reserve, i) for i in range(orders)]
        sending = [pool.submit(send, i) for i in range(transfers)]
        for job in reserving:
            job.result()
        sent_by_transfer = [job.result() for job in sending]
    sent = sum(sent_by_transfer)

    def levels() -> dict[str, tuple[int, int]]:
        with engine.connect() as conn:
            return {code: stock_level(conn, sku, code) for code in (shop.location, TRANSIT_CODE, store)}

    def check() -> None:
        with engine.connect() as conn:
            assert oversold(conn) == 0
            assert ledger_drift(conn) == []
            assert conn.execute(text(RESERVATIONS_MATCH_SQL), {"location": shop.location}).all() == []
            sellable = {s.sku: s.available for s in channel_stock(conn, shop.channel, StockPolicy())}
        now = levels()
        assert all(0 <= reserved <= on_hand for on_hand, reserved in now.values()), now
        assert sum(on_hand for on_hand, _ in now.values()) == 20, now  # moved, never made or lost
        free_outside_transit = sum(
            on_hand - reserved for code, (on_hand, reserved) in now.items() if code != TRANSIT_CODE
        )
        assert sellable[sku] == free_outside_transit  # transit counts for no channel

    after_send = levels()
    reserved = after_send[shop.location][1]
    assert after_send[TRANSIT_CODE] == (sent, 0)
    assert reserved + sent == 20 and reserved > 0 and sent > 0  # every unit taken once
    assert reserved < orders or sent < 2 * transfers, "orders and transfers must compete"
    check()

    # Receipts at the destination while more orders reserve what is left: still nothing oversold.
    received = [i for i, units in enumerate(sent_by_transfer) if units]
    start = Barrier(len(received) + 6)

    def receive(i: int) -> None:
        start.wait()
        rows = f"{shop.prefix}-T{i},R{i},1,,2,2026-12-02T09:00:00Z\n"
        text_ = "transfer_id,receipt_id,line_no,sku,received_quantity,received_at\n" + rows
        import_text(engine, "transfer_receipts", text_, file="r.csv", source="r.csv")

    with ThreadPoolExecutor(max_workers=len(received) + 6) as pool:
        jobs = [pool.submit(receive, i) for i in received]
        jobs += [pool.submit(reserve, orders + i) for i in range(6)]
        for job in jobs:
            job.result()
    check()
    assert levels()[TRANSIT_CODE] == (0, 0) and levels()[store] == (sent, 0)
