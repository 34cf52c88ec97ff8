"""Per channel: orders landed, units reserved now, shipments and stock pushed to the channel, open exceptions
by reason (the demo and ``channelhub summary`` print it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

SUMMARY_SQL = """
SELECT c.code AS channel, c.platform,
       (SELECT count(*) FROM orders o WHERE o.channel_id = c.id) AS orders,
       (SELECT coalesce(sum(l.reserved_quantity), 0) FROM orders o JOIN order_lines l ON l.order_id = o.id
         WHERE o.channel_id = c.id) AS reserved_units,
       (SELECT count(*) FROM orders o WHERE o.channel_id = c.id AND o.needs_attention) AS needs_attention,
       (SELECT count(*) FROM shipments s WHERE s.channel_id = c.id AND s.push_status = 'pushed')
           AS shipments_pushed,
       (SELECT count(*) FROM shipments s WHERE s.channel_id = c.id AND s.push_status = 'pending')
           AS shipments_pending,
       (SELECT count(*) FROM channel_listings cl WHERE cl.channel_id = c.id AND cl.pushed_at IS NOT NULL)
           AS listings_pushed,
       (SELECT max(cl.pushed_at) FROM channel_listings cl WHERE cl.channel_id = c.id) AS last_stock_push,
       coalesce((SELECT jsonb_object_agg(reason, n) FROM (
                    SELECT e.reason, count(*) AS n FROM exceptions e
                     WHERE e.channel_id = c.id AND e.status = 'open' GROUP BY e.reason) r), '{}'::jsonb)
           AS exceptions
  FROM channels c
 ORDER BY c.code
"""


def summary(conn: Connection) -> list[dict[str, Any]]:
    """One dict per channel: channel, platform, orders, reserved_units, needs_attention, shipments_pushed,
    shipments_pending, listings_pushed, last_stock_push, exceptions ({reason: open count})."""
    return [
        {**row._mapping, "reserved_units": int(row.reserved_units), "exceptions": dict(row.exceptions)}
        for row in conn.execute(text(SUMMARY_SQL))
    ]
