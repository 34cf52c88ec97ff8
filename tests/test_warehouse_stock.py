"""Stock in the warehouse: every change is a keyed ledger row and levels equal ledger sums (invariant 2),
reservations never oversell (invariant 3), and the order's state drives stock per line (invariant 4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from warehouse import catalog, stock
from warehouse import exceptions as queue
from warehouse.ingest import retry_attention
from warehouse.line_stock import stock_targets
from warehouse.models import locations, skus, stock_ledger
from warehouse.testing import T0, Shop, make_line, make_order


@pytest.fixture()
def shop(engine: Engine) -> Shop:
    return Shop.create(engine)


def ledger(shop: Shop) -> list[tuple[str, str, int, int]]:
    """(key, kind, delta_on_hand, delta_reserved) of the shop's SKUs, oldest first."""
    with shop.engine.connect() as conn:
        rows = conn.execute(
            select(
                stock_ledger.c.idempotency_key,
                stock_ledger.c.kind,
                stock_ledger.c.delta_on_hand,
                stock_ledger.c.delta_reserved,
            )
            .join(skus, skus.c.id == stock_ledger.c.sku_id)
            .where(skus.c.code.like(f"{shop.prefix}-%"), stock_ledger.c.kind != "receive")
            .order_by(stock_ledger.c.id)
        )
        return [tuple(r) for r in rows]


def ledger_sums(shop: Shop, name: str) -> tuple[int, int]:
    with shop.engine.connect() as conn:
        on_hand, reserved = conn.execute(
            select(
                func.coalesce(func.sum(stock_ledger.c.delta_on_hand), 0),
                func.coalesce(func.sum(stock_ledger.c.delta_reserved), 0),
            )
            .join(skus, skus.c.id == stock_ledger.c.sku_id)
            .join(locations, locations.c.id == stock_ledger.c.location_id)
            .where(skus.c.code == shop.sku(name), locations.c.code == shop.location)
        ).one()
    return on_hand, reserved


def open_exceptions(shop: Shop, reason: str | None = None) -> list[dict]:
    with shop.engine.connect() as conn:
        return queue.list_open(conn, channel=shop.channel, reason=reason)


def assert_consistent(shop: Shop) -> None:
    for sku in shop.skus:
        name = sku.removeprefix(f"{shop.prefix}-")
        assert shop.level(name) == ledger_sums(shop, name), f"{sku}: level differs from its ledger"
        on_hand, reserved = shop.level(name)
        assert 0 <= reserved <= on_hand, f"{sku}: oversold ({on_hand} on hand, {reserved} reserved)"


# -- invariant 2: ledger ---------------------------------------------------------------------------


def test_every_stock_change_is_a_keyed_ledger_row_and_a_replayed_batch_changes_nothing(shop: Shop):
    shop.add_sku("A", 10)
    shop.add_sku("B", 10)
    batch = [
        make_order("2001", [make_line("1", shop.sku("A"), 2), make_line("2", shop.sku("B"), 1)]),
        make_order("2002", [make_line("1", shop.sku("A"), 3, shipped=1)]),
    ]
    first = shop.ingest(*batch)
    assert (first.reserved_units, first.deducted_units) == (5, 1)
    rows = ledger(shop)
    assert [r[0] for r in rows] == [
        f"reserve:{shop.channel}:2001:1",
        f"reserve:{shop.channel}:2001:2",
        f"deduct:{shop.channel}:2002:1",  # the shipped unit (never reserved before) leaves on-hand
        f"reserve:{shop.channel}:2002:1",  # the two still to ship
    ]
    levels = (shop.level("A"), shop.level("B"))
    assert levels == ((9, 4), (10, 1))

    replay = shop.ingest(*batch)
    assert (replay.unchanged, replay.reserved_units, replay.deducted_units) == (2, 0, 0)
    assert ledger(shop) == rows and (shop.level("A"), shop.level("B")) == levels
    assert_consistent(shop)


def test_later_steps_of_the_same_kind_get_numbered_keys(shop: Shop):
    shop.add_sku("A", 10)
    v = [
        make_order("2003", [make_line("1", shop.sku("A"), q)], updated_at=T0 + timedelta(minutes=i))
        for i, q in enumerate([1, 3, 2, 4])
    ]
    for version in v:
        shop.ingest(version)
    keys = [r[0] for r in ledger(shop)]
    base = f"{shop.channel}:2003:1"
    assert keys == [f"reserve:{base}", f"reserve:{base}#2", f"release:{base}", f"reserve:{base}#3"]
    assert shop.level("A") == (10, 4)


def test_receive_is_idempotent_by_key_and_the_ledger_is_append_only(shop: Shop):
    shop.add_sku("A")
    assert shop.receive("A", 5, key="receive:po-1") is True
    assert shop.receive("A", 5, key="receive:po-1") is False
    assert shop.level("A") == (5, 0) == ledger_sums(shop, "A")
    with shop.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(
            text("UPDATE stock_ledger SET delta_on_hand = 50 WHERE idempotency_key = 'receive:po-1'")
        )


def test_ledger_drift_finds_a_level_changed_behind_the_ledgers_back(fresh_database_url: str):
    from sqlalchemy import create_engine

    engine = create_engine(fresh_database_url)
    try:
        shop = Shop.create(engine)
        shop.add_sku("A", 7)
        shop.ingest(make_order("2004", [make_line("1", shop.sku("A"), 2)]))
        with engine.begin() as conn:
            assert stock.ledger_drift(conn) == [] and stock.oversold(conn) == 0
            conn.execute(text("UPDATE stock_levels SET on_hand = on_hand + 1"))  # not through the ledger
            (drift,) = stock.ledger_drift(conn)
            assert (drift.sku, drift.on_hand, drift.ledger_on_hand, drift.reserved) == (
                shop.sku("A"),
                8,
                7,
                2,
            )
    finally:
        engine.dispose()


# -- invariant 3: no oversell ----------------------------------------------------------------------


def test_a_shortfall_becomes_an_exception_and_never_negative_availability(shop: Shop):
    shop.add_sku("A", 3)
    counts = shop.ingest(
        make_order("2010", [make_line("1", shop.sku("A"), 2)]),
        make_order("2011", [make_line("1", shop.sku("A"), 2)]),  # only 1 left: all or nothing
        make_order("2012", [make_line("1", shop.sku("A"), 1)]),
    )
    assert counts.reserved_units == 3 and counts.exceptions == {"insufficient_stock": 1}
    assert shop.level("A") == (3, 3)
    (shortfall,) = open_exceptions(shop, "insufficient_stock")
    assert shortfall["external_id"] == "2011" and shortfall["sku"] == shop.sku("A")
    assert f"sku {shop.sku('A')} at {shop.location}: needed 2, available 0" in shortfall["detail"]
    assert_consistent(shop)

    # Stock arrives: a retry reserves the line and resolves the exception.
    shop.receive("A", 5)
    retried = retry_attention(shop.engine, shop.channel)
    assert retried.reserved_units == 2 and shop.level("A") == (8, 5)
    assert open_exceptions(shop, "insufficient_stock") == []
    assert_consistent(shop)


def test_an_unknown_sku_waits_in_the_queue_until_it_is_mapped(shop: Shop):
    shop.add_sku("A", 5)
    shop.add_sku("B", 5, listed=False)
    order = make_order(
        "2013", [make_line("1", shop.sku("A"), 1), make_line("2", "CHANNEL-ONLY-B", 2, product_id="77")]
    )
    counts = shop.ingest(order)
    assert counts.reserved_units == 1 and counts.exceptions == {"unknown_sku": 1}  # the rest still applies
    (unknown,) = open_exceptions(shop, "unknown_sku")
    assert unknown["sku"] == "CHANNEL-ONLY-B" and "CHANNEL-ONLY-B" in unknown["detail"]

    with shop.engine.begin() as conn:  # the integrator maps the channel's product id
        catalog.upsert_listing(conn, shop.channel, shop.sku("B"), channel_product_id="77")
    again = shop.ingest(order)  # re-pulling the unchanged order re-evaluates it
    assert (again.unchanged, again.reserved_units) == (1, 2)
    assert shop.level("B") == (5, 2) and open_exceptions(shop) == []
    assert shop.ingest(order).reserved_units == 0  # fixed now: a no-op again


def test_conditional_reservation_is_atomic_per_statement(shop: Shop):
    shop.add_sku("A", 2)
    with shop.engine.begin() as conn:
        sku_id, location_id = (
            catalog.sku_id_of(conn, shop.sku("A")),
            catalog.location_id_of(conn, shop.location),
        )
        results = stock.apply_steps(
            conn, [stock.Step(sku_id, location_id, 0, 2), stock.Step(sku_id, location_id, 0, 1)]
        )
        conn.rollback()
    assert results == [0, None]  # the second finds nothing available and changes nothing


# -- invariant 4: order state drives stock ---------------------------------------------------------


def test_cancel_before_shipping_releases(shop: Shop):
    shop.add_sku("A", 10)
    shop.ingest(make_order("2020", [make_line("1", shop.sku("A"), 4)]))
    cancelled = make_order(
        "2020", [make_line("1", shop.sku("A"), 4)], cancelled=True, updated_at=T0 + timedelta(1)
    )
    assert shop.ingest(cancelled).released_units == 4
    assert shop.level("A") == (10, 0)
    voided = make_order("2021", [make_line("1", shop.sku("A"), 2)], payment_status="voided")
    assert shop.ingest(voided).reserved_units == 0 and shop.level("A") == (10, 0)
    assert_consistent(shop)


def test_partial_refund_releases_per_line(shop: Shop):
    shop.add_sku("A", 10)
    shop.add_sku("B", 10)
    lines = [make_line("1", shop.sku("A"), 3), make_line("2", shop.sku("B"), 2)]
    shop.ingest(make_order("2030", lines))
    refunded = [make_line("1", shop.sku("A"), 3, refunded=1), make_line("2", shop.sku("B"), 2)]
    counts = shop.ingest(
        make_order("2030", refunded, payment_status="partially_refunded", updated_at=T0 + timedelta(1))
    )
    assert counts.released_units == 1
    assert (shop.level("A"), shop.level("B")) == ((10, 2), (10, 2))
    assert_consistent(shop)


def test_shipping_deducts_on_hand_and_releases_the_reservation_per_quantity(shop: Shop):
    shop.add_sku("A", 10)
    shop.ingest(make_order("2040", [make_line("1", shop.sku("A"), 3)]))
    partial = shop.ingest(
        make_order("2040", [make_line("1", shop.sku("A"), 3, shipped=1)], updated_at=T0 + timedelta(1))
    )
    assert (partial.deducted_units, partial.released_units) == (1, 0)
    assert shop.level("A") == (9, 2)
    rest = shop.ingest(
        make_order("2040", [make_line("1", shop.sku("A"), 3, shipped=3)], updated_at=T0 + timedelta(2))
    )
    assert rest.deducted_units == 2 and shop.level("A") == (7, 0)
    assert [r[1:] for r in ledger(shop)] == [("reserve", 0, 3), ("deduct", -1, -1), ("deduct", -2, -2)]
    assert_consistent(shop)


def test_a_refund_restocks_nothing_and_cancelled_units_are_only_released(shop: Shop):
    """Only a physical return restocks (warehouse.returns, tests/test_returns.py): the platform's own
    "restocked" claim does not, so a return reported by both the platform and the store restocks once."""
    shop.add_sku("A", 10)
    shop.ingest(make_order("2050", [make_line("1", shop.sku("A"), 3, shipped=2)]))
    assert shop.level("A") == (8, 1)
    # One shipped unit is refunded (the platform says restocked); the unshipped one is refunded (cancelled).
    returned = make_line("1", shop.sku("A"), 3, shipped=2, refunded=2, restocked=1)
    counts = shop.ingest(make_order("2050", [returned], updated_at=T0 + timedelta(1)))
    assert (counts.restocked_units, counts.released_units) == (0, 1)
    assert shop.level("A") == (8, 0)
    assert_consistent(shop)


def test_a_return_does_not_shrink_what_is_left_to_ship(shop: Shop):
    shop.add_sku("A", 10)
    line = make_line("1", shop.sku("A"), 3, shipped=1, refunded=1, restocked=1)
    shop.ingest(make_order("2051", [line]))
    assert shop.level("A") == (9, 2)  # 1 shipped and refunded as returned (no restock here); 2 still to ship
    assert_consistent(shop)


@pytest.mark.parametrize(
    ("quantity", "shipped", "refunded", "restocked", "state", "expected"),
    [
        (3, 0, 0, 0, {}, (3, 0)),
        (3, 1, 0, 0, {}, (2, 1)),
        (3, 0, 1, 0, {}, (2, 0)),
        (3, 3, 1, 1, {}, (0, 3)),
        (3, 1, 1, 1, {}, (2, 1)),
        (3, 1, 1, 0, {"returned": 1}, (2, 1)),  # a physical return says the refunded unit had shipped
        (3, 1, 1, 0, {}, (1, 1)),  # else a refunded unit is read as an unshipped one
        (3, 0, 1, 1, {}, (2, 0)),  # a "restocked" unit that never shipped never left the shelf
        (3, 1, 0, 0, {"cancelled": True}, (0, 1)),
        (3, 0, 0, 0, {"payment_status": "voided"}, (0, 0)),
        (3, 0, 0, 0, {"removed": True}, (0, 0)),
    ],
)
def test_stock_targets(quantity, shipped, refunded, restocked, state, expected):
    kwargs = {"cancelled": False, "payment_status": "paid", **state}
    assert stock_targets(quantity, shipped, refunded, restocked, **kwargs) == expected


def test_a_line_removed_by_an_order_edit_releases(shop: Shop):
    shop.add_sku("A", 10)
    shop.add_sku("B", 10)
    shop.ingest(make_order("2060", [make_line("1", shop.sku("A"), 1), make_line("2", shop.sku("B"), 2)]))
    edited = make_order("2060", [make_line("1", shop.sku("A"), 1)], updated_at=T0 + timedelta(1))
    assert shop.ingest(edited).released_units == 2
    assert (shop.level("A"), shop.level("B")) == ((10, 1), (10, 0))


def test_a_shipment_without_stock_waits_and_never_goes_negative(shop: Shop):
    """The platform shipped units the warehouse does not have: no negative stock, an exception instead."""
    shop.add_sku("A", 1)
    shop.ingest(make_order("2070", [make_line("1", shop.sku("A"), 3)]))  # short: nothing reserved
    assert shop.level("A") == (1, 0)
    shipped = make_order("2070", [make_line("1", shop.sku("A"), 3, shipped=2)], updated_at=T0 + timedelta(1))
    counts = shop.ingest(shipped)
    # The 2 shipped units cannot leave on-hand (1); the 1 unit still to ship does get reserved.
    assert (counts.deducted_units, counts.reserved_units) == (0, 1)
    assert counts.exceptions == {"insufficient_stock": 1}
    assert shop.level("A") == (1, 1)
    (shortfall,) = open_exceptions(shop, "insufficient_stock")
    assert "needed 2, available 0" in shortfall["detail"]
    assert_consistent(shop)

    shop.receive("A", 2)
    assert retry_attention(shop.engine, shop.channel).deducted_units == 2
    assert shop.level("A") == (1, 1) and open_exceptions(shop) == []
    assert_consistent(shop)


def test_adjust_stock_cannot_take_on_hand_below_reserved(shop: Shop):
    shop.add_sku("A", 5)
    shop.ingest(make_order("2080", [make_line("1", shop.sku("A"), 4)]))
    with shop.engine.begin() as conn:
        assert stock.adjust_stock(conn, shop.sku("A"), shop.location, -1, "count:2080:a") is True
        assert stock.adjust_stock(conn, shop.sku("A"), shop.location, -1, "count:2080:a") is False
    with shop.engine.begin() as conn, pytest.raises(stock.InsufficientStock):
        stock.adjust_stock(conn, shop.sku("A"), shop.location, -1, "count:2080:b")
    assert shop.level("A") == (4, 4)
    assert_consistent(shop)
