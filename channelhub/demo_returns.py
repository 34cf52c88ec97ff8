"""The demo's return (``make demo-once``): a shipped order of a demo channel comes back at a store.

``demo_return(engine)`` takes the newest order line of the channel that shipped units not yet returned,
receives one unit back at a store (the first store location, else ``DEMO-STORE-01`` created for it) with
reason ``wrong_size``, and prints the order line, its ledger rows (reserve, deduct, the return's restock at
the store) and the return's refund status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from canonical.store_files import ReturnRow
from warehouse import catalog
from warehouse.models import channels, locations, order_lines, orders, skus, stock_ledger
from warehouse.return_refunds import list_returns, order_line_returns
from warehouse.returns import receive_return

DEMO_STORE = "DEMO-STORE-01"


def demo_return(engine: Engine, channel: str | None = None, store: str | None = None) -> int:
    """Receive one unit of a shipped line of ``channel`` (default: any channel) at ``store``; print what
    happened. Returns 0, or 1 when no channel has a shipped line left to return."""
    with engine.begin() as conn:
        shipped = func.greatest(order_lines.c.shipped_quantity, order_lines.c.warehouse_shipped_quantity)
        query = (
            select(
                channels.c.code.label("channel"),
                orders.c.external_id,
                order_lines.c.id,
                order_lines.c.external_line_id,
                skus.c.code.label("sku"),
            )
            .join(orders, orders.c.id == order_lines.c.order_id)
            .join(channels, channels.c.id == orders.c.channel_id)
            .join(skus, skus.c.id == order_lines.c.sku_id)
            .where(shipped > order_lines.c.returned_quantity, channels.c.platform != "hub")
            .order_by(orders.c.updated_at.desc(), order_lines.c.id)
            .limit(1)
        )
        if channel:
            query = query.where(channels.c.code == channel)
        line = conn.execute(query).first()
        if line is None:
            print("returns demo: no shipped order line to return yet")
            return 1
        store = (
            store
            or conn.execute(
                select(locations.c.code)
                .where(locations.c.kind == "store")
                .order_by(locations.c.code)
                .limit(1)
            ).scalar()
        )
        if store is None:
            store = DEMO_STORE
            catalog.upsert_location(conn, store, "demo store (returns)", "store")
        row = ReturnRow(
            line=0,
            raw={},
            return_id=f"DEMO-RT-{line.external_id}",
            line_no=line.external_line_id,
            location=store,
            sku=line.sku,
            quantity=1,
            reason="wrong_size",
            returned_at=datetime.now(UTC),
            channel=line.channel,
            order_id=line.external_id,
            order_line_id=line.external_line_id,
            exchange_sku=None,
            exchange_quantity=None,
        )
        receive_return(conn, row, source="demo")
        print(
            f"- a customer brings back 1 x {line.sku} of {line.channel} order {line.external_id} at {store}"
        )
        _print_effects(conn, line)
    return 0


LINE_TEXT = (
    "  order line {line}: {sku} ordered {quantity}, shipped {shipped}, refunded {refunded}, "
    "platform says restocked {platform_restocked}, returned {returned}, reserved {reserved}"
)
RETURN_TEXT = (
    "  return {return_id} line {line_no}: {quantity} x {sku} ({reason}, {disposition}) -> {stock_location}, "
    "refund: {refund_status}"
)


def _print_effects(conn: Connection, line: Any) -> None:
    """The order line as held now, its ledger rows (every location), the return's refund status."""
    for held in order_line_returns(conn, line.channel, line.external_id):
        if held["line"] == line.external_line_id:
            print(LINE_TEXT.format(**held))
    ledger = conn.execute(
        select(
            stock_ledger.c.idempotency_key,
            stock_ledger.c.kind,
            locations.c.code,
            stock_ledger.c.delta_on_hand,
            stock_ledger.c.delta_reserved,
        )
        .join(locations, locations.c.id == stock_ledger.c.location_id)
        .where(stock_ledger.c.order_line_id == line.id)
        .order_by(stock_ledger.c.id)
    )
    for key, kind, location, on_hand, reserved in ledger:
        print(f"  ledger {kind:<8} {location:<16} on_hand {on_hand:+d} reserved {reserved:+d}  {key}")
    for status in list_returns(conn, channel=line.channel, order_id=line.external_id):
        print(RETURN_TEXT.format(**status))
