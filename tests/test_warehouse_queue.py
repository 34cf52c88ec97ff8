"""The exception queue ops work, the sync watermark, and the per-channel summary the demo prints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from warehouse import exceptions as queue
from warehouse import sync_state
from warehouse.summary import summary
from warehouse.testing import Shop, make_line, make_order


@pytest.fixture()
def shop(engine: Engine) -> Shop:
    return Shop.create(engine)


def test_one_open_exception_per_problem_and_ops_can_resolve_or_ignore(shop: Shop):
    with shop.engine.begin() as conn:
        first = queue.record_exception(
            conn,
            channel=shop.channel,
            reason="bad_address",
            external_id="9001",
            detail="no city",
            raw={"id": 1},
        )
        again = queue.record_exception(
            conn, channel=shop.channel, reason="bad_address", external_id="9001", detail="still no city"
        )
        other_sku = queue.record_exception(
            conn, channel=shop.channel, reason="unknown_sku", external_id="9001", detail="x", sku="X-1"
        )
        no_id = queue.record_exception(
            conn,
            channel=shop.channel,
            reason="schema_invalid",
            external_id=None,
            detail="no id",
            raw="garbage",
        )
    assert first == again and len({first, other_sku, no_id}) == 3
    with shop.engine.begin() as conn:
        (address,) = queue.list_open(conn, channel=shop.channel, reason="bad_address")
        assert (address["attempts"], address["detail"]) == (2, "still no city")
        assert address["raw_payload_id"] is not None  # the first record's raw payload stays linked
        assert queue.get(conn, no_id)["payload"] == "garbage"
        assert (
            queue.close(conn, first, status="resolved", actor="ops", note="fixed in the shop admin") is True
        )
        assert queue.close(conn, first, status="resolved", actor="ops") is False  # no longer open
        assert queue.close(conn, no_id, status="ignored", actor="ops") is True
        assert [(a["action"], a["actor"], a["note"]) for a in queue.actions_of(conn, first)] == [
            ("resolve", "ops", "fixed in the shop admin")
        ]
        assert [e["id"] for e in queue.list_open(conn, channel=shop.channel)] == [other_sku]
        # The same problem after it was resolved opens a new exception (history stays as it was).
        reopened = queue.record_exception(
            conn, channel=shop.channel, reason="bad_address", external_id="9001", detail="broken again"
        )
        assert reopened != first
        assert queue.get(conn, first)["status"] == "resolved"
        with pytest.raises(ValueError):
            queue.close(conn, other_sku, status="open", actor="ops")


def test_watermark_only_moves_forward(shop: Shop):
    t1 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    with shop.engine.begin() as conn:
        assert sync_state.get_watermark(conn, shop.channel, "orders") is None
        sync_state.record_run(conn, shop.channel, "orders", t1, {"new": 3, "at": t1})
        sync_state.record_run(conn, shop.channel, "orders", t1 - timedelta(days=1), {"new": 0})  # a backfill
        assert sync_state.get_watermark(conn, shop.channel, "orders") == t1
        assert sync_state.get_state(conn, shop.channel, "orders")["last_counts"] == {"new": 0}
        sync_state.record_run(conn, shop.channel, "orders", t1 + timedelta(minutes=5), {"new": 1})
        assert sync_state.get_watermark(conn, shop.channel, "orders") == t1 + timedelta(minutes=5)
        with pytest.raises(ValueError, match="naive"):
            sync_state.record_run(conn, shop.channel, "orders", datetime(2026, 11, 2), {})


def test_summary_counts_orders_reserved_units_and_open_exceptions(shop: Shop):
    shop.add_sku("A", 3)
    shop.ingest(
        make_order("9101", [make_line("1", shop.sku("A"), 2)]),
        make_order("9102", [make_line("1", shop.sku("A"), 2)]),  # short
        make_order("9103", [make_line("1", "NOT-MAPPED", 1)]),
    )
    with shop.engine.connect() as conn:
        (row,) = [r for r in summary(conn) if r["channel"] == shop.channel]
    assert row["platform"] == "shopify"
    assert (row["orders"], row["reserved_units"], row["needs_attention"]) == (3, 2, 2)
    assert row["exceptions"] == {"insufficient_stock": 1, "unknown_sku": 1}
