"""Invariants 1 and 3 under load: concurrent workers, each on its own connections, race many orders for
scarce SKUs and land competing versions of the same orders."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import Engine, create_engine, func, select

from warehouse import exceptions as queue
from warehouse.ingest import IngestCounts
from warehouse.models import channels, locations, orders, skus, stock_ledger, stock_levels
from warehouse.testing import T0, Shop, make_line, make_order

WORKERS = 8
ORDERS_PER_WORKER = 30
BATCH = 6
STOCK = {"A": 40, "B": 25, "C": 10, "MULTI": 30}


def test_concurrent_workers_never_oversell(database_url: str):
    engine = create_engine(database_url, pool_size=WORKERS + 2, max_overflow=0)
    try:
        run_race(engine)
    finally:
        engine.dispose()


def run_race(engine: Engine) -> None:
    shop = Shop.create(engine)
    for name, units in STOCK.items():
        shop.add_sku(name, units)
    rng = random.Random(20261124)
    plans = []
    for worker in range(WORKERS):
        orders = []
        for index in range(ORDERS_PER_WORKER):
            names = rng.sample(["A", "B", "C"], rng.randint(1, 2))
            lines = [make_line(str(n), shop.sku(name), 1) for n, name in enumerate(names, 1)]
            lines.append(make_line("9", shop.sku("MULTI"), rng.randint(1, 3)))
            orders.append(make_order(f"w{worker}-{index}", lines))
        plans.append(orders)
    unique_orders = [order for orders in plans for order in orders]
    # Every worker also re-sends a slice of its neighbour's orders: duplicates must not double-reserve.
    work = [orders + plans[(w + 1) % WORKERS][::3] for w, orders in enumerate(plans)]
    for orders in work:
        rng.shuffle(orders)

    start = threading.Barrier(WORKERS)

    def worker(orders) -> IngestCounts:
        counts = IngestCounts()
        start.wait()
        for i in range(0, len(orders), BATCH):
            counts.merge(shop.ingest(*orders[i : i + BATCH]))
        return counts

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(worker, work))
    total = IngestCounts()
    for counts in results:
        total.merge(counts)
    assert total.new == len(unique_orders)

    demand: Counter[str] = Counter()
    for order in unique_orders:
        for line in order.lines:
            demand[line.sku] += line.quantity

    with engine.connect() as conn:
        levels = {
            code: (on_hand, reserved)
            for code, on_hand, reserved in conn.execute(
                select(skus.c.code, stock_levels.c.on_hand, stock_levels.c.reserved)
                .join(skus, skus.c.id == stock_levels.c.sku_id)
                .join(locations, locations.c.id == stock_levels.c.location_id)
                .where(locations.c.code == shop.location)
            )
        }
        sums = {
            code: (int(on_hand), int(reserved))
            for code, on_hand, reserved in conn.execute(
                select(
                    skus.c.code,
                    func.sum(stock_ledger.c.delta_on_hand),
                    func.sum(stock_ledger.c.delta_reserved),
                )
                .join(skus, skus.c.id == stock_ledger.c.sku_id)
                .join(locations, locations.c.id == stock_ledger.c.location_id)
                .where(locations.c.code == shop.location)
                .group_by(skus.c.code)
            )
        }
        short = queue.list_open(conn, channel=shop.channel, reason="insufficient_stock")
    shortfalls = Counter(e["sku"] for e in short)

    assert levels == sums, "stock levels differ from the ledger"
    for name, units in STOCK.items():
        code = shop.sku(name)
        on_hand, reserved = levels[code]
        assert on_hand == units and reserved <= on_hand, f"{code} oversold: {reserved} reserved of {on_hand}"
    # Single units: exactly min(demand, stock) reserved, and every unit short is one queued exception.
    for name in ("A", "B", "C"):
        code = shop.sku(name)
        assert demand[code] > STOCK[name], "the race needs more demand than stock"
        assert levels[code][1] == min(demand[code], STOCK[name])
        assert shortfalls[code] == demand[code] - STOCK[name]
    # Mixed quantities: all or nothing per line; every line left short needed more than is still free
    # (availability only shrank during the race, so it was short then too).
    multi = shop.sku("MULTI")
    quantity_of = {o.external_id: o.lines[-1].quantity for o in unique_orders}
    short_quantities = [quantity_of[e["external_id"]] for e in short if e["sku"] == multi]
    assert short_quantities, "the race needs more demand than stock"
    assert STOCK["MULTI"] - levels[multi][1] < min(short_quantities)


def test_concurrent_versions_of_one_order_never_regress(database_url: str):
    """Two workers land an old and a new version of the same orders at the same moment: whoever commits
    last, the newer version stays and stock matches it."""
    engine = create_engine(database_url, pool_size=4, max_overflow=0)
    try:
        shop = Shop.create(engine)
        shop.add_sku("A", 1000)
        rounds = 15
        old = [make_order(f"v{i}", [make_line("1", shop.sku("A"), 5)], updated_at=T0) for i in range(rounds)]
        new = [
            make_order(f"v{i}", [make_line("1", shop.sku("A"), 2)], updated_at=T0 + timedelta(minutes=1))
            for i in range(rounds)
        ]
        for i in range(rounds):
            start = threading.Barrier(2)

            def land(order, start=start):
                start.wait()
                return shop.ingest(order)

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(land, [old[i], new[i]] if i % 2 else [new[i], old[i]]))
        with engine.connect() as conn:
            versions = conn.execute(
                select(orders.c.updated_at)
                .join(channels, channels.c.id == orders.c.channel_id)
                .where(channels.c.code == shop.channel)
            ).scalars()
            assert set(versions) == {T0 + timedelta(minutes=1)}
        assert shop.level("A") == (1000, 2 * rounds)
    finally:
        engine.dispose()


def test_a_raw_payload_landed_by_a_concurrent_writer_first_gets_that_writers_id(engine: Engine):
    """``land_raw`` takes the ids of what it inserted from RETURNING; a payload another transaction landed
    while this one waited on it is not returned, and is looked up instead."""
    payload = {"id": "raw-race", "nonce": random.Random().random()}
    writer_done, ids = threading.Event(), {}
    with engine.connect() as first:
        transaction = first.begin()
        first_id = queue.land_raw(first, None, [("raw-race", payload)])[0]

        def second_writer() -> None:
            with engine.begin() as second:  # waits on the first writer's uncommitted row
                ids["second"] = queue.land_raw(second, None, [("raw-race", payload)])[0]
            writer_done.set()

        thread = threading.Thread(target=second_writer)
        thread.start()
        assert not writer_done.wait(0.5)  # blocked on the conflict
        transaction.commit()
        thread.join(10)
    assert ids["second"] == first_id
