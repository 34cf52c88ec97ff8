"""Returns and exchanges (退换货) received at a store or warehouse (docs/returns.md).

A return line is units of one SKU handed back at a location: of a channel order's line (channel, order id,
and the line by its external id, else by SKU), or a walk-in return at the counter (no order). Its reason
code says where the units go (``RETURN_REASONS``): ``sellable`` units are restocked at the receiving
location (ledger ``restock``), ``damaged`` units at that location's damaged location (``<LOC>-DAMAGED``, kind
``damaged``, created on first use; it counts for no channel). An unknown reason code is refused.

Physical returns are the truth for restocking: the platform's own "restocked" claim restocks nothing
(``warehouse.ingest``), a refund without a physical return releases only the unshipped reservation, so one
return reported by both the platform and the store restocks once, where the store received it. A channel
return adds to the order line's ``returned_quantity`` and re-evaluates the order (a refunded unit that came
back had shipped: it no longer shortens what is left to ship). Refusals (``ReturnRefused``, a typed
``code``): an order line nothing shipped of, more returned than shipped over all returns, unknown
channel/order/line/location/SKU/reason. A bundle returns its components (as the line applied them).

An exchange line also reserves its replacement at the receiving location, as a hub-side order of channel
``exchanges`` (order ``<location>:<return id>``, one line per exchanged return line), so it is held,
shipped, released and re-reserved by ingest's own rules like any order line; ``ship_exchange`` deducts it
(the replacement left, at the counter or by parcel), ``cancel_exchange`` releases it. No platform knows
these orders: nothing is pushed to a channel for them. A replacement short of stock refuses the row.

Idempotent by (receiving location, return id, line no): the same line again changes nothing; the same line
with other content is refused. The ledger keys are ``return:<location>:<return id>:<line no>`` (a bundle's
ending ``@<component>``). Whether the channel refunded returned units: ``warehouse.return_refunds``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert

from canonical.store_files import ReturnRow
from warehouse.import_rows import (
    CatalogLookups,
    ChannelRef,
    RowApplier,
    RowRejected,
    change_on_hand,
    lock_level,
    lock_order,
)
from warehouse.ingest import reevaluate_orders
from warehouse.models import (
    channels,
    locations,
    order_lines,
    orders,
    return_lines,
    returns,
    skus,
)
from warehouse.stock import LedgerRow
from warehouse.stock_policy import bundle_recipes

SELLABLE, DAMAGED = "sellable", "damaged"
# The declared reason codes (store systems' own words too): what a returned unit's reason says of it.
RETURN_REASONS: dict[str, str] = {
    "unwanted": SELLABLE,
    "changed_mind": SELLABLE,
    "wrong_size": SELLABLE,
    "wrong_item": SELLABLE,
    "not_as_described": SELLABLE,
    "exchange": SELLABLE,
    SELLABLE: SELLABLE,
    "七天无理由": SELLABLE,
    "不想要了": SELLABLE,
    "尺码不合适": SELLABLE,
    "发错货": SELLABLE,
    "换货": SELLABLE,
    DAMAGED: DAMAGED,
    "defective": DAMAGED,
    "broken": DAMAGED,
    "expired": DAMAGED,
    "质量问题": DAMAGED,
    "破损": DAMAGED,
    "过期": DAMAGED,
}
DAMAGED_SUFFIX = "-DAMAGED"
EXCHANGE_CHANNEL, EXCHANGE_PLATFORM = "exchanges", "hub"


class ReturnRefused(RowRejected):
    """A return line that breaks a rule; ``code`` names the rule (never_shipped, over_returned, ...)."""

    def __init__(self, code: str, detail: str, channel_id: int | None = None) -> None:
        super().__init__(f"{code}: {detail}", channel_id)
        self.code = code


@dataclass(frozen=True, slots=True)
class _Part:
    sku_id: int
    code: str
    units: int  # per returned unit


def reason_disposition(reason: str) -> str:
    """``sellable`` or ``damaged`` for a declared reason code; ``ReturnRefused`` for any other."""
    found = RETURN_REASONS.get(reason.strip().lower())
    if found is None:
        raise ReturnRefused(
            "unknown_reason",
            f"return reason {reason!r} is not declared (sellable: "
            f"{', '.join(c for c, d in RETURN_REASONS.items() if d == SELLABLE)}; damaged: "
            f"{', '.join(c for c, d in RETURN_REASONS.items() if d == DAMAGED)})",
        )
    return found


# -- receiving -----------------------------------------------------------------------------------


def receive_return(
    conn: Connection, row: ReturnRow, *, source: str, units: Counter[str] | None = None
) -> bool:
    """Receive one return line (the POS feed's and the CLI's entry point), all of it or nothing (a savepoint):
    True when it changed stock, False when it was received before. Raises ``ReturnRefused``."""
    with conn.begin_nested():
        return apply_return(CatalogLookups(source), conn, row, Counter() if units is None else units)


def apply_return(lookups: CatalogLookups, conn: Connection, row: ReturnRow, units: Counter[str]) -> bool:
    """The ``returns`` import kind's applier (``warehouse.import_rows``); the caller holds a savepoint."""
    channel = _lookup(lambda: lookups.channel(conn, row.channel), "unknown_channel") if row.channel else None
    try:
        return _apply(lookups, conn, row, channel, units)
    except RowRejected as err:  # queued under the order's channel
        err.channel_id = channel.id if channel else None
        raise


def _apply(
    lookups: CatalogLookups, conn: Connection, row: ReturnRow, channel: ChannelRef | None, units: Counter[str]
) -> bool:
    location_id, _, kind = _lookup(lambda: lookups.location_row(conn, row.location), "unknown_location")
    if kind == "transit":
        raise ReturnRefused(
            "bad_location", f"{row.location} is a transit location: receive at a store or warehouse"
        )
    disposition = reason_disposition(row.reason)
    _lookup(lambda: lookups.check_row_units(conn, row.location, "quantity", row.quantity), "too_many_units")
    order_id = None
    if channel is not None:
        order_id = lock_order(conn, channel, row.order_id)
        if order_id is None:
            raise ReturnRefused(
                "unknown_order",
                f"order {row.order_id} of channel {channel.code} is not in the warehouse "
                "(not synced yet? import the row again after the next sync)",
            )
    return_id = _header(conn, lookups, location_id, row, channel, order_id)
    if _received_before(conn, return_id, row, lookups):
        return False

    line = _order_line(conn, order_id, row) if order_id is not None else None
    parts, bundle = _line_parts(conn, line) if line is not None else _sku_parts(conn, lookups, row.sku)
    destination = (
        _damaged_location(conn, row.location, location_id)
        if disposition == DAMAGED and kind != DAMAGED
        else location_id
    )
    for part in parts:  # in sku id order, as every writer locks levels
        lock_level(conn, part.sku_id, destination)
    for part in parts:
        change_on_hand(
            conn,
            LedgerRow(
                f"{row.key}@{part.code}" if bundle else row.key,
                part.sku_id,
                destination,
                "restock",
                row.quantity * part.units,
                0,
                order_id,
                line.id if line is not None else None,
            ),
        )
    if line is not None and channel is not None and order_id is not None:
        conn.execute(
            update(order_lines)
            .where(order_lines.c.id == line.id)
            .values(returned_quantity=order_lines.c.returned_quantity + row.quantity)
        )
        counts = reevaluate_orders(conn, channel.code, [order_id])
        units["reserved"] += counts.reserved_units
        units["released"] += counts.released_units
    exchange_line_id = _exchange(conn, lookups, location_id, row) if row.exchange_sku else None
    conn.execute(
        insert(return_lines).values(
            return_id=return_id,
            line_no=row.line_no,
            sku_id=line.sku_id if line is not None else lookups.sku(conn, row.sku),
            quantity=row.quantity,
            reason=row.reason,
            disposition=disposition,
            stock_location_id=destination,
            order_line_id=line.id if line is not None else None,
            exchange_order_line_id=exchange_line_id,
        )
    )
    units["returned"] += row.quantity
    units[f"returned_{disposition}"] += row.quantity
    if row.exchange_sku:
        units["exchange_reserved"] += row.exchange_quantity or 0
    return True


def _lookup(find: Any, code: str) -> Any:
    """A catalog lookup whose refusal ("unknown location 'X'") becomes a typed one."""
    try:
        return find()
    except ReturnRefused:
        raise
    except RowRejected as err:
        raise ReturnRefused(code, err.reason) from None


def _header(
    conn: Connection,
    lookups: CatalogLookups,
    location_id: int,
    row: ReturnRow,
    channel: ChannelRef | None,
    order_id: int | None,
) -> int:
    """The return's id, inserted by its first line; its other lines must name the same order (or none)."""
    values = {"channel_id": channel.id if channel else None, "order_id": order_id}
    inserted = conn.execute(
        insert(returns)
        .values(
            location_id=location_id,
            return_key=row.return_id,
            returned_at=row.returned_at,
            source=lookups.source,
            **values,
        )
        .on_conflict_do_nothing(index_elements=["location_id", "return_key"])
        .returning(returns.c.id)
    ).scalar()
    if inserted is not None:
        return inserted
    existing = conn.execute(
        select(returns.c.id, returns.c.channel_id, returns.c.order_id, orders.c.external_id)
        .outerjoin(orders, orders.c.id == returns.c.order_id)
        .where(returns.c.location_id == location_id, returns.c.return_key == row.return_id)
        .with_for_update(of=returns)
    ).one()
    if (existing.channel_id, existing.order_id) != (values["channel_id"], order_id):
        was = f"order {existing.external_id}" if existing.order_id else "a walk-in return (no order)"
        raise ReturnRefused(
            "return_mismatch",
            f"return {row.return_id} at {row.location} was received as {was}: one return, one order",
        )
    return existing.id


def _received_before(conn: Connection, return_id: int, row: ReturnRow, lookups: CatalogLookups) -> bool:
    """True when this line was received before with the same content; refused when with other content."""
    held = conn.execute(
        select(
            return_lines.c.quantity,
            return_lines.c.reason,
            skus.c.code.label("sku"),
            order_lines.c.external_line_id,
            order_lines.c.merchant_sku,
        )
        .join(skus, skus.c.id == return_lines.c.sku_id)
        .outerjoin(order_lines, order_lines.c.id == return_lines.c.order_line_id)
        .where(return_lines.c.return_id == return_id, return_lines.c.line_no == row.line_no)
    ).first()
    if held is None:
        return False
    exchange = conn.execute(
        select(skus.c.code, order_lines.c.quantity)
        .select_from(return_lines)
        .join(order_lines, order_lines.c.id == return_lines.c.exchange_order_line_id)
        .join(skus, skus.c.id == order_lines.c.sku_id)
        .where(return_lines.c.return_id == return_id, return_lines.c.line_no == row.line_no)
    ).first()
    same = (
        held.quantity == row.quantity
        and held.reason == row.reason
        and row.sku in (held.sku, held.merchant_sku)
        and row.order_line_id in (None, held.external_line_id)
        and (tuple(exchange) if exchange else (None, None)) == (row.exchange_sku, row.exchange_quantity)
    )
    if not same:
        raise ReturnRefused(
            "already_received",
            f"return {row.return_id} line {row.line_no} at {row.location} was received with "
            f"{held.quantity} x {held.sku} ({held.reason}"
            + (f", exchange {exchange[1]} x {exchange[0]}" if exchange else "")
            + "); this row says otherwise: a new line number for a new line",
        )
    return True


_LINE_COLUMNS = (
    order_lines.c.id,
    order_lines.c.external_line_id,
    order_lines.c.merchant_sku,
    order_lines.c.sku_id,
    skus.c.code.label("sku_code"),
    order_lines.c.shipped_quantity,
    order_lines.c.warehouse_shipped_quantity,
    order_lines.c.returned_quantity,
    order_lines.c.applied_components,
)


def _order_line(conn: Connection, order_id: int, row: ReturnRow) -> Any:
    """The order line this row returns: named by its id, else the first line of the SKU with room left."""
    lines = conn.execute(
        select(*_LINE_COLUMNS)
        .outerjoin(skus, skus.c.id == order_lines.c.sku_id)
        .where(order_lines.c.order_id == order_id)
        .order_by(order_lines.c.id)
    ).all()

    def has_sku(line: Any) -> bool:
        return row.sku in (line.sku_code, line.merchant_sku)

    def shipped(line: Any) -> int:
        return max(line.shipped_quantity, line.warehouse_shipped_quantity)

    if row.order_line_id is not None:
        named = [line for line in lines if line.external_line_id == row.order_line_id]
        if not named:
            raise ReturnRefused("unknown_line", f"order {row.order_id} has no line {row.order_line_id}")
        if not has_sku(named[0]):
            raise ReturnRefused(
                "sku_mismatch",
                f"line {row.order_line_id} of order {row.order_id} is sku "
                f"{named[0].sku_code or named[0].merchant_sku!r}, not {row.sku!r}",
            )
        candidates = named
    else:
        candidates = [line for line in lines if has_sku(line)]
        if not candidates:
            raise ReturnRefused("unknown_line", f"order {row.order_id} has no line with sku {row.sku!r}")
    fits = [line for line in candidates if shipped(line) - line.returned_quantity >= row.quantity]
    if not fits:
        ref = f"line {row.order_line_id}" if row.order_line_id else f"sku {row.sku}"
        total_shipped = sum(shipped(line) for line in candidates)
        if total_shipped == 0:
            raise ReturnRefused(
                "never_shipped",
                f"nothing of {ref} of order {row.order_id} has shipped: an unshipped unit cannot come back "
                "(a refund of it releases its reservation)",
            )
        returned = sum(line.returned_quantity for line in candidates)
        raise ReturnRefused(
            "over_returned",
            f"returns {row.quantity} of {ref} of order {row.order_id}, but {total_shipped} shipped and "
            f"{returned} came back already"
            + ("" if len(candidates) == 1 else " (over its lines: name one by order_line_id)"),
        )
    line = fits[0]
    if line.sku_id is None:
        raise ReturnRefused(
            "unknown_sku",
            f"line {line.external_line_id} of order {row.order_id} has no internal SKU yet: "
            "map its listing first",
        )
    return line


def _line_parts(conn: Connection, line: Any) -> tuple[list[_Part], bool]:
    """What a returned unit of this line is made of, and whether it is a bundle: the components the line
    applied (a recipe changed later does not matter), else the bundle's recipe, else the line's SKU."""
    if line.applied_components:
        held = {int(sku_id): units for sku_id, units in line.applied_components.items()}
        codes = dict(conn.execute(select(skus.c.id, skus.c.code).where(skus.c.id.in_(held))).tuples().all())
        return [_Part(sku_id, codes[sku_id], held[sku_id]) for sku_id in sorted(held)], True
    recipe = bundle_recipes(conn, [line.sku_id]).get(line.sku_id)
    if recipe:
        return [_Part(sku_id, code, units) for sku_id, code, units in recipe], True
    return [_Part(line.sku_id, line.sku_code, 1)], False


def _sku_parts(conn: Connection, lookups: CatalogLookups, code: str) -> tuple[list[_Part], bool]:
    recipe = _lookup(lambda: lookups.recipe(conn, code), "unknown_sku")
    if recipe:
        return [_Part(sku_id, part_code, units) for sku_id, part_code, units in recipe], True
    return [_Part(lookups.sku(conn, code), code, 1)], False


def _damaged_location(conn: Connection, code: str, location_id: int) -> int:
    """The damaged location of ``code`` (``<code>-DAMAGED``), created on first use beside it."""
    damaged_code = f"{code}{DAMAGED_SUFFIX}"
    source = conn.execute(select(locations).where(locations.c.id == location_id)).one()
    conn.execute(
        insert(locations)
        .values(
            code=damaged_code,
            name=f"damaged stock of {source.name}",
            kind=DAMAGED,
            province=source.province,
            city=source.city,
        )
        .on_conflict_do_nothing(index_elements=["code"])
    )
    found = conn.execute(
        select(locations.c.id, locations.c.kind).where(locations.c.code == damaged_code)
    ).one()
    if found.kind != DAMAGED:
        raise ReturnRefused(
            "bad_location",
            f"{damaged_code} exists as a {found.kind} location: damaged units never go to a sellable one",
        )
    return found.id


# -- exchanges -----------------------------------------------------------------------------------


def _exchange(conn: Connection, lookups: CatalogLookups, location_id: int, row: ReturnRow) -> int:
    """Reserve the replacement: a line of the hub-side exchange order of this return; its line id."""
    sku_id = _lookup(lambda: lookups.sku(conn, row.exchange_sku or ""), "unknown_sku")
    quantity = row.exchange_quantity or row.quantity
    _lookup(
        lambda: lookups.check_row_units(conn, row.location, "exchange_quantity", quantity), "too_many_units"
    )
    conn.execute(
        insert(channels)
        .values(
            code=EXCHANGE_CHANNEL,
            platform=EXCHANGE_PLATFORM,
            name="exchanges (hub-side orders of replacements)",
            fulfilment_location_id=location_id,  # unused: every exchange line holds its own location
        )
        .on_conflict_do_nothing(index_elements=["code"])
    )
    channel_id = conn.execute(select(channels.c.id).where(channels.c.code == EXCHANGE_CHANNEL)).scalar_one()
    external_id = f"{row.location}:{row.return_id}"
    conn.execute(
        insert(orders)
        .values(
            channel_id=channel_id,
            external_id=external_id,
            number=f"exchange {row.return_id}",
            platform=EXCHANGE_PLATFORM,
            created_at=row.returned_at,
            updated_at=row.returned_at,
            currency="XXX",  # ISO 4217 "no currency": the hub does not price exchanges
            payment_status="paid",
            fulfillment_status="unfulfilled",
            payload_digest="exchange",
        )
        .on_conflict_do_nothing(index_elements=["channel_id", "external_id"])
    )
    order_id = conn.execute(
        select(orders.c.id)
        .where(orders.c.channel_id == channel_id, orders.c.external_id == external_id)
        .with_for_update()
    ).scalar_one()
    line_id = conn.execute(
        insert(order_lines)
        .values(
            order_id=order_id,
            external_line_id=row.line_no,
            sku_id=sku_id,
            merchant_sku=row.exchange_sku,
            title=f"exchange for {row.sku} (return {row.return_id} line {row.line_no})",
            quantity=quantity,
            unit_price=0,
            line_total=0,
            location_id=location_id,
        )
        .returning(order_lines.c.id)
    ).scalar_one()
    reevaluate_orders(conn, EXCHANGE_CHANNEL, [order_id])
    reserved = conn.execute(
        select(order_lines.c.reserved_quantity).where(order_lines.c.id == line_id)
    ).scalar_one()
    if reserved < quantity:
        raise ReturnRefused(
            "exchange_short",
            f"the replacement {quantity} x {row.exchange_sku} is not free at {row.location}: receive the "
            "return without exchange_sku (a new line number) or once stock is there",
        )
    return line_id


def _exchange_line(conn: Connection, location: str, return_key: str, line_no: str) -> Any:
    found = conn.execute(
        select(
            order_lines.c.id,
            order_lines.c.order_id,
            order_lines.c.quantity,
            order_lines.c.warehouse_shipped_quantity,
            order_lines.c.removed,
        )
        .select_from(return_lines)
        .join(returns, returns.c.id == return_lines.c.return_id)
        .join(locations, locations.c.id == returns.c.location_id)
        .join(order_lines, order_lines.c.id == return_lines.c.exchange_order_line_id)
        .where(
            locations.c.code == location,
            returns.c.return_key == return_key,
            return_lines.c.line_no == line_no,
        )
    ).first()
    if found is None:
        raise ReturnRefused(
            "unknown_exchange", f"return {return_key} line {line_no} at {location} has no exchange"
        )
    conn.execute(select(orders.c.id).where(orders.c.id == found.order_id).with_for_update())
    return conn.execute(
        select(
            order_lines.c.id,
            order_lines.c.order_id,
            order_lines.c.quantity,
            order_lines.c.warehouse_shipped_quantity,
            order_lines.c.removed,
        ).where(order_lines.c.id == found.id)
    ).one()  # read again under the order's lock


def ship_exchange(conn: Connection, location: str, return_key: str, line_no: str) -> bool:
    """The replacement left (handed over or shipped): deducted, its reservation consumed. False if it had."""
    line = _exchange_line(conn, location, return_key, line_no)
    if line.removed:
        raise ReturnRefused(
            "exchange_cancelled", f"the exchange of return {return_key} line {line_no} was cancelled"
        )
    if line.warehouse_shipped_quantity >= line.quantity:
        return False
    conn.execute(
        update(order_lines)
        .where(order_lines.c.id == line.id)
        .values(warehouse_shipped_quantity=line.quantity)
    )
    reevaluate_orders(conn, EXCHANGE_CHANNEL, [line.order_id])
    return True


def cancel_exchange(conn: Connection, location: str, return_key: str, line_no: str) -> bool:
    """The replacement will not be given: its reservation is released. False if it was cancelled before."""
    line = _exchange_line(conn, location, return_key, line_no)
    if line.warehouse_shipped_quantity > 0:
        raise ReturnRefused(
            "exchange_shipped", f"the exchange of return {return_key} line {line_no} has shipped"
        )
    if line.removed:
        return False
    conn.execute(update(order_lines).where(order_lines.c.id == line.id).values(removed=True))
    reevaluate_orders(conn, EXCHANGE_CHANNEL, [line.order_id])
    return True


APPLIERS: dict[type, RowApplier] = {ReturnRow: apply_return}
