"""Bundles sell from their components' stock (the stock policy), so a bundle's order line reserves, deducts,
releases and restocks its components, all of them or none, and levels still equal the ledger (invariants
2-4). Before, a bundle line reserved the bundle SKU itself, which never has stock: every bundle order waited
as a shortfall while its components went on selling elsewhere."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine, create_engine, select
from test_warehouse_stock import assert_consistent, ledger

from warehouse import exceptions as queue
from warehouse.catalog import CatalogError
from warehouse.ingest import retry_attention
from warehouse.models import channels, order_lines, orders
from warehouse.stock_policy import StockPolicy, channel_stock, set_bundle
from warehouse.store_imports import import_text
from warehouse.testing import T0, Shop, make_line, make_order


@pytest.fixture()
def shop(engine: Engine) -> Shop:
    """MUG (10 on hand), TEE (3), and GIFT, a bundle of 2 mugs and a tee; all listed on the channel."""
    shop = Shop.create(engine)
    shop.add_sku("MUG", 10)
    shop.add_sku("TEE", 3)
    shop.add_sku("GIFT")
    set_recipe(shop, [("MUG", 2), ("TEE", 1)])
    return shop


def set_recipe(shop: Shop, recipe: list[tuple[str, int]]) -> None:
    with shop.engine.begin() as conn:
        set_bundle(conn, shop.sku("GIFT"), [(shop.sku(name), units) for name, units in recipe])


def gift_order(
    shop: Shop, external_id: str, quantity: int, minutes: int = 0, order: dict | None = None, **line
) -> None:
    """Version ``minutes`` of an order of ``quantity`` gift sets (``line``: shipped, refunded, ...)."""
    shop.ingest(
        make_order(
            external_id,
            [make_line("1", shop.sku("GIFT"), quantity, **line)],
            updated_at=T0 + timedelta(minutes=minutes),
            **(order or {}),
        )
    )


def of_shop(shop: Shop):
    """The shop's orders (tests share one database)."""
    return (
        orders.c.channel_id == select(channels.c.id).where(channels.c.code == shop.channel).scalar_subquery()
    )


def sellable(shop: Shop) -> dict[str, int]:
    with shop.engine.connect() as conn:
        rows = channel_stock(conn, shop.channel, StockPolicy(locations=(shop.location,)))
    return {row.sku.removeprefix(f"{shop.prefix}-"): row.sellable for row in rows}


def test_a_bundle_order_reserves_its_components_and_every_listing_sells_what_is_left(shop: Shop):
    assert sellable(shop) == {"MUG": 10, "TEE": 3, "GIFT": 3}
    counts = shop.ingest(make_order("B1", [make_line("1", shop.sku("GIFT"), 2)]))

    assert counts.reserved_units == 6 and counts.exceptions == {}  # 4 mugs and 2 tees
    assert (shop.level("MUG"), shop.level("TEE"), shop.level("GIFT")) == ((10, 4), (3, 2), (0, 0))
    base = f"reserve:{shop.channel}:B1:1"
    assert ledger(shop)[-2:] == [
        (f"{base}@{shop.sku('MUG')}", "reserve", 0, 4),
        (f"{base}@{shop.sku('TEE')}", "reserve", 0, 2),
    ]
    assert sellable(shop) == {"MUG": 6, "TEE": 1, "GIFT": 1}
    with shop.engine.connect() as conn:
        (line,) = conn.execute(
            select(order_lines.c.reserved_quantity, order_lines.c.applied_components)
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(of_shop(shop))
        ).all()
    assert line.reserved_quantity == 2 and sorted(line.applied_components.values()) == [1, 2]

    replay = shop.ingest(make_order("B1", [make_line("1", shop.sku("GIFT"), 2)]))
    assert (replay.unchanged, replay.reserved_units) == (1, 0)
    assert_consistent(shop)


def test_a_bundle_takes_all_its_components_or_none(shop: Shop):
    gift_order(shop, "B2", 4)  # 8 mugs are there, 4 tees are not

    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 0), (3, 0)), "no component was half-reserved"
    with shop.engine.connect() as conn:
        (short,) = queue.list_open(conn, channel=shop.channel, reason="insufficient_stock")
    assert short["external_id"] == "B2" and short["sku"] == shop.sku("GIFT")
    assert "needed 4, available 3" in short["detail"]
    assert (
        f"2 x {shop.sku('MUG')} (10 available)" in short["detail"]
        and f"1 x {shop.sku('TEE')} (3 available)" in short["detail"]
    )

    shop.receive("TEE", 1)  # the fourth tee arrives: the waiting order reserves every component
    assert retry_attention(shop.engine, shop.channel).reserved_units == 12
    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 8), (4, 4))
    with shop.engine.connect() as conn:
        assert queue.list_open(conn, channel=shop.channel, reason="insufficient_stock") == []
    assert_consistent(shop)


def test_shipping_cancelling_and_returning_a_bundle_act_on_its_components(shop: Shop):
    gift_order(shop, "B3", 2)
    gift_order(shop, "B3", 2, minutes=1, shipped=1)  # one set left the warehouse
    assert (shop.level("MUG"), shop.level("TEE")) == ((8, 2), (2, 1))
    # Refunded, and the platform says it came back: only a physical return restocks (tests/test_returns.py).
    gift_order(shop, "B3", 2, minutes=2, shipped=1, refunded=1, restocked=1)
    assert (shop.level("MUG"), shop.level("TEE")) == ((8, 2), (2, 1))

    gift_order(shop, "B4", 1)
    gift_order(shop, "B4", 1, minutes=1, order={"cancelled": True})
    assert (shop.level("MUG"), shop.level("TEE")) == ((8, 2), (2, 1)), "the cancel released both components"
    kinds = [(key.split(":", 1)[0], key.rsplit("@", 1)[1]) for key, *_ in ledger(shop) if ":B4:" in key]
    assert kinds == [
        ("reserve", shop.sku("MUG")),
        ("reserve", shop.sku("TEE")),
        ("release", shop.sku("MUG")),
        ("release", shop.sku("TEE")),
    ]
    assert_consistent(shop)


def test_a_recipe_changed_later_releases_what_the_line_really_reserved(shop: Shop):
    gift_order(shop, "B5", 1)
    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 2), (3, 1))
    set_recipe(shop, [("MUG", 1)])  # the set loses its tee for new orders
    gift_order(shop, "B5", 1, minutes=1, order={"payment_status": "voided"})
    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 0), (3, 0))
    gift_order(shop, "B6", 3)  # a new order takes the new recipe
    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 3), (3, 0))
    assert_consistent(shop)


def test_a_count_below_a_component_reserved_by_bundles_releases_whole_bundles(shop: Shop):
    shop.ingest(make_order("B7", [make_line("1", shop.sku("GIFT"), 2)], created_at=T0))
    shop.ingest(make_order("B8", [make_line("1", shop.sku("GIFT"), 1)], created_at=T0 + timedelta(minutes=5)))
    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 6), (3, 3))

    counted = (
        "count_id,location,sku,counted_quantity,counted_at\n"
        f",{shop.location},{shop.sku('TEE')},2,2026-11-02T08:00:00Z\n"
    )
    report = import_text(shop.engine, "counts", counted, file="counts.csv", source="test")

    assert not report.rejected and report.units["released"] == 1
    # the newest order's set gives back its tee and both its mugs
    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 4), (2, 2))
    with shop.engine.connect() as conn:
        (short,) = queue.list_open(conn, channel=shop.channel, reason="insufficient_stock")
        waiting = (
            conn.execute(select(orders.c.external_id).where(of_shop(shop), orders.c.needs_attention))
            .scalars()
            .all()
        )
    assert short["external_id"] == "B8" and waiting == ["B8"]
    assert f"sku {shop.sku('TEE')} (in bundle {shop.sku('GIFT')})" in short["detail"]
    assert_consistent(shop)


def test_a_bundle_line_beside_a_line_of_its_component(shop: Shop):
    """Each acts on the stock it names, in one batch."""
    shop.ingest(make_order("B9", [make_line("1", shop.sku("GIFT"), 1), make_line("2", shop.sku("MUG"), 3)]))
    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 5), (3, 1))
    assert_consistent(shop)


def test_workers_racing_bundles_and_components_never_oversell(database_url: str):
    """Six workers at once land orders of sets and of loose mugs and tees, far more than the stock: every
    line holds all it asked or nothing, and what the lines hold is exactly what the levels say is reserved."""
    engine = create_engine(database_url, pool_size=8, max_overflow=0)
    try:
        shop = Shop.create(engine)
        shop.add_sku("MUG", 30)
        shop.add_sku("TEE", 12)
        shop.add_sku("GIFT")
        set_recipe(shop, [("MUG", 2), ("TEE", 1)])
        rng = random.Random(20261125)
        work = [
            [
                make_order(
                    f"r{worker}-{index}",
                    [
                        make_line(str(n), shop.sku(name), rng.randint(1, 2))
                        for n, name in enumerate(rng.sample(["GIFT", "MUG", "TEE"], rng.randint(1, 3)), 1)
                    ],
                )
                for index in range(25)
            ]
            for worker in range(6)
        ]
        start = threading.Barrier(len(work))

        def worker(orders: list) -> None:
            start.wait()
            for i in range(0, len(orders), 5):
                shop.ingest(*orders[i : i + 5])

        with ThreadPoolExecutor(len(work)) as pool:
            list(pool.map(worker, work))

        with engine.connect() as conn:
            lines = conn.execute(
                select(order_lines.c.merchant_sku, order_lines.c.quantity, order_lines.c.reserved_quantity)
                .join(orders, orders.c.id == order_lines.c.order_id)
                .where(of_shop(shop))
            ).all()
        assert len(lines) > 150
        assert all(line.reserved_quantity in (0, line.quantity) for line in lines), "a line half reserved"
        recipes = {"GIFT": [("MUG", 2), ("TEE", 1)], "MUG": [("MUG", 1)], "TEE": [("TEE", 1)]}
        held = Counter[str]()
        for line in lines:
            for name, units in recipes[line.merchant_sku.removeprefix(f"{shop.prefix}-")]:
                held[name] += line.reserved_quantity * units
        assert (shop.level("MUG"), shop.level("TEE")) == ((30, held["MUG"]), (12, held["TEE"]))
        sets = [line.reserved_quantity for line in lines if line.merchant_sku == shop.sku("GIFT")]
        assert any(sets) and not all(sets), "some sets were reserved, and stock ran short for others"
        assert_consistent(shop)
    finally:
        engine.dispose()


def import_csv(shop: Shop, kind: str, header: str, *rows: str):
    return import_text(
        shop.engine, kind, "\n".join([header, *rows]) + "\n", file=f"{kind}.csv", source="test"
    )


SALES = "receipt_id,line_no,location,sku,quantity,sold_at"


def test_a_store_sale_of_a_bundle_deducts_its_components_and_a_return_puts_them_back(shop: Shop):
    gift, mug, tee = shop.sku("GIFT"), shop.sku("MUG"), shop.sku("TEE")
    shop.ingest(make_order("B10", [make_line("1", mug, 7)]))
    report = import_csv(
        shop,
        "sales",
        SALES,
        f"R1,1,{shop.location},{gift},1,2026-11-02T10:00:00Z",
        f"R1,2,{shop.location},{gift},3,2026-11-02T10:00:00Z",  # 3 tees: only 2 are left on the shelf
        f"R2,1,{shop.location},{gift},-1,2026-11-02T11:00:00Z",  # a set brought back
    )
    assert (report.applied, report.units["sold"], report.units["returned"]) == (2, 1, 1)
    (rejected,) = report.rejected
    assert (
        f"sells 3 of {tee}, in 3 x bundle {gift}, at {shop.location} but only 2 are on hand"
        in rejected.reason
    )
    assert (shop.level("MUG"), shop.level("TEE")) == ((10, 7), (3, 0)), "sold and returned; nothing half-sold"
    assert [key for key, *_ in ledger(shop) if key.startswith("pos:")] == [
        f"pos:{shop.location}:R1:1@{mug}",
        f"pos:{shop.location}:R1:1@{tee}",
        f"pos:{shop.location}:R2:1@{mug}",
        f"pos:{shop.location}:R2:1@{tee}",
    ]
    again = import_csv(shop, "sales", SALES, f"R1,1,{shop.location},{gift},1,2026-11-02T10:00:00Z")
    assert (again.applied, again.already_applied) == (0, 1)
    assert_consistent(shop)


def test_a_count_of_a_bundle_is_refused_with_its_components_named(shop: Shop):
    gift, mug, tee = shop.sku("GIFT"), shop.sku("MUG"), shop.sku("TEE")
    header = "count_id,location,sku,counted_quantity,counted_at"
    report = import_csv(shop, "counts", header, f",{shop.location},{gift},4,2026-11-02T08:00:00Z")
    (rejected,) = report.rejected
    assert rejected.reason == (
        f"{gift} is a bundle of 2 x {mug}, 1 x {tee}: it has no stock of its own, count its components"
    )
    assert shop.level("GIFT") == (0, 0)


def test_bundles_are_built_from_skus_with_stock_not_from_other_bundles(shop: Shop):
    shop.add_sku("HAMPER")
    gift, mug = shop.sku("GIFT"), shop.sku("MUG")
    with shop.engine.begin() as conn, pytest.raises(CatalogError, match=f"{gift} is a bundle itself"):
        set_bundle(conn, shop.sku("HAMPER"), [(gift, 2)])
    with (
        shop.engine.begin() as conn,
        pytest.raises(CatalogError, match=f"{mug} is a component of bundle {gift}"),
    ):
        set_bundle(conn, mug, [(shop.sku("TEE"), 1)])
