"""Orders in the warehouse: one per (channel, external id), versioned by the platform's updated time
(invariant 1), nothing lost when an order does not fit (invariant 5), UTC times and exact money
(invariant 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from warehouse import exceptions as queue
from warehouse.ingest import Landed, Rejected
from warehouse.models import order_lines, orders, raw_payloads
from warehouse.testing import T0, Shop, make_line, make_order


@pytest.fixture()
def shop(engine: Engine) -> Shop:
    shop = Shop.create(engine)
    shop.add_sku("A", 100)
    return shop


def stored(shop: Shop, external_id: str) -> dict:
    with shop.engine.connect() as conn:
        row = conn.execute(
            select(orders).where(orders.c.external_id == external_id, orders.c.channel_id == channel_id(shop))
        ).one()
    return dict(row._mapping)


def channel_id(shop: Shop) -> int:
    with shop.engine.connect() as conn:
        return conn.execute(text("SELECT id FROM channels WHERE code = :c"), {"c": shop.channel}).scalar_one()


def count_orders(shop: Shop, external_id: str) -> int:
    with shop.engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(orders)
            .where(orders.c.external_id == external_id, orders.c.channel_id == channel_id(shop))
        ).scalar_one()


def test_unique_constraint_rejects_a_second_row_for_the_same_order(shop: Shop):
    shop.ingest(make_order("1001", [make_line("1", shop.sku("A"), 1)]))
    row = stored(shop, "1001")
    duplicate = {k: v for k, v in row.items() if k not in ("id", "ingested_at", "changed_at")}
    with (
        shop.engine.connect() as conn,
        pytest.raises(IntegrityError, match="uq_orders_channel_id_external_id"),
    ):
        conn.execute(orders.insert().values(**duplicate))
    assert count_orders(shop, "1001") == 1


def test_same_payload_twice_is_a_no_op(shop: Shop):
    order = make_order("1002", [make_line("1", shop.sku("A"), 2)])
    first = shop.ingest(order)
    before = stored(shop, "1002")
    second = shop.ingest(order)
    assert (first.new, second.new, second.updated, second.unchanged) == (1, 0, 0, 1)
    assert stored(shop, "1002") == before  # not even changed_at moved
    assert second.reserved_units == 0 and shop.level("A") == (100, 2)
    with shop.engine.connect() as conn:
        raws = conn.execute(
            select(func.count()).select_from(raw_payloads).where(raw_payloads.c.external_id == "1002")
        ).scalar_one()
    assert raws == 1  # the same raw payload is landed once


def test_newer_version_updates_and_older_never_overwrites(shop: Shop):
    v1 = make_order("1003", [make_line("1", shop.sku("A"), 3)], updated_at=T0)
    v2 = make_order("1003", [make_line("1", shop.sku("A"), 1)], updated_at=T0 + timedelta(minutes=5))
    assert shop.ingest(v1).new == 1
    updated = shop.ingest(v2)
    assert updated.updated == 1 and updated.released_units == 2
    stale = shop.ingest(v1)  # a reordered page brings the old version back
    assert (stale.stale, stale.updated, stale.reserved_units) == (1, 0, 0)
    assert stored(shop, "1003")["updated_at"] == T0 + timedelta(minutes=5)
    with shop.engine.connect() as conn:
        quantity = conn.execute(
            select(order_lines.c.quantity)
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(orders.c.external_id == "1003", orders.c.channel_id == channel_id(shop))
        ).scalar_one()
    assert quantity == 1 and shop.level("A") == (100, 1)


def test_both_versions_in_one_batch_keep_the_newer(shop: Shop):
    v1 = make_order("1004", [make_line("1", shop.sku("A"), 4)], updated_at=T0)
    v2 = make_order("1004", [make_line("1", shop.sku("A"), 2)], updated_at=T0 + timedelta(seconds=1))
    counts = shop.ingest(v2, v1)
    assert (counts.new, counts.stale) == (1, 1)
    assert shop.level("A") == (100, 2)


def test_equal_updated_time_with_different_content_updates(shop: Shop):
    v1 = make_order("1005", [make_line("1", shop.sku("A"), 1)], payment_status="authorized")
    v2 = make_order("1005", [make_line("1", shop.sku("A"), 1)], payment_status="paid")
    shop.ingest(v1)
    assert shop.ingest(v2).updated == 1
    assert stored(shop, "1005")["payment_status"] == "paid"


def test_bad_orders_are_queued_raw_and_the_rest_of_the_batch_lands(shop: Shop):
    good = make_order("1006", [make_line("1", shop.sku("A"), 1)])
    naive = make_order("1007", [make_line("1", shop.sku("A"), 1)])
    naive.updated_at = datetime(2026, 11, 1, 12, 0)  # a mapping bug: no timezone
    schema_reject = Rejected(
        "1008", "schema_invalid", "line_items/0/quantity: 'x' is not an integer", {"id": 1008}
    )
    counts = shop.ingest(good, Landed(naive, {"id": 1007}), rejected=[schema_reject])
    assert counts.new == 1
    assert counts.exceptions == {"schema_invalid": 1, "mapping_failed": 1}
    with shop.engine.connect() as conn:
        open_ = {e["external_id"]: e for e in queue.list_open(conn, channel=shop.channel)}
        payload = queue.get(conn, open_["1008"]["id"])["payload"]
    assert set(open_) == {"1007", "1008"}
    assert open_["1007"]["reason"] == "mapping_failed" and "naive" in open_["1007"]["detail"]
    assert payload == {"id": 1008}  # the raw payload is kept for a retry after the fix
    # The same bad payload again: the open exception counts an attempt instead of duplicating.
    shop.ingest(rejected=[schema_reject])
    with shop.engine.connect() as conn:
        again = [e for e in queue.list_open(conn, channel=shop.channel) if e["external_id"] == "1008"]
    assert len(again) == 1 and again[0]["attempts"] == 2
    # A fixed version lands and clears its landing exception.
    shop.ingest(make_order("1008", [make_line("1", shop.sku("A"), 1)]))
    with shop.engine.connect() as conn:
        assert {e["external_id"] for e in queue.list_open(conn, channel=shop.channel)} == {"1007"}


def test_an_order_the_database_refuses_is_queued_alone(shop: Shop):
    """A database error redoes the batch order by order: only the bad order is queued (apply_failed)."""
    good = [make_order(f"11{i}", [make_line("1", shop.sku("A"), 1)]) for i in range(3)]
    bad = make_order("1199", [make_line("1", shop.sku("A"), 1)])
    bad.lines[0].title = "nul \x00 byte"  # Postgres text cannot hold NUL
    counts = shop.ingest(good[0], Landed(bad, {"id": 1199}), *good[1:])
    assert counts.new == 3 and counts.exceptions == {"apply_failed": 1}
    assert count_orders(shop, "1199") == 0 and all(count_orders(shop, o.external_id) == 1 for o in good)
    with shop.engine.connect() as conn:
        (failed,) = queue.list_open(conn, channel=shop.channel, reason="apply_failed")
    assert failed["external_id"] == "1199"
    assert "0x00" in failed["detail"] or "NUL" in failed["detail"]  # the database's own words
    assert failed["raw_payload_id"] is not None  # its raw payload is kept
    assert shop.level("A") == (100, 3)


def test_times_are_stored_utc_and_money_is_exact(shop: Shop):
    shanghai = timezone(timedelta(hours=8))
    line = make_line("1", shop.sku("A"), 3, unit_price="0.10")
    order = make_order(
        "1010",
        [line],
        created_at=datetime(2026, 11, 2, 8, 0, tzinfo=shanghai),
        updated_at=datetime(2026, 11, 2, 9, 30, tzinfo=shanghai),
        shipping="0.20",
        tax="0.00",
    )
    shop.ingest(order)
    row = stored(shop, "1010")
    assert row["created_at"] == datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    assert row["updated_at"].utcoffset() == timedelta(0)  # sessions read UTC (the migration sets it)
    assert row["subtotal"] == Decimal("0.30") and isinstance(row["subtotal"], Decimal)
    assert row["shipping"] + row["subtotal"] == Decimal("0.50")
    assert row["total"] == Decimal("0.10") * 3 + Decimal("0.20")
    with shop.engine.connect() as conn:
        stored_utc = conn.execute(
            text(
                "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') "
                "FROM orders WHERE id = :i"
            ),
            {"i": row["id"]},
        ).scalar_one()
        unit_price = conn.execute(
            select(order_lines.c.unit_price).where(order_lines.c.order_id == row["id"])
        ).scalar_one()
    assert stored_utc == "2026-11-02 00:00"
    assert str(unit_price) == "0.10"  # numeric keeps the exact value and scale


def test_an_unknown_channel_is_refused(engine: Engine):
    from warehouse.catalog import CatalogError
    from warehouse.ingest import ingest_orders
    from warehouse.testing import landed

    with pytest.raises(CatalogError, match="unknown channel"):
        ingest_orders(engine, "no-such-channel", [landed(make_order("1", []))])


def test_the_database_going_away_mid_batch_is_a_typed_error_and_keeps_nothing_half_applied(shop: Shop):
    """Postgres dropping the connection in the middle of a batch (here: its own backend terminated by a
    trigger while the batch is redone order by order) used to surface as SQLAlchemy's PendingRollbackError,
    as the fallback went on queueing on the dead connection. It is a WarehouseUnavailable naming the cause:
    nothing of the batch is kept, and the next run lands it whole."""
    from warehouse.db_errors import WarehouseUnavailable

    good = [make_order(f"12{i}", [make_line("1", shop.sku("A"), 1)]) for i in range(3)]
    refused = make_order("1298", [make_line("1", shop.sku("A"), 1)])
    refused.number = "nul \x00 byte"  # refused before it reaches the server: the batch is redone one by one
    fatal = make_order("1299", [make_line("1", shop.sku("A"), 1)])
    with shop.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION kill_own_backend() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.external_id = '1299' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; "
                "RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER outage AFTER INSERT ON orders "
                "FOR EACH ROW EXECUTE FUNCTION kill_own_backend()"
            )
        )
    try:
        with pytest.raises(WarehouseUnavailable, match=r"went away \(OperationalError: ") as raised:
            shop.ingest(good[0], Landed(refused, {"id": 1298}), fatal, *good[1:])
        assert "nul" not in str(raised.value)  # the statement's parameters stay out of the message
    finally:
        with shop.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER outage ON orders; DROP FUNCTION kill_own_backend()"))
    assert all(count_orders(shop, o.external_id) == 0 for o in [*good, fatal])  # nothing half-applied
    with shop.engine.connect() as conn:
        assert queue.list_open(conn, channel=shop.channel, reason="apply_failed") == []
    assert shop.level("A") == (100, 0)

    counts = shop.ingest(good[0], Landed(refused, {"id": 1298}), fatal, *good[1:])  # the run's retry
    assert counts.new == 4 and counts.exceptions == {"apply_failed": 1}
    assert shop.level("A") == (100, 4)
