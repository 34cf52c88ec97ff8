"""Shipment rows (the hub's own warehouse and stores shipping order lines): recorded, then stock follows.

A row names units of one order line (by external line id, or by SKU spread over the order's lines with that
SKU in line order) that left in shipment ``shipment_id`` of ``channel``, from ``location`` (default: where the
line is reserved; a row naming another location is refused: the line ships from where routing reserved it).
It is recorded in ``shipments``/``shipment_lines`` (identity ``ship:<channel>:<shipment_id>:<line ref>``),
raises the line's ``warehouse_shipped_quantity`` and re-evaluates the order through ingest's own stock
evaluation (ledger keys ``deduct:<channel>:<order>:<line>``), which counts max(platform shipped, warehouse
shipped): the same shipment reported by both deducts once. A later row with a new tracking number for the
shipment is a correction, pushed again as the platform's update. ``warehouse.store_imports`` runs the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from canonical.store_files import ShipmentRow
from warehouse.import_rows import CatalogLookups, ChannelRef, RowApplier, RowRejected, lock_order
from warehouse.ingest import reevaluate_orders
from warehouse.models import locations, order_lines, orders, shipment_lines, shipments, skus
from warehouse.route_lines import line_location

log = logging.getLogger("warehouse.store_imports")  # the imports' log, as before this module was split out


def apply_shipment(lookups: CatalogLookups, conn: Connection, row: ShipmentRow, units: Counter[str]) -> bool:
    channel = lookups.channel(conn, row.channel)
    try:
        return _ship(lookups, conn, channel, row, units)
    except RowRejected as err:
        raise RowRejected(err.reason, channel.id) from None


def _ship(
    lookups: CatalogLookups, conn: Connection, channel: ChannelRef, row: ShipmentRow, units: Counter[str]
) -> bool:
    order_id = lock_order(conn, channel, row.order_id)
    if order_id is None:
        raise RowRejected(
            f"order {row.order_id} of channel {channel.code} is not in the warehouse "
            f"(not synced yet? import the file again after the next sync)"
        )
    # A row without a location ships from where its line holds its stock (routing may have chosen it).
    location_id = (
        lookups.location(conn, row.location)
        if row.location
        else line_location(conn, order_id, channel.location_id, line_id=row.line_id, sku=row.sku)
    )
    shipment_id, corrected = _shipment_header(lookups, conn, channel, order_id, location_id, row)
    if corrected:
        units["tracking_corrected"] += 1

    done = conn.execute(
        select(func.count(), func.coalesce(func.sum(shipment_lines.c.quantity), 0)).where(
            shipment_lines.c.shipment_id == shipment_id, shipment_lines.c.line_ref == row.line_ref
        )
    ).one()
    if done[0]:
        if done[1] == row.quantity:
            return corrected
        raise RowRejected(
            f"shipment {row.shipment_id} already holds {done[1]} units of {_ref_text(row)}; "
            f"this row says {row.quantity}"
        )

    allocation = _allocate(lookups, conn, channel, order_id, shipment_id, location_id, row)
    conn.execute(
        insert(shipment_lines),
        [
            {
                "shipment_id": shipment_id,
                "order_line_id": line_id,
                "quantity": take,
                "line_ref": row.line_ref,
            }
            for line_id, take in allocation
        ],
    )
    conn.execute(
        text(
            "UPDATE order_lines l SET warehouse_shipped_quantity = l.warehouse_shipped_quantity + v.take "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:takes AS int[])) AS v(id, take) WHERE l.id = v.id"
        ),
        {"ids": [a[0] for a in allocation], "takes": [a[1] for a in allocation]},
    )
    counts = reevaluate_orders(conn, channel.code, [order_id])
    units["shipped"] += row.quantity
    units["deducted"] += counts.deducted_units
    return True


def _shipment_header(
    lookups: CatalogLookups,
    conn: Connection,
    channel: ChannelRef,
    order_id: int,
    location_id: int,
    row: ShipmentRow,
) -> tuple[int, bool]:
    """The shipment's id, inserted by its first row, and whether this row corrected its tracking.

    Later rows must agree with the shipment, except on carrier and tracking number: a new number is a
    correction (the old one is kept as ``previous_*`` and the shipment goes back in the outbox, so the
    channel's own update call replaces it); a row with the number it replaced is a row of the file before
    the correction, already applied."""
    header = {
        "order_id": order_id,
        "carrier": row.carrier,
        "tracking_number": row.tracking_number,
        "shipped_at": row.shipped_at,
        "location_id": location_id,
    }
    inserted = conn.execute(
        insert(shipments)
        .values(channel_id=channel.id, shipment_key=row.shipment_id, source=lookups.source, **header)
        .on_conflict_do_nothing(index_elements=["channel_id", "shipment_key"])
        .returning(shipments.c.id)
    ).scalar()
    if inserted is not None:
        return inserted, False
    existing = conn.execute(
        select(shipments, orders.c.external_id.label("order_external_id"), locations.c.code.label("loc"))
        .join(orders, orders.c.id == shipments.c.order_id)
        .join(locations, locations.c.id == shipments.c.location_id)
        .where(shipments.c.channel_id == channel.id, shipments.c.shipment_key == row.shipment_id)
        .with_for_update(of=shipments)
    ).one()
    if existing.order_id != order_id:
        raise RowRejected(
            f"shipment {row.shipment_id} belongs to order {existing.order_external_id}, not {row.order_id}"
        )
    differs = []
    if existing.shipped_at != row.shipped_at:
        differs.append(f"shipped_at {existing.shipped_at.isoformat()}")
    if existing.location_id != location_id:
        differs.append(f"location {existing.loc}")
    tracking = (row.carrier, row.tracking_number)
    if tracking == (existing.carrier, existing.tracking_number):
        corrects = False
    elif tracking == (existing.previous_carrier, existing.previous_tracking_number):
        return existing.id, False  # the row as it was before the correction: superseded, no change
    else:
        # A correction repeats a row the shipment holds (same line, same units) with the new number.
        held = conn.execute(
            select(func.coalesce(func.sum(shipment_lines.c.quantity), 0)).where(
                shipment_lines.c.shipment_id == existing.id, shipment_lines.c.line_ref == row.line_ref
            )
        ).scalar()
        corrects = not differs and bool(row.tracking_number) and held == row.quantity
        if not corrects:
            differs[:0] = [
                f"{name} {getattr(existing, name)!r}"
                for name in ("carrier", "tracking_number")
                if getattr(existing, name) != header[name]
            ]
    if differs:
        raise RowRejected(
            f"shipment {row.shipment_id} was imported with {', '.join(differs)} "
            f"(from {existing.source}); every row of a shipment must agree, except a correction: a row "
            "it holds (same line and units, shipped_at and location) with a new tracking number"
        )
    if corrects:
        conn.execute(
            update(shipments)
            .where(shipments.c.id == existing.id)
            .values(
                previous_carrier=existing.carrier,
                previous_tracking_number=existing.tracking_number or None,
                carrier=row.carrier,
                tracking_number=row.tracking_number,
                corrected_at=func.now(),
                push_status="pending",
                push_error=None,
            )
        )
        log.info(
            "shipment %s of %s: tracking %s %s -> %s %s (%s)",
            row.shipment_id,
            channel.code,
            existing.carrier,
            existing.tracking_number,
            row.carrier,
            row.tracking_number,
            lookups.source,
        )
    return existing.id, corrects


def _allocate(
    lookups: CatalogLookups,
    conn: Connection,
    channel: ChannelRef,
    order_id: int,
    shipment_id: int,
    location_id: int,
    row: ShipmentRow,
) -> list[tuple[int, int]]:
    """(order line id, units) this row ships: one named line, or the SKU's lines in line order."""
    lines = conn.execute(
        select(
            order_lines.c.id,
            order_lines.c.external_line_id,
            order_lines.c.merchant_sku,
            order_lines.c.quantity,
            order_lines.c.shipped_quantity,
            order_lines.c.warehouse_shipped_quantity,
            order_lines.c.removed,
            func.coalesce(order_lines.c.location_id, channel.location_id).label("stock_location_id"),
            skus.c.code.label("sku_code"),
            locations.c.code.label("stock_location"),
        )
        .outerjoin(skus, skus.c.id == order_lines.c.sku_id)
        .join(locations, locations.c.id == func.coalesce(order_lines.c.location_id, channel.location_id))
        .where(order_lines.c.order_id == order_id)
        .order_by(order_lines.c.id)
    ).all()
    in_shipment = set(
        conn.execute(
            select(shipment_lines.c.order_line_id).where(shipment_lines.c.shipment_id == shipment_id)
        ).scalars()
    )

    def has_sku(line: Any) -> bool:
        return row.sku in (line.sku_code, line.merchant_sku)

    if row.line_id is not None:
        named = [line for line in lines if line.external_line_id == row.line_id]
        if not named:
            raise RowRejected(f"order {row.order_id} has no line {row.line_id}")
        line = named[0]
        if row.sku is not None and not has_sku(line):
            raise RowRejected(
                f"line {row.line_id} of order {row.order_id} is sku "
                f"{line.sku_code or line.merchant_sku!r}, not {row.sku!r}"
            )
        if line.removed:
            raise RowRejected(f"line {row.line_id} was removed from order {row.order_id}")
        if line.id in in_shipment:
            raise RowRejected(f"line {row.line_id} is already in shipment {row.shipment_id} (another row)")
        candidates = [line]
    else:
        candidates = [line for line in lines if has_sku(line) and not line.removed]
        if not candidates:
            raise RowRejected(f"order {row.order_id} has no line with sku {row.sku!r}")
        candidates = [line for line in candidates if line.id not in in_shipment]

    def left_to_ship(line: Any) -> int:
        return max(0, line.quantity - max(line.shipped_quantity, line.warehouse_shipped_quantity))

    left = sum(left_to_ship(line) for line in candidates)
    if row.quantity > left:
        ordered = sum(line.quantity for line in candidates)
        raise RowRejected(
            f"ships {row.quantity} units of {_ref_text(row)} of order {row.order_id}, but only {left} "
            f"are left to ship (ordered {ordered}, shipped {ordered - left})"
        )
    allocation: list[tuple[int, int]] = []
    wanted = row.quantity
    for line in candidates:
        take = min(left_to_ship(line), wanted)
        if take <= 0:
            continue
        if line.stock_location_id != location_id:
            shipped_from = conn.execute(
                select(locations.c.code).where(locations.c.id == location_id)
            ).scalar_one()
            raise RowRejected(
                f"line {line.external_line_id} of order {row.order_id} is reserved at "
                f"{line.stock_location} but this row ships it from {shipped_from} (it holds its stock at "
                f"another location than the shipment's): ship it from {line.stock_location}, or move "
                "it first (channelhub route move)"
            )
        allocation.append((line.id, take))
        wanted -= take
    return allocation


def _ref_text(row: ShipmentRow) -> str:
    return f"line {row.line_id}" if row.line_id else f"sku {row.sku}"


APPLIERS: dict[type, RowApplier] = {ShipmentRow: apply_shipment}
