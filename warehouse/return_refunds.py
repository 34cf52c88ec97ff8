"""Which returned units the channel has refunded (docs/returns.md, rule 5): per return line, its status from
the order line's ``refunded_quantity``, and the returned-but-not-refunded check queued for a person.

A return line of a channel order records the order line it returns (``return_lines.order_line_id``); the
line's refunded units cover its returns in the order they came back: ``awaiting_refund``,
``partly_refunded``, ``refunded``; a walk-in return is ``walk_in`` (refunded at the till).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, text

from warehouse import exceptions as queue
from warehouse.exceptions import ExceptionRecord
from warehouse.models import channels, order_lines, orders, skus

NOT_REFUNDED = "return_not_refunded"  # exception reason: returned units the channel has not refunded
REFUNDED_NOTE = "cleared: the channel refunded the returned units"

# Per return line, the order line's refunded units cover its returns in the order they were received.
RETURN_STATUS_SQL = """
SELECT r.return_key AS return_id, rl.line_no, loc.code AS location, r.returned_at,
       c.code AS channel, o.external_id AS order_id, ol.external_line_id AS order_line_id,
       s.code AS sku, rl.quantity, rl.reason, rl.disposition, dest.code AS stock_location,
       ol.refunded_quantity, xs.code AS exchange_sku, xl.quantity AS exchange_quantity,
       CASE WHEN xl.id IS NULL THEN NULL WHEN xl.removed THEN 'cancelled'
            WHEN xl.warehouse_shipped_quantity >= xl.quantity THEN 'shipped' ELSE 'reserved' END
           AS exchange_status,
       CASE WHEN rl.order_line_id IS NULL THEN 'walk_in'
            WHEN ol.refunded_quantity >= sum(rl.quantity) OVER w THEN 'refunded'
            WHEN ol.refunded_quantity > sum(rl.quantity) OVER w - rl.quantity THEN 'partly_refunded'
            ELSE 'awaiting_refund' END AS refund_status
  FROM return_lines rl
  JOIN returns r ON r.id = rl.return_id
  JOIN locations loc ON loc.id = r.location_id
  JOIN locations dest ON dest.id = rl.stock_location_id
  JOIN skus s ON s.id = rl.sku_id
  LEFT JOIN channels c ON c.id = r.channel_id
  LEFT JOIN orders o ON o.id = r.order_id
  LEFT JOIN order_lines ol ON ol.id = rl.order_line_id
  LEFT JOIN order_lines xl ON xl.id = rl.exchange_order_line_id
  LEFT JOIN skus xs ON xs.id = xl.sku_id
WINDOW w AS (PARTITION BY rl.order_line_id ORDER BY r.returned_at, rl.id)
"""


def list_returns(
    conn: Connection,
    *,
    channel: str | None = None,
    order_id: str | None = None,
    location: str | None = None,
    awaiting_refund_days: int | None = None,
    overdue_only: bool = False,
    now: datetime | None = None,
    limit: int | None = 500,
) -> list[dict[str, Any]]:
    """Return lines, newest first, each with its ``refund_status`` (walk_in | awaiting_refund |
    partly_refunded | refunded) and ``overdue`` (not refunded ``awaiting_refund_days`` after it came back)."""
    cutoff = None
    if awaiting_refund_days is not None:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=awaiting_refund_days)
    rows = conn.execute(
        text(
            f"""
            SELECT *, (refund_status IN ('awaiting_refund', 'partly_refunded')
                       AND returned_at <= CAST(:cutoff AS timestamptz)) IS TRUE AS overdue
              FROM ({RETURN_STATUS_SQL}) x
             WHERE (CAST(:channel AS text) IS NULL OR channel = :channel)
               AND (CAST(:order_id AS text) IS NULL OR order_id = :order_id)
               AND (CAST(:location AS text) IS NULL OR location = :location)
             ORDER BY returned_at DESC, return_id DESC, line_no DESC
            """
        ),
        {"channel": channel, "order_id": order_id, "location": location, "cutoff": cutoff},
    )
    found = [dict(row._mapping) for row in rows]
    if overdue_only:
        found = [row for row in found if row["overdue"]]
    return found if limit is None else found[:limit]


def queue_unrefunded_returns(conn: Connection, days: int, now: datetime | None = None) -> int:
    """Queue a ``return_not_refunded`` exception (for a person: refund on the channel, or find out why not)
    per channel order and SKU with returned units not refunded ``days`` after they came back; resolve the
    ones the channel has refunded since. Returns the number of exceptions open for it now."""
    overdue = list_returns(conn, awaiting_refund_days=days, overdue_only=True, now=now, limit=None)
    channel_ids = dict(conn.execute(select(channels.c.code, channels.c.id)).tuples().all())
    by_channel: dict[int, dict[tuple[str, str, str], ExceptionRecord]] = {}
    for row in reversed(overdue):  # oldest first: the newest line of an order and SKU names it
        detail = (
            f"return {row['return_id']} line {row['line_no']} at {row['location']}: {row['quantity']} x "
            f"{row['sku']} came back on {row['returned_at']:%Y-%m-%d}, line {row['order_line_id']} refunded "
            f"{row['refunded_quantity']} so far ({row['refund_status']}): refund them on the channel"
        )
        record = ExceptionRecord(NOT_REFUNDED, row["order_id"], detail, None, row["sku"])
        by_channel.setdefault(channel_ids[row["channel"]], {})[record.identity] = record
    for channel_id, records in by_channel.items():
        queue.upsert_exceptions(conn, channel_id, list(records.values()))
    open_orders = conn.execute(
        text("SELECT DISTINCT channel_id, external_id FROM exceptions WHERE reason = :r AND status = 'open'"),
        {"r": NOT_REFUNDED},
    ).all()
    for channel_id, external_id in open_orders:
        still = list(by_channel.get(channel_id, {}).values())
        queue.resolve_cleared(conn, channel_id, [external_id], [NOT_REFUNDED], still, REFUNDED_NOTE)
    return sum(len(records) for records in by_channel.values())


def order_line_returns(conn: Connection, channel: str, order_id: str) -> list[dict[str, Any]]:
    """The order's lines as the hub holds them: quantities shipped, refunded, claimed restocked by the
    platform, physically returned; what is reserved now."""
    rows = conn.execute(
        select(
            order_lines.c.external_line_id.label("line"),
            skus.c.code.label("sku"),
            order_lines.c.quantity,
            func.greatest(order_lines.c.shipped_quantity, order_lines.c.warehouse_shipped_quantity).label(
                "shipped"
            ),
            order_lines.c.refunded_quantity.label("refunded"),
            order_lines.c.restocked_quantity.label("platform_restocked"),
            order_lines.c.returned_quantity.label("returned"),
            order_lines.c.reserved_quantity.label("reserved"),
        )
        .join(orders, orders.c.id == order_lines.c.order_id)
        .join(channels, channels.c.id == orders.c.channel_id)
        .outerjoin(skus, skus.c.id == order_lines.c.sku_id)
        .where(channels.c.code == channel, orders.c.external_id == order_id)
        .order_by(order_lines.c.id)
    )
    return [dict(row._mapping) for row in rows]
