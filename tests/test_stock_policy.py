"""Stock policy: what each channel listing may sell of the warehouse's free stock."""

from __future__ import annotations

import uuid

import pytest

from channelhub.config import parse_config
from warehouse import catalog
from warehouse.stock_policy import (
    StockPolicy,
    channel_stock,
    record_push,
    sellable_quantity,
    set_bundle,
)


@pytest.mark.parametrize(
    ("available", "policy", "expected"),
    [
        (10, StockPolicy(), 10),
        (-3, StockPolicy(), 0),  # never negative
        (10, StockPolicy(safety_stock=3), 7),
        (2, StockPolicy(safety_stock=3), 0),
        (10, StockPolicy(percentage=50), 5),
        (9, StockPolicy(percentage=50), 4),  # rounded down: never promise half a unit
        (10, StockPolicy(safety_stock=2, percentage=50), 4),  # safety stock first, then the share
        (3, StockPolicy(zero_at_or_below=3), 0),
        (4, StockPolicy(zero_at_or_below=3), 4),
        (100, StockPolicy(max=20), 20),
        (5, StockPolicy(min=8), 5),  # min never shows more than is really there
        (20, StockPolicy(percentage=10, min=8), 8),
        (0, StockPolicy(min=8), 0),
    ],
)
def test_sellable_quantity(available, policy, expected):
    assert sellable_quantity(available, policy) == expected


def test_policy_from_config_with_per_sku_overrides():
    config = parse_config(
        {
            "locations": [{"code": "W1", "name": "W1"}, {"code": "S1", "name": "Store", "kind": "store"}],
            "channels": [
                {
                    "code": "c1",
                    "platform": "shopify",
                    "conn_id": "c1",
                    "fulfilment_location": "W1",
                    "stock_policy": {
                        "locations": ["W1"],
                        "safety_stock": 2,
                        "percentage": 80,
                        "listings": {"TEE-RED": {"max": 5}},
                    },
                }
            ],
        }
    )
    policy = config.channel("c1").stock_policy
    assert policy.locations == ("W1",) and policy.safety_stock == 2 and policy.percentage == 80
    tee = policy.for_sku("TEE-RED")
    assert (tee.max, tee.safety_stock, tee.locations) == (5, 2, ("W1",))  # overrides keep the rest
    assert policy.for_sku("OTHER") is policy


@pytest.fixture()
def shop(engine):
    """A channel with listings for two SKUs, a bundle of them, and stock at a warehouse and a store."""
    tag = uuid.uuid4().hex[:8]
    codes = {name: f"{name}-{tag}" for name in ("MUG", "TEE", "GIFTSET", "WH", "ST", "ch")}
    with engine.begin() as conn:
        catalog.upsert_location(conn, codes["WH"], "warehouse", "warehouse")
        catalog.upsert_location(conn, codes["ST"], "store", "store")
        catalog.upsert_channel(conn, codes["ch"], "shopify", "test", codes["WH"])
        for sku in ("MUG", "TEE", "GIFTSET"):
            catalog.upsert_sku(conn, codes[sku], sku)
            catalog.upsert_listing(conn, codes["ch"], codes[sku], merchant_sku=codes[sku])
        catalog.receive_stock(conn, codes["MUG"], codes["WH"], 10, f"r1-{tag}")
        catalog.receive_stock(conn, codes["MUG"], codes["ST"], 4, f"r2-{tag}")
        catalog.receive_stock(conn, codes["TEE"], codes["WH"], 3, f"r3-{tag}")
        set_bundle(conn, codes["GIFTSET"], [(codes["MUG"], 2), (codes["TEE"], 1)])
    return codes


def by_sku(rows, codes):
    names = {v: k for k, v in codes.items()}
    return {names[r.sku]: r for r in rows}


def test_locations_and_bundles(engine, shop):
    with engine.connect() as conn:
        everywhere = by_sku(channel_stock(conn, shop["ch"], StockPolicy()), shop)
        warehouse_only = by_sku(channel_stock(conn, shop["ch"], StockPolicy(locations=(shop["WH"],))), shop)
    assert everywhere["MUG"].sellable == 14 and warehouse_only["MUG"].sellable == 10
    # A gift set needs 2 mugs and 1 tee: 14 mugs -> 7 sets, but only 3 tees -> 3 sets.
    assert everywhere["GIFTSET"].available == 3 and everywhere["GIFTSET"].sellable == 3
    assert all(row.pushed_quantity is None and row.changed for row in everywhere.values())


def test_only_changed_listings_need_a_push(engine, shop):
    policy = StockPolicy()
    with engine.begin() as conn:
        for row in channel_stock(conn, shop["ch"], policy):
            record_push(conn, shop["ch"], row, "pushed")
    with engine.begin() as conn:
        assert not any(row.changed for row in channel_stock(conn, shop["ch"], policy))
        catalog.receive_stock(conn, shop["TEE"], shop["WH"], 1, f"more-{shop['TEE']}")
        changed = {row.sku for row in channel_stock(conn, shop["ch"], policy) if row.changed}
    assert changed == {shop["TEE"], shop["GIFTSET"]}  # the tee, and the bundle built from it


def test_a_rejected_push_opens_an_exception_and_a_later_push_clears_it(engine, shop):
    from warehouse import exceptions as queue

    with engine.begin() as conn:
        (mug,) = [r for r in channel_stock(conn, shop["ch"], StockPolicy()) if r.sku == shop["MUG"]]
        record_push(conn, shop["ch"], mug, "rejected", "inventory item not stocked at location")
        record_push(conn, shop["ch"], mug, "rejected", "inventory item not stocked at location")
        opened = queue.list_open(conn, channel=shop["ch"], reason="push_failed")
        assert len(opened) == 1 and opened[0]["sku"] == shop["MUG"]
        assert "not stocked at location" in opened[0]["detail"]
        (mug,) = [r for r in channel_stock(conn, shop["ch"], StockPolicy()) if r.sku == shop["MUG"]]
        assert mug.changed, "a rejected push leaves the listing to push again"
        record_push(conn, shop["ch"], mug, "pushed")
        assert queue.list_open(conn, channel=shop["ch"], reason="push_failed") == []
