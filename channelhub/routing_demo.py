"""The demo of order routing (``make demo-once``): a few orders routed by a channel's rules, and a move.

``routing_demo(engine)`` sets up, idempotently, a channel of its own (``routing_demo``) with three located
locations (a Beijing and a Hangzhou warehouse, a Shanghai store with a floor), a little stock, the rules
``nearest`` + ``split`` + ``store_floor``, ingests four orders shipped to different cities, moves one line
by hand (``route move``), and prints each order's lines with the location that reserves them. Running it
again changes nothing (the same orders, the same ledger keys; the move is already made).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine

from warehouse import catalog
from warehouse.ingest import ingest_orders
from warehouse.route_lines import set_channel_routing
from warehouse.route_moves import RouteError, move_line_now, order_locations, route_history
from warehouse.routing import RoutingRules
from warehouse.testing import landed, make_line, make_order

CHANNEL = "routing_demo"
LOCATIONS = (  # code, name, kind, province, city
    ("DEMO-WH-BJ", "Beijing warehouse", "warehouse", "北京市", "北京市"),
    ("DEMO-WH-HZ", "Hangzhou warehouse", "warehouse", "浙江省", "杭州市"),
    ("DEMO-STORE-SH", "Shanghai Nanjing Road store", "store", "上海市", "上海市"),
)
STOCK = {  # sku: {location: units}
    "DEMO-TEA": {"DEMO-WH-BJ": 10, "DEMO-WH-HZ": 2, "DEMO-STORE-SH": 4},
    "DEMO-CUP": {"DEMO-WH-BJ": 10, "DEMO-STORE-SH": 3},
}
RULES = RoutingRules(
    locations=("DEMO-WH-BJ", "DEMO-WH-HZ", "DEMO-STORE-SH"), nearest=True, split=True, store_floor=2
)
ORDERS = (  # external id, province, city, [(sku, units)]
    ("RD-1001", "浙江省", "杭州市", [("DEMO-TEA", 2)]),  # nearest: Hangzhou
    ("RD-1002", "浙江省", "杭州市", [("DEMO-TEA", 1), ("DEMO-CUP", 1)]),  # Hangzhou out of tea: Beijing
    ("RD-1003", "上海市", "上海市", [("DEMO-TEA", 2), ("DEMO-CUP", 1)]),  # the store, down to its floor
    ("RD-1004", "上海市", "上海市", [("DEMO-TEA", 1)]),  # the store would fall below its floor
)


def routing_demo(engine: Engine, *, echo: bool = True) -> list[dict[str, Any]]:
    """Route the demo orders and move one line; returns (and prints) every line with its location."""
    with engine.begin() as conn:
        for code, name, kind, province, city in LOCATIONS:
            catalog.upsert_location(conn, code, name, kind, province=province, city=city)
        catalog.upsert_channel(conn, CHANNEL, "shopify", "Routing demo shop", LOCATIONS[0][0])
        set_channel_routing(conn, CHANNEL, RULES)
        for sku, places in STOCK.items():
            catalog.upsert_sku(conn, sku, sku.removeprefix("DEMO-").title())
            catalog.upsert_listing(conn, CHANNEL, sku, merchant_sku=sku)
            for location, units in places.items():
                catalog.receive_stock(conn, sku, location, units, f"receive:routing-demo:{sku}:{location}")
    orders = []
    for external_id, province, city, lines in ORDERS:
        order = make_order(
            external_id, [make_line(str(n), sku, units) for n, (sku, units) in enumerate(lines, 1)]
        )
        address = replace(order.shipping_address, province=province, city=city, country_code="CN")
        orders.append(landed(replace(order, shipping_address=address, currency="CNY")))
    ingest_orders(engine, CHANNEL, orders)
    # The Shanghai store cannot ship the cup today: it goes to Beijing (once; on a re-run it is there).
    with suppress(RouteError):
        move_line_now(
            engine, CHANNEL, "RD-1003", "DEMO-WH-BJ", line="2", actor="demo", note="store courier missed"
        )

    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for external_id, province, city, _ in ORDERS:
            for line in order_locations(conn, CHANNEL, external_id):
                rows.append({"order": external_id, "ship_to": f"{province}{city}", **line})
        moves = [(o, route_history(conn, CHANNEL, o)) for o, *_ in ORDERS]
    if echo:
        print(f"order routing ({CHANNEL}: {', '.join(RULES.locations)}; nearest, split, store floor 2)")
        print(f"  {'order':<8} {'ship to':<12} {'line':<4} {'sku':<10} {'qty':>3}  {'location':<14} reserved")
        for row in rows:
            print(
                f"  {row['order']:<8} {row['ship_to']:<12} {row['line']:<4} {row['sku']:<10} "
                f"{row['quantity']:>3}  {row['location']:<14} {row['reserved']}"
            )
        for order, history in moves:
            for move in history:
                print(
                    f"  moved {order} line {move['line']}: {move['from_location']} -> {move['to_location']} "
                    f"by {move['actor']} ({move['note']})"
                )
    return rows
