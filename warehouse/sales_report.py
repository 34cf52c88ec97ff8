"""Sales reports (销售报表): what was sold, for how much, what was refunded and what came back, per channel,
location, SKU or day, read from the warehouse. Queries only: nothing is written, nothing printed.

Where each figure comes from (docs/reports.md says the same for the people reading them):

- **Channel sales**: every order line of an order that is neither cancelled nor voided (``removed`` lines,
  gone from the order's newest version, are not sold). Units sold = the line's quantity; revenue = its
  ``line_total`` in the order's currency; counted on the order's day (its ``created_at``); at the line's
  location (where it was routed), else the channel's fulfilment location.
- **Store (POS) sales**: ``store_sales`` (written by the sales import beside the ledger row of each receipt
  line). A line with a positive quantity is a sale on its ``sold_at``; a line without a price adds units but
  no revenue (``unpriced_units`` says how many). They count under the channel ``pos``.
- **Refunds**: refunded units of channel order lines, and their money pro rata of the line total
  (line_total x refunded / quantity), on the order's day; a store return (a negative POS line) is refunded
  units and, when priced, its amount, on its day. Refunds never lower revenue: net = revenue - refunded.
- **Returned units**: stock that came back, i.e. every ``restock`` ledger row (a channel order's restock, a
  store return, a physical return booked by the returns flow), on the day it came back (a store return: the
  day its receipt says). A bundle comes back as its components. Returns of a channel's order count under
  that channel; others under ``pos``.
- **Sell-through** (sku and location groupings only) = units sold / (units sold + units on hand now), where
  "on hand now" is the SKU's on-hand at every store and warehouse (for a SKU), or everything on hand at the
  location (for a location). It says which share of what was available in the window found a buyer: 1.0
  nothing left, 0.0 nothing sold. None when there is nothing to divide (and for bundles, which have no stock
  of their own).

Money is never summed across currencies: ``revenue`` and ``refunded_amount`` map each currency to its sum.
Days are calendar days in ``tz`` (UTC unless said otherwise); a window is ``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from warehouse.models import SELLABLE_LOCATION_KINDS

GROUPINGS = ("channel", "location", "sku", "day")
POS_CHANNEL = "pos"  # the channel under which store (POS) sales and returns of no channel order count
UNMAPPED_SKU = "(unmapped)"  # channel lines whose SKU resolved to nothing (an unknown_sku exception)
DEFAULT_DAYS = 30
COVER_SALES_DAYS = 14  # days of cover: the average daily units sold over this many days
DEFAULT_COVER_THRESHOLD = Decimal(7)  # days: a SKU with less cover than this is low on stock


class ReportError(ValueError):
    """The report cannot be made as asked (an unknown grouping, a window that ends before it starts)."""


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end)``, both aware instants."""

    start: datetime
    end: datetime

    @classmethod
    def of_days(cls, first: date, end: date, tz: str = "UTC") -> Window:
        """From the start of day ``first`` up to the start of day ``end`` (exclusive), in ``tz``."""
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(tz)
        return cls(datetime.combine(first, time(), zone), datetime.combine(end, time(), zone))

    @classmethod
    def last_days(cls, days: int = DEFAULT_DAYS, *, today: date | None = None, tz: str = "UTC") -> Window:
        """The last ``days`` days, today included."""
        today = today or datetime.now(UTC).date()
        return cls.of_days(today - timedelta(days=days - 1), today + timedelta(days=1), tz)


@dataclass(frozen=True, slots=True)
class SalesRow:
    """One group of a sales report; ``key`` is a channel or location code, a SKU code or an ISO day."""

    key: str
    label: str
    units_sold: int
    revenue: Mapping[str, Decimal]  # currency -> money
    unpriced_units: int  # units sold whose price the hub does not know (store sales without a price)
    refunded_units: int
    refunded_amount: Mapping[str, Decimal]
    returned_units: int
    on_hand: int | None = None  # sku and location groupings: units on hand now
    sell_through: Decimal | None = None

    @property
    def net_revenue(self) -> dict[str, Decimal]:
        currencies = sorted({*self.revenue, *self.refunded_amount})
        return {
            c: self.revenue.get(c, Decimal(0)) - self.refunded_amount.get(c, Decimal(0)) for c in currencies
        }


@dataclass(frozen=True, slots=True)
class SalesReport:
    by: str
    window: Window
    tz: str
    rows: list[SalesRow] = field(default_factory=list)

    @property
    def currencies(self) -> list[str]:
        return sorted({c for row in self.rows for c in (*row.revenue, *row.refunded_amount)})


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    day: date
    key: str  # channel code or store code
    units_sold: int


@dataclass(frozen=True, slots=True)
class LowStock:
    sku: str
    title: str
    free_units: int  # on hand - reserved at every store and warehouse
    units_sold: int  # over the last COVER_SALES_DAYS days
    average_daily: Decimal
    days_of_cover: Decimal


# Every fact of the window, one row each: channel, location, sku, when, and its units and money.
_FACTS = """
WITH facts AS (
    SELECT c.code AS channel, coalesce(l.location_id, c.fulfilment_location_id) AS location_id, l.sku_id,
           o.created_at AS at, o.currency,
           l.quantity AS sold, l.line_total AS revenue, 0 AS unpriced,
           l.refunded_quantity AS refunded,
           CASE WHEN l.quantity > 0
                THEN round(l.line_total * least(l.refunded_quantity, l.quantity) / l.quantity, 2)
                ELSE 0 END AS refunded_amount,
           0 AS returned
      FROM order_lines l
      JOIN orders o ON o.id = l.order_id
      JOIN channels c ON c.id = o.channel_id
     WHERE NOT o.cancelled AND o.payment_status <> 'voided' AND NOT l.removed
       AND c.platform <> 'hub'  -- hub-side orders (an exchange's replacement, warehouse.returns) sell nothing
       AND o.created_at >= :start AND o.created_at < :end
    UNION ALL
    SELECT :pos, s.location_id, s.sku_id, s.sold_at, s.currency,
           greatest(s.quantity, 0), CASE WHEN s.quantity > 0 THEN coalesce(s.amount, 0) ELSE 0 END,
           CASE WHEN s.quantity > 0 AND s.amount IS NULL THEN s.quantity ELSE 0 END,
           greatest(-s.quantity, 0), CASE WHEN s.quantity < 0 THEN coalesce(s.amount, 0) ELSE 0 END,
           0
      FROM store_sales s
     WHERE s.sold_at >= :start AND s.sold_at < :end
    UNION ALL
    SELECT coalesce(c.code, :pos), r.location_id, r.sku_id, coalesce(s.sold_at, r.created_at), NULL,
           0, 0, 0, 0, 0, r.delta_on_hand
      FROM stock_ledger r
      LEFT JOIN store_sales s ON s.idempotency_key = r.idempotency_key
      LEFT JOIN orders o ON o.id = r.order_id
      LEFT JOIN channels c ON c.id = o.channel_id
     WHERE r.kind = 'restock' AND coalesce(s.sold_at, r.created_at) >= :start
       AND coalesce(s.sold_at, r.created_at) < :end
)
"""

# Per grouping: the group's key and label, and what is joined to name it.
_GROUPS = {
    "channel": (
        "f.channel",
        "coalesce(ch.name, CASE WHEN f.channel = :pos THEN 'POS (stores)' ELSE f.channel END)",
        "LEFT JOIN channels ch ON ch.code = f.channel",
    ),
    "location": ("loc.code", "loc.name", "JOIN locations loc ON loc.id = f.location_id"),
    "sku": (
        f"coalesce(k.code, '{UNMAPPED_SKU}')",
        "coalesce(k.title, '')",
        "LEFT JOIN skus k ON k.id = f.sku_id",
    ),
    "day": ("to_char(f.at AT TIME ZONE :tz, 'YYYY-MM-DD')", "''", ""),
}

_ON_HAND = {
    "sku": f"""
        SELECT k.code AS key, coalesce(sum(sl.on_hand), 0) AS on_hand,
               EXISTS (SELECT 1 FROM sku_components b WHERE b.bundle_sku_id = k.id) AS bundle
          FROM skus k
          LEFT JOIN stock_levels sl ON sl.sku_id = k.id
               AND sl.location_id IN (SELECT id FROM locations WHERE kind IN {SELLABLE_LOCATION_KINDS!r})
         WHERE k.code = ANY(:keys)
         GROUP BY k.id, k.code""",
    "location": """
        SELECT loc.code AS key, coalesce(sum(sl.on_hand), 0) AS on_hand, false AS bundle
          FROM locations loc LEFT JOIN stock_levels sl ON sl.location_id = loc.id
         WHERE loc.code = ANY(:keys)
         GROUP BY loc.code""",
}


def sales_report(conn: Connection, by: str, window: Window | None = None, *, tz: str = "UTC") -> SalesReport:
    """The sales of ``window`` (default: the last 30 days) grouped ``by`` channel | location | sku | day,
    the busiest group first (days in order)."""
    if by not in GROUPINGS:
        raise ReportError(f"unknown grouping {by!r}: expected one of {', '.join(GROUPINGS)}")
    window = window or Window.last_days(tz=tz)
    if window.start >= window.end:
        raise ReportError(
            f"the window ends ({window.end.isoformat()}) before it starts ({window.start.isoformat()})"
        )
    key, label, join = _GROUPS[by]
    sql = f"""{_FACTS}
        SELECT {key} AS key, {label} AS label, f.currency,
               sum(f.sold) AS sold, sum(f.revenue) AS revenue, sum(f.unpriced) AS unpriced,
               sum(f.refunded) AS refunded, sum(f.refunded_amount) AS refunded_amount,
               sum(f.returned) AS returned
          FROM facts f {join}
         GROUP BY 1, 2, 3"""
    params = {"start": window.start, "end": window.end, "pos": POS_CHANNEL, "tz": tz}
    merged: dict[str, dict[str, Any]] = {}
    for row in conn.execute(text(sql), params):
        group = merged.setdefault(
            row.key,
            {
                "label": row.label,
                "sold": 0,
                "unpriced": 0,
                "refunded": 0,
                "returned": 0,
                "rev": {},
                "ref": {},
            },
        )
        for name in ("sold", "unpriced", "refunded", "returned"):
            group[name] += int(getattr(row, name))
        if row.currency is not None:
            for money, target in ((row.revenue, group["rev"]), (row.refunded_amount, group["ref"])):
                if money:
                    target[row.currency] = target.get(row.currency, Decimal(0)) + money
    stock = _on_hand(conn, by, list(merged))
    rows = []
    for group_key, group in merged.items():
        on_hand, bundle = stock.get(group_key, (None, False))
        sold = group["sold"]
        through = None
        if on_hand is not None and not bundle and sold + on_hand > 0:
            through = (Decimal(max(sold, 0)) / Decimal(max(sold, 0) + on_hand)).quantize(Decimal("0.0001"))
        rows.append(
            SalesRow(
                key=group_key,
                label=group["label"],
                units_sold=sold,
                revenue=dict(sorted(group["rev"].items())),
                unpriced_units=group["unpriced"],
                refunded_units=group["refunded"],
                refunded_amount=dict(sorted(group["ref"].items())),
                returned_units=group["returned"],
                on_hand=None if bundle else on_hand,
                sell_through=through,
            )
        )
    if by == "day":
        rows.sort(key=lambda r: r.key)
    else:
        rows.sort(key=lambda r: (-r.units_sold, r.key))
    return SalesReport(by, window, tz, rows)


def _on_hand(conn: Connection, by: str, keys: list[str]) -> dict[str, tuple[int, bool]]:
    if by not in _ON_HAND or not keys:
        return {}
    return {
        row.key: (int(row.on_hand), row.bundle) for row in conn.execute(text(_ON_HAND[by]), {"keys": keys})
    }


def daily_series(conn: Connection, by: str, window: Window, *, tz: str = "UTC") -> list[SeriesPoint]:
    """Units sold per day of ``window``: per channel (``by="channel"``; store sales together as ``pos``)
    or per store (``by="store"``: everything sold at each store location, over the counter or shipped).
    Days without sales are absent."""
    if by == "channel":
        key, where = "f.channel", "true"
    elif by == "store":
        key, where = "loc.code", "loc.kind = 'store'"  # everything a store sold: over the counter or shipped
    else:
        raise ReportError(f"unknown series {by!r}: expected channel or store")
    sql = f"""{_FACTS}
        SELECT (f.at AT TIME ZONE :tz)::date AS day, {key} AS key, sum(f.sold) AS sold
          FROM facts f JOIN locations loc ON loc.id = f.location_id
         WHERE {where}
         GROUP BY 1, 2
        HAVING sum(f.sold) <> 0
         ORDER BY 1, 2"""
    params = {"start": window.start, "end": window.end, "pos": POS_CHANNEL, "tz": tz}
    return [SeriesPoint(row.day, row.key, int(row.sold)) for row in conn.execute(text(sql), params)]


def top_skus(conn: Connection, window: Window, limit: int = 10, *, tz: str = "UTC") -> list[SalesRow]:
    """The ``limit`` SKUs that sold the most units in ``window`` (unmapped lines left out)."""
    rows = sales_report(conn, "sku", window, tz=tz).rows
    return [row for row in rows if row.key != UNMAPPED_SKU and row.units_sold > 0][:limit]


def low_stock(
    conn: Connection,
    threshold_days: Decimal = DEFAULT_COVER_THRESHOLD,
    *,
    now: datetime | None = None,
    sales_days: int = COVER_SALES_DAYS,
) -> list[LowStock]:
    """SKUs that sold in the last ``sales_days`` days and whose days of cover are below ``threshold_days``,
    least cover first. Days of cover = free units (on hand - reserved, at every store and warehouse) / the
    average units sold per day over those days (channel and store sales). Bundles have no stock of their own
    and are left out (their components are listed when they sell on their own)."""
    now = now or datetime.now(UTC)
    sold = {
        row.key: row.units_sold
        for row in sales_report(conn, "sku", Window(now - timedelta(days=sales_days), now)).rows
        if row.key != UNMAPPED_SKU and row.units_sold > 0
    }
    if not sold:
        return []
    free_sql = f"""
        SELECT k.code, k.title, coalesce(sum(sl.on_hand - sl.reserved), 0) AS free
          FROM skus k
          LEFT JOIN stock_levels sl ON sl.sku_id = k.id
               AND sl.location_id IN (SELECT id FROM locations WHERE kind IN {SELLABLE_LOCATION_KINDS!r})
         WHERE k.code = ANY(:codes)
           AND NOT EXISTS (SELECT 1 FROM sku_components b WHERE b.bundle_sku_id = k.id)
         GROUP BY k.id, k.code, k.title"""
    found = []
    for row in conn.execute(text(free_sql), {"codes": sorted(sold)}):
        average = Decimal(sold[row.code]) / sales_days
        cover = (Decimal(int(row.free)) / average).quantize(Decimal("0.1"))
        if cover < threshold_days:
            found.append(
                LowStock(
                    row.code,
                    row.title,
                    int(row.free),
                    sold[row.code],
                    average.quantize(Decimal("0.01")),
                    cover,
                )
            )
    return sorted(found, key=lambda item: (item.days_of_cover, item.sku))
