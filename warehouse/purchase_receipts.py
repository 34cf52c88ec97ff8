"""Purchase receipts (采购入库) against expected deliveries (采购单).

The rules (docs/transfers-and-receipts.md):

- **Expected delivery** (an ``expected_deliveries`` row, or ``channelhub receipt expect``): a purchase order
  ``po_id`` of ``supplier`` to be delivered at ``location``, one line per SKU with its expected units.
- **Receipt** (a ``receipts`` row, or ``channelhub receipt receive``): units of a SKU received against a
  purchase order raise on-hand at its location (ledger ``receive``, key
  ``receipt:<po_id>:<receipt_id>:<sku>``), up to what the line expects in total. Units beyond it are not
  put on hand: nobody ordered them, and sellable stock nobody ordered must not appear without a person's
  yes. They are held and queued as ``receipt_discrepancy``; ``channelhub receipt accept`` puts them on hand
  (key ``receipt:<po_id>:<sku>:excess:<accepted so far>``), ``channelhub receipt reject`` records them as
  sent back to the supplier.
- **Close** (``channelhub receipt close``): lines received short are queued as ``receipt_discrepancy``
  (nothing to undo: only received units were ever put on hand); the purchase order is ``closed_short`` and
  refuses later receipts. One whose every line arrived in full is ``received`` (also without a close).

Refused with a typed reason: a receipt against no expected delivery (an unknown ``po_id``), a SKU not on the
delivery, a receipt of a closed delivery, an unknown location or SKU, a bundle, a line or receipt imported
again with other values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert

from canonical.store_files import ExpectedDeliveryRow, PurchaseReceiptRow
from warehouse.import_rows import CatalogLookups, RowApplier, RowRejected
from warehouse.models import locations, purchase_order_lines, purchase_orders, purchase_receipts, skus
from warehouse.stock import LedgerRow
from warehouse.stock_moves import apply_entries, queue_discrepancy, resolve_discrepancy

RECEIPT_DISCREPANCY = "receipt_discrepancy"


def subject_of(po_id: str) -> str:
    """The exception subject (``external_id``) of a purchase order's discrepancies."""
    return f"po:{po_id}"


def expect_line(
    lookups: CatalogLookups, conn: Connection, row: ExpectedDeliveryRow, units: Counter[str]
) -> bool:
    """One line of an expected delivery. False: this line was imported before."""
    location_id = lookups.location(conn, row.location)
    if (kind := lookups.location_kind(conn, row.location)) not in ("store", "warehouse"):
        raise RowRejected(f"{row.location} is a {kind} location: a supplier delivers to a store or warehouse")
    sku_id = lookups.sku(conn, row.sku)
    if recipe := lookups.recipe(conn, row.sku):
        components = ", ".join(f"{per} x {code}" for _, code, per in recipe)
        raise RowRejected(f"{row.sku} is a bundle of {components}: it has no stock of its own, order those")
    lookups.check_row_units(conn, row.location, "quantity", row.quantity)
    conn.execute(
        insert(purchase_orders)
        .values(
            po_key=row.po_id,
            supplier=row.supplier,
            location_id=location_id,
            expected_at=row.expected_at,
            source=lookups.source,
        )
        .on_conflict_do_nothing(index_elements=["po_key"])
    )
    header = _locked(conn, row.po_id)
    if (header.supplier, header.location_id) != (row.supplier, location_id):
        raise RowRejected(
            f"purchase order {row.po_id} is from {header.supplier} to {header.location} (from "
            f"{header.source}); this row says {row.supplier} to {row.location}"
        )
    before = conn.execute(
        select(purchase_order_lines.c.expected_quantity).where(
            purchase_order_lines.c.purchase_order_id == header.id, purchase_order_lines.c.sku_id == sku_id
        )
    ).first()
    if before is not None:
        if before.expected_quantity == row.quantity:
            return False
        raise RowRejected(
            f"purchase order {row.po_id} already expects {before.expected_quantity} of {row.sku}; "
            f"this row says {row.quantity}"
        )
    if header.status != "open":
        raise RowRejected(f"purchase order {row.po_id} is {header.status}: a line cannot be added")
    conn.execute(
        insert(purchase_order_lines).values(
            purchase_order_id=header.id, sku_id=sku_id, expected_quantity=row.quantity
        )
    )
    units["expected"] += row.quantity
    return True


def receive(lookups: CatalogLookups, conn: Connection, row: PurchaseReceiptRow, units: Counter[str]) -> bool:
    """Units received against a purchase order's line. False: this receipt line was applied before."""
    header = _locked(conn, row.po_id)
    if header is None:
        raise RowRejected(
            f"no expected delivery {row.po_id}: a receipt needs its purchase order first "
            "(an expected_deliveries file, or `channelhub receipt expect`)"
        )
    line = conn.execute(
        select(purchase_order_lines, skus.c.code.label("sku"))
        .join(skus, skus.c.id == purchase_order_lines.c.sku_id)
        .where(purchase_order_lines.c.purchase_order_id == header.id, skus.c.code == row.sku)
        .with_for_update(of=purchase_order_lines)
    ).first()
    if line is None:
        lookups.sku(conn, row.sku)  # an unknown SKU says so
        raise RowRejected(f"{row.sku} is not on purchase order {row.po_id} (from {header.supplier})")
    before = conn.execute(
        select(purchase_receipts.c.quantity).where(
            purchase_receipts.c.line_id == line.id, purchase_receipts.c.receipt_key == row.receipt_id
        )
    ).first()
    if before is not None:
        if before.quantity == row.received_quantity:
            return False
        raise RowRejected(
            f"receipt {row.receipt_id} of {row.sku} against {row.po_id} was imported with {before.quantity} "
            f"units; this row says {row.received_quantity}"
        )
    if header.status == "closed_short":
        raise RowRejected(
            f"purchase order {row.po_id} was closed short on {header.closed_at:%Y-%m-%d %H:%M} UTC by "
            f"{header.closed_by}: expect the late units as a new purchase order"
        )
    lookups.check_row_units(conn, header.location, "received_quantity", row.received_quantity)
    on_hand_now = min(row.received_quantity, max(0, line.expected_quantity - line.received_quantity))
    held = row.received_quantity - on_hand_now
    if on_hand_now:
        apply_entries(conn, [LedgerRow(row.key, line.sku_id, header.location_id, "receive", on_hand_now, 0)])
    conn.execute(
        insert(purchase_receipts).values(
            line_id=line.id,
            receipt_key=row.receipt_id,
            quantity=row.received_quantity,
            received_at=row.received_at,
            source=lookups.source,
        )
    )
    received = line.received_quantity + row.received_quantity
    conn.execute(
        update(purchase_order_lines)
        .where(purchase_order_lines.c.id == line.id)
        .values(received_quantity=received)
    )
    if held:
        waiting = received - line.expected_quantity - line.accepted_excess - line.rejected_excess
        queue_discrepancy(
            conn,
            RECEIPT_DISCREPANCY,
            subject_of(row.po_id),
            row.sku,
            f"purchase order {row.po_id} ({header.supplier} -> {header.location}): {received} units of "
            f"{row.sku} received, {line.expected_quantity} expected; the {waiting} beyond are held, not on "
            f"hand: `channelhub receipt accept {row.po_id} --sku {row.sku}` puts them on hand, "
            f"`channelhub receipt reject ...` records them as sent back",
        )
    _mark_received_when_complete(conn, header.id)
    units["received"] += on_hand_now
    units["held_over_receipt"] += held
    return True


def _locked(conn: Connection, po_id: str) -> Any:
    return conn.execute(
        select(purchase_orders, locations.c.code.label("location"))
        .join(locations, locations.c.id == purchase_orders.c.location_id)
        .where(purchase_orders.c.po_key == po_id)
        .with_for_update(of=purchase_orders)
    ).first()


def _mark_received_when_complete(conn: Connection, header_id: int) -> None:
    short = conn.execute(
        select(func.count()).where(
            purchase_order_lines.c.purchase_order_id == header_id,
            purchase_order_lines.c.received_quantity < purchase_order_lines.c.expected_quantity,
        )
    ).scalar_one()
    if not short:
        conn.execute(
            update(purchase_orders)
            .where(purchase_orders.c.id == header_id, purchase_orders.c.status == "open")
            .values(status="received")
        )


# -- a person's decisions ----------------------------------------------------------------------------


def close_delivery(conn: Connection, po_id: str, actor: str) -> PurchaseOrderView:
    """No more receipts: lines received short are queued for a person (on-hand already holds only what was
    received). Closing a closed or fully received purchase order changes nothing."""
    header = _locked(conn, po_id)
    if header is None:
        raise RowRejected(f"no expected delivery {po_id}")
    if header.status == "open":
        view = get_delivery(conn, po_id)
        short = [line for line in view.lines if line.received < line.expected]
        for line in short:
            queue_discrepancy(
                conn,
                RECEIPT_DISCREPANCY,
                subject_of(po_id),
                line.sku,
                f"purchase order {po_id} ({header.supplier} -> {header.location}) closed by {actor}: "
                f"{line.received} units of {line.sku} received, {line.expected} expected: "
                f"{line.expected - line.received} short (claim them from {header.supplier})",
            )
        conn.execute(
            update(purchase_orders)
            .where(purchase_orders.c.id == header.id)
            .values(status="closed_short" if short else "received", closed_at=func.now(), closed_by=actor)
        )
    return get_delivery(conn, po_id)


def decide_excess(conn: Connection, po_id: str, sku: str, actor: str, *, accept: bool) -> int:
    """A person's word on the units received beyond expected: accepted ones go on hand (ledger ``receive``),
    rejected ones are recorded as sent back. Returns the units decided."""
    header = _locked(conn, po_id)
    if header is None:
        raise RowRejected(f"no expected delivery {po_id}")
    line = conn.execute(
        select(purchase_order_lines)
        .join(skus, skus.c.id == purchase_order_lines.c.sku_id)
        .where(purchase_order_lines.c.purchase_order_id == header.id, skus.c.code == sku)
        .with_for_update(of=purchase_order_lines)
    ).first()
    if line is None:
        raise RowRejected(f"{sku} is not on purchase order {po_id}")
    waiting = (
        max(0, line.received_quantity - line.expected_quantity) - line.accepted_excess - line.rejected_excess
    )
    if waiting <= 0:
        raise RowRejected(f"no units of {sku} received beyond expected wait on purchase order {po_id}")
    if accept:
        accepted = line.accepted_excess + waiting
        key = f"receipt:{po_id}:{sku}:excess:{accepted}"
        apply_entries(conn, [LedgerRow(key, line.sku_id, header.location_id, "receive", waiting, 0)])
        values, note = (
            {"accepted_excess": accepted},
            f"accepted: {waiting} units put on hand at {header.location}",
        )
    else:
        values = {"rejected_excess": line.rejected_excess + waiting}
        note = f"rejected: {waiting} units sent back to {header.supplier}, not on hand"
    conn.execute(update(purchase_order_lines).where(purchase_order_lines.c.id == line.id).values(**values))
    resolve_discrepancy(conn, RECEIPT_DISCREPANCY, subject_of(po_id), sku, actor, note)
    return waiting


# -- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurchaseLineView:
    sku: str
    expected: int
    received: int
    accepted_excess: int
    rejected_excess: int

    @property
    def on_hand(self) -> int:
        """Units of the line put on hand: up to expected, plus the accepted excess."""
        return min(self.received, self.expected) + self.accepted_excess

    @property
    def excess_waiting(self) -> int:
        return max(0, self.received - self.expected) - self.accepted_excess - self.rejected_excess


@dataclass(frozen=True, slots=True)
class PurchaseOrderView:
    po_id: str
    supplier: str
    location: str
    status: str
    expected_at: datetime
    closed_at: datetime | None
    lines: tuple[PurchaseLineView, ...]


def get_delivery(conn: Connection, po_id: str) -> PurchaseOrderView:
    views = list_deliveries(conn, po_id=po_id)
    if not views:
        raise RowRejected(f"no expected delivery {po_id}")
    return views[0]


def list_deliveries(
    conn: Connection, *, status: str | None = None, po_id: str | None = None, limit: int = 200
) -> list[PurchaseOrderView]:
    """Purchase orders by expected time, newest first, with their lines."""
    query = (
        select(purchase_orders, locations.c.code.label("location"))
        .join(locations, locations.c.id == purchase_orders.c.location_id)
        .order_by(purchase_orders.c.expected_at.desc(), purchase_orders.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(purchase_orders.c.status == status)
    if po_id is not None:
        query = query.where(purchase_orders.c.po_key == po_id)
    headers = conn.execute(query).all()
    lines: dict[int, list[PurchaseLineView]] = {}
    if headers:
        for line in conn.execute(
            select(purchase_order_lines, skus.c.code.label("sku"))
            .join(skus, skus.c.id == purchase_order_lines.c.sku_id)
            .where(purchase_order_lines.c.purchase_order_id.in_([h.id for h in headers]))
            .order_by(purchase_order_lines.c.id)
        ):
            lines.setdefault(line.purchase_order_id, []).append(
                PurchaseLineView(
                    line.sku,
                    line.expected_quantity,
                    line.received_quantity,
                    line.accepted_excess,
                    line.rejected_excess,
                )
            )
    return [
        PurchaseOrderView(
            h.po_key, h.supplier, h.location, h.status, h.expected_at, h.closed_at, tuple(lines.get(h.id, ()))
        )
        for h in headers
    ]


APPLIERS: dict[type, RowApplier] = {ExpectedDeliveryRow: expect_line, PurchaseReceiptRow: receive}
