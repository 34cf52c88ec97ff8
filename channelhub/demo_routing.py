"""``make demo-once``'s routing: where the synced orders reserve, shown on the demo's own data.

After the first sync, ``show_routing`` prints, for every channel with routing
rules (the demo's ``wechat_demo``: the main warehouse and two stores, nearest first), how many lines each
location reserves and one order routed to a store near its buyer, then moves that order's reservation back
to the channel's first location (``channelhub route move``: released at one, reserved at the other, both in
the ledger), as ops would when a store cannot ship. The other store-side demos are ``demo_returns``,
``demo_moves`` (a transfer) and ``demo_pos_feed``; ``channelhub.demo`` calls them in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from warehouse.route_moves import RouteError, move_line_now, order_locations

# Lines per location of the channels with routing rules.
ROUTED_LINES_SQL = """
SELECT c.code AS channel, loc.code AS location, loc.kind, count(*) AS lines,
       coalesce(sum(l.reserved_quantity), 0) AS reserved
  FROM channels c
  JOIN orders o ON o.channel_id = c.id
  JOIN order_lines l ON l.order_id = o.id
  JOIN locations loc ON loc.id = l.location_id
 WHERE c.routing IS NOT NULL AND (CAST(:channel AS text) IS NULL OR c.code = :channel)
 GROUP BY c.code, loc.code, loc.kind
 ORDER BY c.code, loc.code
"""

# One order of a routed channel reserved at a store that is not the channel's first location, whose reserved
# lines the first location has the free units for: the order the demo shows and moves back.
STORE_ORDER_SQL = """
SELECT c.code AS channel, o.external_id AS order_id, loc.code AS location,
       o.shipping_address ->> 'province' AS province, o.shipping_address ->> 'city' AS city,
       c.routing -> 'locations' ->> 0 AS first_location
  FROM channels c
  JOIN orders o ON o.channel_id = c.id
  JOIN order_lines l ON l.order_id = o.id
  JOIN locations loc ON loc.id = l.location_id
 WHERE c.routing IS NOT NULL AND (CAST(:channel AS text) IS NULL OR c.code = :channel)
   AND loc.kind = 'store' AND l.reserved_quantity > 0
   AND loc.code IS DISTINCT FROM c.routing -> 'locations' ->> 0
   -- the first location can take every reserved line of it (a move is all the order's lines or none)
   AND NOT EXISTS (
        SELECT 1
          FROM order_lines r
          JOIN locations f ON f.code = c.routing -> 'locations' ->> 0
          LEFT JOIN stock_levels s ON s.sku_id = r.sku_id AND s.location_id = f.id
         WHERE r.order_id = o.id AND r.reserved_quantity > 0
           AND coalesce(s.on_hand - s.reserved, 0) < r.reserved_quantity)
 ORDER BY c.code, o.created_at DESC, o.external_id
 LIMIT 1
"""


def show_routing(
    engine: Engine, out: Callable[[str], None] = print, *, channel: str | None = None, move: bool = True
) -> dict[str, Any]:
    """Print where the routed channels' lines (``channel``'s alone when given) reserve, one order routed to
    a store, and (``move``) that order moved to the channel's first location. Returns what it printed."""
    with engine.connect() as conn:
        params = {"channel": channel}
        per_location = [dict(row._mapping) for row in conn.execute(text(ROUTED_LINES_SQL), params)]
        store_order = conn.execute(text(STORE_ORDER_SQL), params).mappings().first()
    if not per_location:
        out("routing: no channel has routing rules (config/channels.yaml `routing:`)")
        return {"per_location": [], "order": None, "moves": []}
    for row in per_location:
        out(
            f"  {row['channel']}: {row['lines']} lines at {row['location']} ({row['kind']}), "
            f"{row['reserved']} units reserved"
        )
    if store_order is None:
        out("  (no open order is reserved at a store right now)")
        return {"per_location": per_location, "order": None, "moves": []}
    channel, order = str(store_order["channel"]), str(store_order["order_id"])
    out(
        f"  order {order} of {channel}, shipped to {store_order['province']} {store_order['city']}, "
        f"reserved at {store_order['location']}:"
    )
    with engine.connect() as conn:
        lines = order_locations(conn, channel, order)
    for line in lines:
        out(f"    line {line['line']}: {line['quantity']} x {line['sku']} at {line['location']}")
    moves: list[str] = []
    if move and store_order["first_location"]:
        try:
            done = move_line_now(
                engine,
                channel,
                order,
                store_order["first_location"],
                actor="demo",
                note="the store's courier missed the pick-up",
            )
        except RouteError as refused:  # e.g. the first location has no free unit left
            out(f"  route move refused: {refused}")
        else:
            for step in done:
                moves.append(f"line {step.line}: {step.from_location} -> {step.to_location}")
                out(f"  re-routed (channelhub route move, released and reserved in the ledger): {step}")
    return {"per_location": per_location, "order": dict(store_order), "moves": moves}
