"""Shipments the warehouse reported that the channel has not been told about yet (the tracking outbox).

A shipment stays ``pending`` until its channel accepts it (``pushed``, also for "already shipped with this
tracking") or refuses it for good (``failed``, with a ``push_failed`` exception carrying the platform's
words). Transient trouble only counts an attempt and keeps it pending for the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from warehouse.catalog import channel_id_of
from warehouse.exceptions import record_exception, resolve_cleared
from warehouse.models import channels, order_lines, orders, shipment_lines, shipments, skus

PUSH_FAILED = "push_failed"


@dataclass(frozen=True, slots=True)
class PendingLine:
    external_line_id: str
    quantity: int
    channel_product_id: str | None
    channel_variant_id: str | None


@dataclass(frozen=True, slots=True)
class PendingShipment:
    shipment_id: int
    shipment_key: str
    external_order_id: str
    carrier: str
    tracking_number: str
    shipped_at: datetime
    lines: tuple[PendingLine, ...]
    completes_order: bool
    previous_tracking_number: str | None = None  # a correction: the number the channel may still show


def pending_shipments(conn: Connection, channel: str, limit: int = 500) -> list[PendingShipment]:
    """The channel's shipments still to push, oldest first."""
    return outbox_shipments(conn, channel, shipments.c.push_status == "pending", limit)


def pushed_shipments(
    conn: Connection, channel: str, since: datetime, limit: int = 5000
) -> list[PendingShipment]:
    """The channel's shipments recorded as pushed since ``since`` (for reconciliation to confirm)."""
    return outbox_shipments(
        conn, channel, (shipments.c.push_status == "pushed") & (shipments.c.pushed_at >= since), limit
    )


def mark_for_repush(conn: Connection, shipment_ids: Sequence[int], why: str) -> int:
    """Put pushed (or refused) shipments back in the outbox, e.g. when the channel turned out not to have
    them: the next push sends them again (every connector's push is idempotent)."""
    if not shipment_ids:
        return 0
    done = conn.execute(
        update(shipments)
        .where(shipments.c.id.in_(list(shipment_ids)), shipments.c.push_status != "pending")
        .values(push_status="pending", push_error=why[:2000])
    )
    return done.rowcount


def outbox_shipments(conn: Connection, channel: str, which: Any, limit: int) -> list[PendingShipment]:
    """The channel's shipments matching ``which`` (a condition on ``shipments``) as pushes, oldest first."""
    channel_id = select(channels.c.id).where(channels.c.code == channel).scalar_subquery()
    heads = conn.execute(
        select(
            shipments.c.id,
            shipments.c.shipment_key,
            shipments.c.carrier,
            shipments.c.tracking_number,
            shipments.c.shipped_at,
            shipments.c.order_id,
            shipments.c.previous_tracking_number,
            orders.c.external_id,
        )
        .join(orders, orders.c.id == shipments.c.order_id)
        .where(shipments.c.channel_id == channel_id, which)
        .order_by(shipments.c.shipped_at, shipments.c.id)
        .limit(limit)
    ).all()
    if not heads:
        return []
    lines: dict[int, list[PendingLine]] = {}
    for row in conn.execute(
        select(
            shipment_lines.c.shipment_id,
            order_lines.c.external_line_id,
            shipment_lines.c.quantity,
            order_lines.c.channel_product_id,
            order_lines.c.channel_variant_id,
        )
        .join(order_lines, order_lines.c.id == shipment_lines.c.order_line_id)
        .where(shipment_lines.c.shipment_id.in_([h.id for h in heads]))
        .order_by(shipment_lines.c.shipment_id, order_lines.c.external_line_id)
    ):
        lines.setdefault(row.shipment_id, []).append(
            PendingLine(row.external_line_id, row.quantity, row.channel_product_id, row.channel_variant_id)
        )
    # An order is complete once every line's units are shipped (by either side) or refunded.
    open_units = dict(
        conn.execute(
            select(
                order_lines.c.order_id,
                func.sum(
                    func.greatest(
                        0,
                        order_lines.c.quantity
                        - func.greatest(
                            order_lines.c.shipped_quantity, order_lines.c.warehouse_shipped_quantity
                        )
                        - order_lines.c.refunded_quantity,
                    )
                ),
            )
            .where(and_(order_lines.c.order_id.in_({h.order_id for h in heads})))
            .group_by(order_lines.c.order_id)
        )
        .tuples()
        .all()
    )
    return [
        PendingShipment(
            shipment_id=h.id,
            shipment_key=h.shipment_key,
            external_order_id=h.external_id,
            carrier=h.carrier or "",
            tracking_number=h.tracking_number or "",
            shipped_at=h.shipped_at,
            lines=tuple(lines.get(h.id, ())),
            completes_order=not open_units.get(h.order_id),
            previous_tracking_number=h.previous_tracking_number,
        )
        for h in heads
    ]


def record_push(
    conn: Connection, channel: str, shipment: PendingShipment, status: str, detail: str = ""
) -> None:
    """Record the outcome of pushing ``shipment``: pushed/already_done, rejected, or a transient failure."""
    where = shipments.c.id == shipment.shipment_id
    if status in ("pushed", "already_done"):
        order_id = conn.execute(
            update(shipments)
            .where(where)
            .values(
                push_status="pushed",
                pushed_at=func.now(),
                push_attempts=shipments.c.push_attempts + 1,
                push_error=None,
            )
            .returning(shipments.c.order_id)
        ).scalar_one()
        still_unpushed = conn.execute(
            select(shipments.c.id)
            .where(shipments.c.order_id == order_id, shipments.c.push_status != "pushed")
            .limit(1)
        ).first()
        if still_unpushed is None:  # a refusal of this order's tracking is fixed (e.g. by a correction)
            resolve_cleared(
                conn,
                channel_id_of(conn, channel),
                [shipment.external_order_id],
                [PUSH_FAILED],
                note="cleared: every shipment of the order is now pushed",
            )
    elif status == "rejected":
        conn.execute(
            update(shipments)
            .where(where)
            .values(
                push_status="failed", push_attempts=shipments.c.push_attempts + 1, push_error=detail[:2000]
            )
        )
        record_exception(
            conn,
            channel=channel,
            reason=PUSH_FAILED,
            external_id=shipment.external_order_id,
            detail=f"shipment {shipment.shipment_key} ({shipment.carrier} {shipment.tracking_number}) "
            f"rejected: {detail}"[:2000],
        )
    else:  # transient: try again next run
        conn.execute(
            update(shipments)
            .where(where)
            .values(push_attempts=shipments.c.push_attempts + 1, push_error=detail[:2000])
        )


def orders_ready_to_ship(
    conn: Connection, channel: str, limit: int = 10
) -> list[tuple[str, list[tuple[str, str, int]]]]:
    """Open orders whose every line is resolved, unshipped and fully reserved, oldest first:
    [(external order id, [(external line id, sku, quantity)])] — what a warehouse would pick next."""
    ready = (
        select(order_lines.c.order_id)
        .group_by(order_lines.c.order_id)
        .having(
            func.bool_and(
                and_(
                    order_lines.c.sku_id.is_not(None),
                    order_lines.c.shipped_quantity == 0,
                    order_lines.c.warehouse_shipped_quantity == 0,
                    order_lines.c.refunded_quantity == 0,
                    order_lines.c.quantity > 0,
                    order_lines.c.reserved_quantity == order_lines.c.quantity,
                )
            )
        )
    )
    picked = (
        select(orders.c.id, orders.c.external_id)
        .join(channels, channels.c.id == orders.c.channel_id)
        .where(channels.c.code == channel, orders.c.id.in_(ready), orders.c.cancelled.is_(False))
        .order_by(orders.c.created_at, orders.c.external_id)
        .limit(limit)
    ).subquery()
    result: dict[str, list[tuple[str, str, int]]] = {}
    for row in conn.execute(
        select(picked.c.external_id, order_lines.c.external_line_id, skus.c.code, order_lines.c.quantity)
        .join(order_lines, order_lines.c.order_id == picked.c.id)
        .join(skus, skus.c.id == order_lines.c.sku_id)
        .order_by(picked.c.external_id, order_lines.c.external_line_id)
    ):
        result.setdefault(row.external_id, []).append((row.external_line_id, row.code, row.quantity))
    return list(result.items())
