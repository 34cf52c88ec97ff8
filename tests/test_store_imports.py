"""Store and warehouse systems in: shipments, stock counts and store sales from CSV files (issue 4, 1-2).

Every row is idempotent, a bad row is reported (file, line, reason) and queued while the good rows apply,
stock changes go through the keyed ledger (levels == ledger sums), and nothing is ever oversold.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from hub_configs import write_hub_config
from sqlalchemy import Engine, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB

from channelhub import import_cli
from channelhub.assets import WAREHOUSE_STOCK
from channelhub.shipment_push import as_push
from warehouse import catalog, stock
from warehouse import exceptions as queue
from warehouse.ingest import retry_attention
from warehouse.models import (
    locations,
    order_lines,
    orders,
    raw_payloads,
    shipments,
    skus,
    stock_counts,
    stock_ledger,
)
from warehouse.shipment_outbox import pending_shipments, record_push
from warehouse.store_imports import ImportFileError, import_file
from warehouse.testing import T0, Shop, make_line, make_order

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIP_HEADER = [
    *("shipment_id", "channel", "order_id", "line_id", "sku"),
    *("quantity", "carrier", "tracking_number", "shipped_at"),
]
COUNT_HEADER = ["count_id", "location", "sku", "counted_quantity", "counted_at"]
SALE_HEADER = ["receipt_id", "line_no", "location", "sku", "quantity", "sold_at"]


# -- helpers -------------------------------------------------------------------------------------


def ledger_sums(engine: Engine, sku: str, location: str) -> tuple[int, int]:
    with engine.connect() as conn:
        on_hand, reserved = conn.execute(
            select(
                func.coalesce(func.sum(stock_ledger.c.delta_on_hand), 0),
                func.coalesce(func.sum(stock_ledger.c.delta_reserved), 0),
            )
            .join(skus, skus.c.id == stock_ledger.c.sku_id)
            .join(locations, locations.c.id == stock_ledger.c.location_id)
            .where(skus.c.code == sku, locations.c.code == location)
        ).one()
    return on_hand, reserved


def assert_consistent(shop: Shop, *other_locations: str) -> None:
    """Levels equal their ledger sums and nothing is oversold, for every SKU of the shop at its locations."""
    for location in (shop.location, *other_locations):
        for sku in shop.skus:
            with shop.engine.connect() as conn:
                level = stock.stock_level(conn, sku, location)
            assert level == ledger_sums(shop.engine, sku, location), f"{sku}@{location}: level != ledger"
            assert 0 <= level[1] <= level[0], f"{sku}@{location}: oversold {level}"


@pytest.fixture()
def shop(engine: Engine) -> Iterator[Shop]:
    shop = Shop.create(engine)
    store = f"{shop.prefix}-store"
    with engine.begin() as conn:
        catalog.upsert_location(conn, store, f"store of {shop.prefix}", "store")
    yield shop
    assert_consistent(shop, store)  # after every test


def store_of(shop: Shop) -> str:
    return f"{shop.prefix}-store"


def write_csv(folder: Path, name: str, header: list[str], rows: list[list[object]]) -> Path:
    path = folder / name
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def ship(shop: Shop, shipment: str, order: str, line: str | None, sku: str | None, qty: int, **kw) -> list:
    """One shipments row (line or SKU named); keyword overrides for carrier, tracking, time."""
    return [
        shipment,
        kw.get("channel", shop.channel),
        order,
        line or "",
        sku or "",
        qty,
        kw.get("carrier", "UPS"),
        kw.get("tracking", f"1Z-{shipment}"),
        kw.get("at", "2026-11-02T09:00:00Z"),
    ]


def keys(shop: Shop) -> list[tuple[str, str, int, int]]:
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


def where(exception: dict) -> str:
    """The "file:line" a bad_import_row exception's detail starts with."""
    return exception["detail"].split(": ", 1)[0]


def bad_rows(shop: Shop) -> dict[str, dict]:
    """Open bad_import_row exceptions under the shop's channel, by file:line."""
    with shop.engine.connect() as conn:
        return {where(e): e for e in queue.list_open(conn, channel=shop.channel, reason="bad_import_row")}


def channel_less_bad_rows(engine: Engine, source: str) -> dict[str, dict]:
    """Open bad_import_row exceptions of no channel from file ``source``, by file:line."""
    with engine.connect() as conn:
        rows = queue.list_open(conn, reason="bad_import_row")
    return {where(r): r for r in rows if r["channel"] is None and where(r).startswith(f"{source}:")}


def order_with(shop: Shop, external_id: str, *lines, created: int = 0, **kw) -> None:
    shop.ingest(make_order(external_id, list(lines), created_at=T0 + timedelta(minutes=created), **kw))


# -- shipments -----------------------------------------------------------------------------------


def test_a_shipment_deducts_on_hand_and_releases_the_reservation_per_line_and_a_reimport_changes_nothing(
    shop: Shop, tmp_path: Path
):
    shop.add_sku("A", 10)
    shop.add_sku("B", 10)
    order_with(shop, "5001", make_line("1", shop.sku("A"), 3), make_line("2", shop.sku("B"), 2))
    assert (shop.level("A"), shop.level("B")) == ((10, 3), (10, 2))

    first = write_csv(
        tmp_path,
        "shipments_1.csv",
        SHIP_HEADER,
        [ship(shop, "S1", "5001", "1", None, 1), ship(shop, "S1", "5001", None, shop.sku("B"), 2)],
    )
    report = import_file(shop.engine, "shipments", first)
    assert (report.rows_read, report.applied, report.already_applied, report.rejected) == (2, 2, 0, [])
    assert report.units["deducted"] == 3
    # A partial shipment: 1 of 3 left on-hand and its reservation went with it; B shipped in full.
    assert (shop.level("A"), shop.level("B")) == ((9, 2), (8, 0))
    with shop.engine.connect() as conn:
        header = conn.execute(
            select(shipments)
            .join(orders, orders.c.id == shipments.c.order_id)
            .where(orders.c.external_id == "5001")
        ).one()
        shipped = dict(
            conn.execute(
                select(order_lines.c.external_line_id, order_lines.c.warehouse_shipped_quantity)
                .join(orders, orders.c.id == order_lines.c.order_id)
                .where(orders.c.external_id == "5001")
            ).all()
        )
    assert (header.shipment_key, header.carrier, header.tracking_number) == ("S1", "UPS", "1Z-S1")
    assert (header.push_status, header.push_attempts, header.source) == ("pending", 0, "shipments_1.csv")
    assert shipped == {"1": 1, "2": 2}

    rest = write_csv(tmp_path, "shipments_2.csv", SHIP_HEADER, [ship(shop, "S2", "5001", "1", None, 2)])
    assert import_file(shop.engine, "shipments", rest).applied == 1
    assert shop.level("A") == (7, 0)
    ledger = keys(shop)
    base = f"{shop.channel}:5001"
    assert [k for k, *_ in ledger] == [
        f"reserve:{base}:1",
        f"reserve:{base}:2",
        f"deduct:{base}:1",
        f"deduct:{base}:2",
        f"deduct:{base}:1#2",
    ]

    again = import_file(shop.engine, "shipments", first)
    assert (again.applied, again.already_applied, again.rejected) == (0, 2, [])
    assert keys(shop) == ledger and (shop.level("A"), shop.level("B")) == ((7, 0), (8, 0))


def test_a_sku_row_fills_the_orders_lines_of_that_sku_in_line_order(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    order_with(shop, "5002", make_line("1", shop.sku("A"), 1), make_line("2", shop.sku("A"), 2))
    path = write_csv(
        tmp_path, "shipments.csv", SHIP_HEADER, [ship(shop, "S1", "5002", None, shop.sku("A"), 3)]
    )
    assert import_file(shop.engine, "shipments", path).applied == 1
    assert shop.level("A") == (7, 0)
    assert import_file(shop.engine, "shipments", path).already_applied == 1  # not re-allocated
    assert shop.level("A") == (7, 0)


def test_bad_shipment_rows_are_rejected_and_queued_while_the_rest_applies(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    order_with(shop, "5010", make_line("1", shop.sku("A"), 3))
    rows = [
        ship(shop, "S1", "5010", "1", None, 5),  # 3 ordered
        ship(shop, "S2", "9999", "1", None, 1),  # no such order
        ship(shop, "S3", "5010", "1", None, 2),  # fine
        ship(shop, "S3", "5010", None, shop.sku("A"), 1, tracking="OTHER"),  # disagrees with S3's first row
        ship(shop, "S4", "5010", "7", None, 1),  # no such line
        ship(shop, "S5", "5010", "1", None, 1, channel="no-such-channel"),
    ]
    path = write_csv(tmp_path, "shipments_bad.csv", SHIP_HEADER, rows)
    report = import_file(shop.engine, "shipments", path)
    assert (report.applied, report.already_applied) == (1, 0)
    rejected = {r.line: r.reason for r in report.rejected}
    assert set(rejected) == {2, 3, 5, 6, 7}
    assert all(r.file == str(path) for r in report.rejected)
    assert "ships 5 units of line 1 of order 5010, but only 3 are left to ship" in rejected[2]
    assert f"order 9999 of channel {shop.channel} is not in the warehouse" in rejected[3]
    assert "shipment S3 was imported with tracking_number '1Z-S3'" in rejected[5]
    assert "order 5010 has no line 7" in rejected[6]
    assert "unknown channel 'no-such-channel'" in rejected[7]
    assert shop.level("A") == (8, 1)  # only S3's 2 units shipped

    queued = bad_rows(shop)
    assert set(queued) == {
        "shipments_bad.csv:2",
        "shipments_bad.csv:3",
        "shipments_bad.csv:5",
        "shipments_bad.csv:6",
    }
    over = queued["shipments_bad.csv:2"]
    assert over["detail"].startswith("shipments_bad.csv:2: ships 5 units")
    with shop.engine.connect() as conn:
        assert queue.get(conn, over["id"])["payload"]["quantity"] == "5"  # the raw row is kept
    assert list(channel_less_bad_rows(shop.engine, "shipments_bad.csv")) == ["shipments_bad.csv:7"]

    again = import_file(shop.engine, "shipments", path)
    assert (again.applied, again.already_applied, len(again.rejected)) == (0, 1, 5)
    assert bad_rows(shop)["shipments_bad.csv:2"]["attempts"] == 2 and len(bad_rows(shop)) == 4
    assert shop.level("A") == (8, 1)


def test_a_row_reusing_a_shipment_id_with_a_new_tracking_number_corrects_it(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    shop.add_sku("B", 10)
    order_with(shop, "5012", make_line("1", shop.sku("A"), 2), make_line("2", shop.sku("B"), 1))
    first = [ship(shop, "S1", "5012", "1", None, 2), ship(shop, "S1", "5012", "2", None, 1)]
    original = write_csv(tmp_path, "shipments_1.csv", SHIP_HEADER, first)
    assert import_file(shop.engine, "shipments", original).applied == 2
    with shop.engine.begin() as conn:  # the channel was told about it
        [pushed] = pending_shipments(conn, shop.channel)
        record_push(conn, shop.channel, pushed, "pushed")
        assert pending_shipments(conn, shop.channel) == []
    levels = (shop.level("A"), shop.level("B"))

    fixed = [
        ship(shop, "S1", "5012", "1", None, 2, carrier="SF", tracking="SF-NEW-1"),
        ship(shop, "S1", "5012", "2", None, 1, carrier="SF", tracking="SF-NEW-1"),
    ]
    correction = write_csv(tmp_path, "shipments_2.csv", SHIP_HEADER, fixed)
    report = import_file(shop.engine, "shipments", correction)
    assert (report.applied, report.already_applied, report.rejected) == (1, 1, [])
    assert report.units["tracking_corrected"] == 1 and report.units["shipped"] == 0
    assert (shop.level("A"), shop.level("B")) == levels  # a correction moves no stock
    with shop.engine.connect() as conn:
        [again] = pending_shipments(conn, shop.channel)  # back in the outbox, as an update
    assert (again.carrier, again.tracking_number, again.previous_tracking_number) == (
        "SF",
        "SF-NEW-1",
        "1Z-S1",
    )
    assert as_push(again).previous_tracking_number == "1Z-S1"

    # Both files again: nothing changes, and the older file does not turn the correction back.
    for path in (correction, original):
        report = import_file(shop.engine, "shipments", path)
        assert (report.applied, report.already_applied, report.rejected) == (0, 2, [])
    with shop.engine.connect() as conn:
        [still] = pending_shipments(conn, shop.channel)
    assert (still.tracking_number, still.previous_tracking_number) == ("SF-NEW-1", "1Z-S1")


def test_a_correction_must_repeat_the_shipment_as_it_was_but_for_its_tracking(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    order_with(shop, "5013", make_line("1", shop.sku("A"), 3))
    path = write_csv(tmp_path, "shipments.csv", SHIP_HEADER, [ship(shop, "S1", "5013", "1", None, 2)])
    assert import_file(shop.engine, "shipments", path).applied == 1
    rows = [
        ship(shop, "S1", "5013", "1", None, 2, tracking="NEW-1", at="2026-11-03T09:00:00Z"),  # moved in time
        ship(shop, "S1", "5013", "1", None, 1, tracking="NEW-2"),  # other units
        ship(shop, "S1", "5013", "1", None, 2, tracking=""),  # no number: nothing to correct to
    ]
    report = import_file(shop.engine, "shipments", write_csv(tmp_path, "bad.csv", SHIP_HEADER, rows))
    assert report.applied == 0 and len(report.rejected) == 3
    assert all("every row of a shipment must agree, except a correction" in r.reason for r in report.rejected)
    with shop.engine.connect() as conn:
        [shipment] = pending_shipments(conn, shop.channel)
    assert (shipment.tracking_number, shipment.previous_tracking_number) == ("1Z-S1", None)


def test_a_refused_push_is_cleared_once_the_corrected_shipment_is_pushed(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    order_with(shop, "5014", make_line("1", shop.sku("A"), 1))
    path = write_csv(tmp_path, "shipments.csv", SHIP_HEADER, [ship(shop, "S1", "5014", "1", None, 1)])
    import_file(shop.engine, "shipments", path)
    with shop.engine.begin() as conn:
        [refused] = pending_shipments(conn, shop.channel)
        record_push(conn, shop.channel, refused, "rejected", "invalid tracking number")
    with shop.engine.connect() as conn:
        assert [e["reason"] for e in queue.list_open(conn, channel=shop.channel)] == ["push_failed"]
    fixed = write_csv(
        tmp_path, "fixed.csv", SHIP_HEADER, [ship(shop, "S1", "5014", "1", None, 1, tracking="OK-1")]
    )
    assert import_file(shop.engine, "shipments", fixed).applied == 1
    with shop.engine.begin() as conn:
        [corrected] = pending_shipments(conn, shop.channel)
        record_push(conn, shop.channel, corrected, "pushed")
    with shop.engine.connect() as conn:
        assert queue.list_open(conn, channel=shop.channel) == []


def test_a_shipment_leaves_from_the_location_that_holds_the_lines_stock(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    order_with(shop, "5015", make_line("1", shop.sku("A"), 2))
    header = [*SHIP_HEADER, "location"]
    rows = [
        [*ship(shop, "S1", "5015", "1", None, 1), store_of(shop)],  # the stock is reserved at the warehouse
        [*ship(shop, "S2", "5015", "1", None, 1), shop.location],
        [*ship(shop, "S3", "5015", "1", None, 1), "NOWHERE"],
    ]
    report = import_file(shop.engine, "shipments", write_csv(tmp_path, "shipments.csv", header, rows))
    assert report.applied == 1 and shop.level("A") == (9, 1)
    reasons = {r.line: r.reason for r in report.rejected}
    assert "holds its stock at another location than the shipment's" in reasons[2]
    assert reasons[4] == "unknown location 'NOWHERE'"
    with shop.engine.connect() as conn:
        (location,) = conn.execute(
            select(locations.c.code)
            .join(shipments, shipments.c.location_id == locations.c.id)
            .join(orders, orders.c.id == shipments.c.order_id)
            .where(orders.c.external_id == "5015", shipments.c.shipment_key == "S2")
        ).one()
    assert location == shop.location


def test_a_rejected_row_that_applies_on_a_later_import_clears_its_exception(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    path = write_csv(tmp_path, "shipments_early.csv", SHIP_HEADER, [ship(shop, "S1", "5020", "1", None, 1)])
    assert len(import_file(shop.engine, "shipments", path).rejected) == 1  # the order has not synced yet
    assert list(bad_rows(shop)) == ["shipments_early.csv:2"]
    order_with(shop, "5020", make_line("1", shop.sku("A"), 1))
    assert import_file(shop.engine, "shipments", path).applied == 1
    assert bad_rows(shop) == {} and shop.level("A") == (9, 0)


def test_the_channel_reporting_the_same_shipment_later_deducts_nothing_more(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    order_with(shop, "5030", make_line("1", shop.sku("A"), 3))
    path = write_csv(tmp_path, "shipments.csv", SHIP_HEADER, [ship(shop, "S1", "5030", "1", None, 2)])
    import_file(shop.engine, "shipments", path)
    assert shop.level("A") == (8, 1)

    reported = make_order("5030", [make_line("1", shop.sku("A"), 3, shipped=2)], updated_at=T0 + timedelta(1))
    counts = shop.ingest(reported)
    assert (counts.updated, counts.deducted_units, counts.reserved_units) == (1, 0, 0)
    assert shop.level("A") == (8, 1)
    # The channel ships the last unit itself: that one is new.
    rest = make_order("5030", [make_line("1", shop.sku("A"), 3, shipped=3)], updated_at=T0 + timedelta(2))
    assert shop.ingest(rest).deducted_units == 1 and shop.level("A") == (7, 0)
    # ... and the warehouse cannot ship a fourth unit of a 3-unit line.
    more = write_csv(tmp_path, "shipments_more.csv", SHIP_HEADER, [ship(shop, "S2", "5030", "1", None, 1)])
    assert "only 0 are left to ship" in import_file(shop.engine, "shipments", more).rejected[0].reason


def test_a_cancellation_after_a_partial_shipment_releases_only_the_unshipped_rest(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    order_with(shop, "5040", make_line("1", shop.sku("A"), 4))
    path = write_csv(tmp_path, "shipments.csv", SHIP_HEADER, [ship(shop, "S1", "5040", "1", None, 1)])
    import_file(shop.engine, "shipments", path)
    assert shop.level("A") == (9, 3)
    # The platform never heard of the shipment (shipped 0) when the order is cancelled.
    cancelled = make_order(
        "5040", [make_line("1", shop.sku("A"), 4)], cancelled=True, updated_at=T0 + timedelta(1)
    )
    counts = shop.ingest(cancelled)
    assert (counts.released_units, counts.deducted_units, counts.restocked_units) == (3, 0, 0)
    assert shop.level("A") == (9, 0)  # the shipped unit stays shipped
    assert [r[1:] for r in keys(shop)] == [("reserve", 0, 4), ("deduct", -1, -1), ("release", 0, -3)]


def test_a_refund_with_restock_after_a_warehouse_shipment(shop: Shop, tmp_path: Path):
    shop.add_sku("A", 10)
    order_with(shop, "5050", make_line("1", shop.sku("A"), 2))
    path = write_csv(tmp_path, "shipments.csv", SHIP_HEADER, [ship(shop, "S1", "5050", "1", None, 2)])
    import_file(shop.engine, "shipments", path)
    assert shop.level("A") == (8, 0)
    # The channel refunds a unit it says came back; its payload does not count the warehouse's shipment as
    # shipped. Nothing is re-reserved, and nothing restocks until a store receives the unit (returns import).
    returned = make_order(
        "5050",
        [make_line("1", shop.sku("A"), 2, refunded=1, restocked=1)],
        payment_status="partially_refunded",
        updated_at=T0 + timedelta(1),
    )
    counts = shop.ingest(returned)
    assert (counts.restocked_units, counts.reserved_units, counts.released_units) == (0, 0, 0)
    assert shop.level("A") == (8, 0)


# -- counts --------------------------------------------------------------------------------------


def test_a_count_adjusts_on_hand_through_an_adjust_ledger_row(shop: Shop, tmp_path: Path):
    sku = shop.add_sku("A", 10)
    order_with(shop, "5060", make_line("1", sku, 2))
    path = write_csv(
        tmp_path, "counts_1.csv", COUNT_HEADER, [["C1", shop.location, sku, 7, "2026-11-02T08:00:00+08:00"]]
    )
    report = import_file(shop.engine, "counts", path)
    assert (report.applied, report.units["adjusted"]) == (1, -3)
    assert shop.level("A") == (7, 2)  # the reservation stands: 5 still available
    assert keys(shop)[-1] == (f"count:{shop.location}:{sku}:C1", "adjust", -3, 0)
    with shop.engine.connect() as conn:
        counted = conn.execute(
            select(stock_counts).where(stock_counts.c.idempotency_key.like(f"count:%:{sku}:%"))
        ).one()
    assert (counted.counted_quantity, counted.on_hand_before) == (7, 10)
    assert counted.counted_at.isoformat() == "2026-11-02T00:00:00+00:00"  # UTC inside

    assert import_file(shop.engine, "counts", path).already_applied == 1
    shop.receive("A", 1)  # goods in after the count: a re-import must not count them away
    assert import_file(shop.engine, "counts", path).already_applied == 1 and shop.level("A") == (8, 2)

    rows = [
        ["", shop.location, sku, 12, "2026-11-03T08:00:00"],  # newer, no count id: keyed by its time
        ["C1", shop.location, sku, 9, "2026-11-02T00:00:00Z"],  # C1 again with another quantity
        ["C0", shop.location, sku, 1, "2026-11-01T00:00:00Z"],  # older than an applied count
    ]
    later = import_file(shop.engine, "counts", write_csv(tmp_path, "counts_2.csv", COUNT_HEADER, rows))
    assert later.applied == 1 and shop.level("A") == (12, 2)
    assert keys(shop)[-1] == (f"count:{shop.location}:{sku}:2026-11-03T08:00:00Z", "adjust", 4, 0)
    reasons = {r.line: r.reason for r in later.rejected}
    assert "was already applied with 7 units; this row says 9" in reasons[3]
    assert "a newer count" in reasons[4]


def test_a_count_below_what_is_reserved_releases_the_newest_reservations_and_queues_a_shortfall(
    shop: Shop, tmp_path: Path
):
    sku = shop.add_sku("A", 10)
    order_with(shop, "5070", make_line("1", sku, 4), created=0)
    order_with(shop, "5071", make_line("1", sku, 4), created=5)  # the newest order
    assert shop.level("A") == (10, 8)
    path = write_csv(
        tmp_path, "counts.csv", COUNT_HEADER, [["", shop.location, sku, 5, "2026-11-02T08:00:00Z"]]
    )
    report = import_file(shop.engine, "counts", path)
    assert report.units["released"] == 3
    assert shop.level("A") == (5, 5)  # never negative availability
    with shop.engine.connect() as conn:
        (shortfall,) = queue.list_open(conn, channel=shop.channel, reason="insufficient_stock")
        attention = (
            conn.execute(
                select(orders.c.external_id).where(
                    orders.c.needs_attention, orders.c.external_id.in_(["5070", "5071"])
                )
            )
            .scalars()
            .all()
        )
    assert shortfall["external_id"] == "5071" and shortfall["sku"] == sku
    assert f"sku {sku} at {shop.location}" in shortfall["detail"] and "short 3" in shortfall["detail"]
    assert attention == ["5071"]
    assert keys(shop)[-1] == (f"release:{shop.channel}:5071:1", "release", 0, -3)

    shop.receive("A", 3)  # stock arrives: the waiting order reserves again and its exception clears
    assert retry_attention(shop.engine, shop.channel).reserved_units == 3
    assert shop.level("A") == (8, 8)
    with shop.engine.connect() as conn:
        assert queue.list_open(conn, channel=shop.channel, reason="insufficient_stock") == []


# -- store sales ---------------------------------------------------------------------------------


def test_a_store_sale_deducts_a_return_restocks_and_an_oversized_sale_is_rejected(shop: Shop, tmp_path: Path):
    sku = shop.add_sku("A")
    store = store_of(shop)
    with shop.engine.begin() as conn:
        catalog.receive_stock(conn, sku, store, 5, f"receive:{shop.prefix}:store")
    rows = [
        ["R1", "1", store, sku, 2, "2026-11-02T10:00:00+08:00"],
        ["R1", "2", store, sku, 9, "2026-11-02T10:00:00+08:00"],  # more than is on the shelf
        ["R2", "1", store, sku, -1, "2026-11-02T11:00:00+08:00"],  # a return
    ]
    path = write_csv(tmp_path, "sales_store.csv", SALE_HEADER, rows)
    report = import_file(shop.engine, "sales", path)
    assert (report.applied, report.units["sold"], report.units["returned"]) == (2, 2, 1)
    (rejected,) = report.rejected
    assert rejected.line == 3 and f"sells 9 of {sku} at {store} but only 3 are on hand" in rejected.reason
    with shop.engine.connect() as conn:
        assert stock.stock_level(conn, sku, store) == (4, 0)
    assert [k[:3] for k in keys(shop)] == [
        (f"pos:{store}:R1:1", "deduct", -2),
        (f"pos:{store}:R2:1", "restock", 1),
    ]
    (queued,) = channel_less_bad_rows(shop.engine, "sales_store.csv").values()
    assert queued["detail"].startswith("sales_store.csv:3: sells 9") and queued["sku"] == sku

    again = import_file(shop.engine, "sales", path)
    assert (again.applied, again.already_applied, len(again.rejected)) == (0, 2, 1)
    # Still one open exception (attempts counted) and one raw row, though they belong to no channel.
    (queued,) = channel_less_bad_rows(shop.engine, "sales_store.csv").values()
    assert queued["attempts"] == 2
    with shop.engine.connect() as conn:
        assert stock.stock_level(conn, sku, store) == (4, 0)
        raws = conn.execute(
            select(func.count())
            .select_from(raw_payloads)
            .where(
                raw_payloads.c.channel_id.is_(None),
                # Raw payloads are json text (migration 0017): a cast to jsonb queries inside them.
                cast(raw_payloads.c.payload, JSONB).contains(
                    {"location": store, "receipt_id": "R1", "line_no": "2"}
                ),
            )
        ).scalar_one()
    assert raws == 1

    # The shelf is counted (14 found): the same file again applies the big sale and clears its exception.
    count = write_csv(tmp_path, "counts.csv", COUNT_HEADER, [["", store, sku, 14, "2026-11-02T12:00:00Z"]])
    assert import_file(shop.engine, "counts", count).applied == 1
    assert import_file(shop.engine, "sales", path).applied == 1
    assert channel_less_bad_rows(shop.engine, "sales_store.csv") == {}
    with shop.engine.connect() as conn:
        assert stock.stock_level(conn, sku, store) == (5, 0)


def test_a_store_sale_of_reserved_units_releases_the_newest_reservation(shop: Shop, tmp_path: Path):
    sku = shop.add_sku("A", 5)
    order_with(shop, "5080", make_line("1", sku, 3))
    path = write_csv(
        tmp_path, "sales.csv", SALE_HEADER, [["R9", "1", shop.location, sku, 4, "2026-11-02T10:00:00Z"]]
    )
    assert import_file(shop.engine, "sales", path).units["released"] == 2
    assert shop.level("A") == (1, 1)


def test_the_same_file_imported_by_concurrent_workers_applies_once(shop: Shop, tmp_path: Path):
    sku = shop.add_sku("A", 100)
    order_with(shop, "5085", make_line("1", sku, 10))
    sales = [["R", str(n), shop.location, sku, 1, "2026-11-02T10:00:00Z"] for n in range(20)]
    sales_file = write_csv(tmp_path, "sales.csv", SALE_HEADER, sales)
    counts_file = write_csv(
        tmp_path, "counts.csv", COUNT_HEADER, [["C1", shop.location, sku, 90, "2026-11-02T11:00:00Z"]]
    )
    for kind, path, rows, level in [
        ("sales", sales_file, 20, (80, 10)),
        ("counts", counts_file, 1, (90, 10)),
    ]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            reports = list(pool.map(import_file, [shop.engine] * 4, [kind] * 4, [path] * 4))
        assert sum(r.applied for r in reports) == rows, kind
        assert sum(r.already_applied for r in reports) == 3 * rows and not any(r.rejected for r in reports)
        assert shop.level("A") == level


# -- malformed files and rows --------------------------------------------------------------------


def test_malformed_rows_are_reported_with_file_line_and_reason(shop: Shop, tmp_path: Path):
    sku = shop.add_sku("A", 5)
    path = tmp_path / "counts_bad.csv"
    path.write_text(
        "\ufeffLocation,SKU,Counted_Quantity,Counted_At,note\n"  # a BOM, any case, an extra column
        f"{shop.location},{sku},4,2026-11-02T08:00:00Z,ok\n"
        f"{shop.location},{sku},four,2026-11-02T08:00:00Z,x\n"
        f"{shop.location},{sku},3\n"
        "\n"
        f"{shop.location},NO-SUCH-SKU,3,2026-11-02T08:00:00Z,x\n"
        f"NO-SUCH-PLACE,{sku},3,2026-11-02T08:00:00Z,x\n"
        f"{shop.location},{sku},3,last tuesday,x\n"
        f"{shop.location},{sku},-1,2026-11-02T08:00:00Z,x\n",
        encoding="utf-8",
    )
    report = import_file(shop.engine, "counts", path)
    assert (report.rows_read, report.applied) == (7, 1)
    assert [(r.file, r.line, r.reason) for r in report.rejected] == [
        (str(path), 3, "counted_quantity 'four' is not a whole number"),
        (str(path), 4, "expected 5 fields, got 3"),
        (str(path), 6, "unknown SKU 'NO-SUCH-SKU'"),
        (str(path), 7, "unknown location 'NO-SUCH-PLACE'"),
        (str(path), 8, "counted_at 'last tuesday' is not an ISO-8601 time (e.g. 2026-11-20T14:05:00+08:00)"),
        (str(path), 9, "counted_quantity -1 is out of range (at least 0, at most 2147483647)"),
    ]
    assert shop.level("A") == (4, 0)
    queued = channel_less_bad_rows(shop.engine, "counts_bad.csv")
    assert set(queued) == {f"counts_bad.csv:{n}" for n in (3, 4, 6, 7, 8, 9)}
    assert queued["counts_bad.csv:6"]["detail"] == "counts_bad.csv:6: unknown SKU 'NO-SUCH-SKU'"
    with shop.engine.connect() as conn:
        raw = queue.get(conn, queued["counts_bad.csv:4"]["id"])["payload"]
    assert raw == {"kind": "counts", "location": shop.location, "sku": sku, "counted_quantity": "3"}


def test_a_quantity_too_long_for_any_number_is_a_typed_rejection_and_the_rest_applies(
    shop: Shop, tmp_path: Path
):
    sku = shop.add_sku("A", 5)
    rows = [
        [
            "",
            shop.location,
            sku,
            "9" * 5000,
            "2026-11-02T08:00:00Z",
        ],  # int() itself refuses past 4,300 digits
        ["", shop.location, sku, "0" * 60 + "4", "2026-11-02T09:00:00Z"],  # leading zeros are still 4
    ]
    report = import_file(shop.engine, "counts", write_csv(tmp_path, "counts_huge.csv", COUNT_HEADER, rows))
    assert report.applied == 1 and shop.level("A") == (4, 0)
    [(line, reason)] = [(r.line, r.reason) for r in report.rejected]
    assert (line, reason) == (2, "counted_quantity has 5000 digits: out of range (at most 2147483647)")
    assert set(channel_less_bad_rows(shop.engine, "counts_huge.csv")) == {"counts_huge.csv:2"}


def test_rows_beyond_a_locations_sanity_limit_wait_for_a_person(shop: Shop, tmp_path: Path):
    sku = shop.add_sku("A", 10)
    store = store_of(shop)
    with shop.engine.begin() as conn:  # this store accepts at most 50 units per row
        catalog.upsert_location(conn, store, f"store of {shop.prefix}", "store", max_units_per_row=50)
    sales = [
        ["R1", "1", shop.location, sku, -2_000_000_000, "2026-11-02T09:00:00Z"],  # the default limit
        ["R2", "1", store, sku, -60, "2026-11-02T09:01:00Z"],  # over this store's 50
        ["R3", "1", shop.location, sku, 2, "2026-11-02T09:02:00Z"],
    ]
    report = import_file(shop.engine, "sales", write_csv(tmp_path, "sales_odd.csv", SALE_HEADER, sales))
    assert report.applied == 1 and shop.level("A") == (8, 0)
    reasons = {r.line: r.reason for r in report.rejected}
    assert reasons[2].startswith(
        f"quantity -2000000000 is beyond the 100000 units per row that {shop.location}"
    )
    assert reasons[3].startswith(f"quantity -60 is beyond the 50 units per row that {store} accepts")
    counts = [["", store, sku, 51, "2026-11-02T10:00:00Z"], ["", store, sku, 50, "2026-11-02T10:01:00Z"]]
    report = import_file(shop.engine, "counts", write_csv(tmp_path, "counts_odd.csv", COUNT_HEADER, counts))
    assert report.applied == 1 and [r.line for r in report.rejected] == [2]
    with shop.engine.connect() as conn:
        assert stock.stock_level(conn, sku, store) == (50, 0)
    queued = channel_less_bad_rows(shop.engine, "sales_odd.csv")
    assert set(queued) == {"sales_odd.csv:2", "sales_odd.csv:3"}  # kept for a person, with the row


def test_a_file_that_cannot_be_read_as_its_kind_is_refused_whole(shop: Shop, tmp_path: Path):
    no_sku_column = tmp_path / "counts_header.csv"
    no_sku_column.write_text("location,counted_quantity,counted_at\nX,1,2026-11-02T00:00:00Z\n")
    with pytest.raises(ImportFileError, match="lacks sku"):
        import_file(shop.engine, "counts", no_sku_column)
    latin1 = tmp_path / "sales_latin1.csv"
    latin1.write_bytes(
        "receipt_id,line_no,location,sku,quantity,sold_at\nR,1,Café,A,1,2026-11-02\n".encode("latin-1")
    )
    with pytest.raises(ImportFileError, match="not UTF-8"):
        import_file(shop.engine, "sales", latin1)
    with pytest.raises(ImportFileError, match="cannot read"):
        import_file(shop.engine, "sales", tmp_path / "missing.csv")
    with pytest.raises(ImportFileError, match="unknown import kind"):
        import_file(shop.engine, "refunds", latin1)


# -- CLI -----------------------------------------------------------------------------------------


@pytest.fixture()
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    config_file, _ = write_hub_config(tmp_path, [], location="WH-IMPORTTEST")
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="channelhub")
    import_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_exit_codes_and_output(shop: Shop, tmp_path: Path, cli_env, capsys: pytest.CaptureFixture):
    sku = shop.add_sku("A", 5)
    good = write_csv(
        tmp_path, "sales_ok.csv", SALE_HEADER, [["R1", "1", shop.location, sku, 1, "2026-11-02"]]
    )
    assert run_cli("import", "sales", str(good)) == 0
    out = capsys.readouterr()
    assert "rows=1 applied=1 already_applied=0 rejected=0" in out.out and out.err == ""
    assert run_cli("import", "sales", str(good)) == 0  # again: already applied
    assert "applied=0 already_applied=1" in capsys.readouterr().out

    mixed = write_csv(
        tmp_path,
        "sales_mixed.csv",
        SALE_HEADER,
        [
            ["R2", "1", shop.location, sku, 1, "2026-11-02"],
            ["R2", "2", shop.location, sku, "x", "2026-11-02"],
        ],
    )
    assert run_cli("import", "sales", str(mixed)) == 1
    out = capsys.readouterr()
    assert out.err == f"{mixed}:3: quantity 'x' is not a whole number\n"
    assert "applied=1" in out.out and shop.level("A") == (3, 0)

    assert run_cli("import", "counts", str(mixed)) == 2  # a sales file is no counts file
    assert "lacks counted_quantity" in capsys.readouterr().err
    assert run_cli("import", "sales", str(tmp_path / "nope.csv")) == 2
    with pytest.raises(SystemExit) as exited:
        run_cli("import", "refunds", str(good))
    assert exited.value.code == 2


# -- the store_import DAG ------------------------------------------------------------------------


def test_the_dag_imports_a_dropped_folder_once(shop: Shop, tmp_path: Path, cli_env, airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    sku = shop.add_sku("A", 10)
    order_with(shop, "5090", make_line("1", sku, 3))
    folder = tmp_path / "imports"
    folder.mkdir()
    monkeypatch.setenv("HUB_IMPORT_DIR", str(folder))
    write_csv(folder, "counts_0900.csv", COUNT_HEADER, [["", shop.location, sku, 12, "2026-11-02T09:00:00Z"]])
    write_csv(folder, "shipments_0901.csv", SHIP_HEADER, [ship(shop, "S1", "5090", "1", None, 3)])
    write_csv(
        folder, "sales_0902.csv", SALE_HEADER, [["R1", "1", shop.location, sku, 2, "2026-11-02T09:02:00Z"]]
    )
    (folder / "counts_broken.csv").write_text("sku,counted_quantity\nX,1\n")
    (folder / "readme.txt").write_text("not an import")
    past = time.time() - 120
    for offset, name in enumerate(
        ["counts_0900.csv", "shipments_0901.csv", "sales_0902.csv", "counts_broken.csv"]
    ):
        os.utime(folder / name, (past + offset, past + offset))

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "store_import.py"))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag("store_import")
    # What it imports changes what channels may sell: its success updates the stock Asset (push_stock__* run).
    assert [asset.uri for asset in dag.get_task("import_files").outlets] == [WAREHOUSE_STOCK.uri]
    run = dag.test()
    assert run.state == "success"
    assert shop.level("A") == (7, 0)  # counted 12, shipped 3, sold 2
    assert sorted(p.name for p in (folder / "done").iterdir()) == [
        "counts_0900.csv",
        "sales_0902.csv",
        "shipments_0901.csv",
    ]
    assert sorted(p.name for p in (folder / "failed").iterdir()) == [
        "counts_broken.csv",
        "counts_broken.csv.report.txt",  # why, beside it
    ]
    why = (folder / "failed" / "counts_broken.csv.report.txt").read_text()
    assert "counts_broken.csv (counts) was not imported" in why and "lacks location" in why
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["readme.txt"]
    ledger = keys(shop)

    assert dag.test().state == "success"  # nothing new to read
    assert keys(shop) == ledger and shop.level("A") == (7, 0)
