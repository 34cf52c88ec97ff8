"""Transfers between locations (调拨): out of one location into transit, into the other on receipt.

The rules (docs/transfers-and-receipts.md):

- **Send** (a ``transfers`` row, or ``channelhub transfer send``): the line's units leave the source only
  from its free units (on_hand - reserved), by the conditional step, so a reservation landing at the same
  moment is never oversold: a line of more than is free is refused, reserved units stay for their orders.
  They arrive in the hub's transit location (``TRANSIT``, kind ``transit``, created on first use), which
  counts for no channel. Ledger: ``transfer_out`` at the source, key ``transfer:<id>:<line_no>:out``, and
  ``transfer_in`` at transit, ``transfer:<id>:<line_no>:transit``.
- **Receive** (a ``transfer_receipts`` row, or ``channelhub transfer receive``): units of a line move
  transit -> destination, keys ``transfer:<id>:<line_no>:receipt:<receipt_id>:transit|in``; several
  receipts over time are fine. Units beyond what was sent are not put on hand: they are queued as
  ``transfer_discrepancy`` for a person, who accepts them (``channelhub transfer accept``: moved from the
  source, which must have them free, as it sent them) or counts the shelves.
- **Close** (``channelhub transfer close``): a line received short has its missing units written off transit
  (``adjust``, key ``transfer:<id>:<line_no>:lost``) and queued as ``transfer_discrepancy``; the transfer
  is then ``closed_short`` and refuses later receipts. A transfer whose every line arrived is ``received``.

Refused with a typed reason (``RowRejected``: a bad import row, or exit 2 from the CLI): an unknown location,
the same source and destination, a transit location as an end, an unknown SKU, a bundle (no stock of its
own), more than is free, a receipt of an unknown transfer or line, a receipt of a closed transfer, a line or
receipt imported again with other values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert

from canonical.store_files import TransferReceiptRow, TransferRow
from warehouse.import_rows import CatalogLookups, RowApplier, RowRejected
from warehouse.models import locations, skus, stock_levels, transfer_lines, transfer_receipts, transfers
from warehouse.stock import LedgerRow
from warehouse.stock_moves import apply_entries, queue_discrepancy, resolve_discrepancy

TRANSIT_CODE = "TRANSIT"
TRANSIT_NAME = "In transit between locations"
TRANSFER_DISCREPANCY = "transfer_discrepancy"


def subject_of(transfer_id: str) -> str:
    """The exception subject (``external_id``) of a transfer's discrepancies."""
    return f"transfer:{transfer_id}"


def transit_location_id(conn: Connection) -> int:
    """The hub's transit location, created on first use."""
    conn.execute(
        insert(locations)
        .values(code=TRANSIT_CODE, name=TRANSIT_NAME, kind="transit")
        .on_conflict_do_nothing(index_elements=["code"])
    )
    row = conn.execute(select(locations.c.id, locations.c.kind).where(locations.c.code == TRANSIT_CODE)).one()
    if row.kind != "transit":
        raise RowRejected(
            f"location {TRANSIT_CODE} exists as a {row.kind} location: transfers need it as the transit one"
        )
    return row.id


# -- send ------------------------------------------------------------------------------------------


def send_line(lookups: CatalogLookups, conn: Connection, row: TransferRow, units: Counter[str]) -> bool:
    """One line of a transfer leaves its source for transit. False: this line was sent before."""
    if row.from_location == row.to_location:
        raise RowRejected(f"transfer {row.transfer_id} goes from {row.from_location} to itself")
    from_id, to_id = lookups.location(conn, row.from_location), lookups.location(conn, row.to_location)
    for code in (row.from_location, row.to_location):
        if lookups.location_kind(conn, code) == "transit":
            raise RowRejected(f"{code} is a transit location: a transfer goes between two real locations")
    sku_id = lookups.sku(conn, row.sku)
    if recipe := lookups.recipe(conn, row.sku):
        components = ", ".join(f"{per} x {code}" for _, code, per in recipe)
        raise RowRejected(f"{row.sku} is a bundle of {components}: it has no stock of its own, send those")
    lookups.check_row_units(conn, row.from_location, "quantity", row.quantity)
    header = _header_for_send(conn, lookups, row, from_id, to_id)

    sent_before = conn.execute(
        select(transfer_lines.c.sku_id, transfer_lines.c.sent_quantity).where(
            transfer_lines.c.transfer_id == header.id, transfer_lines.c.line_no == row.line_no
        )
    ).first()
    if sent_before is not None:
        if tuple(sent_before) == (sku_id, row.quantity):
            return False
        sku_before = conn.execute(select(skus.c.code).where(skus.c.id == sent_before.sku_id)).scalar_one()
        raise RowRejected(
            f"line {row.line_no} of transfer {row.transfer_id} was sent as {sent_before.sent_quantity} x "
            f"{sku_before}; this row says {row.quantity} x {row.sku}"
        )
    if header.status != "in_transit":
        raise RowRejected(
            f"transfer {row.transfer_id} is {header.status}: a line cannot be added, send a new transfer"
        )
    entries = [
        LedgerRow(f"{row.key}:out", sku_id, from_id, "transfer_out", -row.quantity, 0),
        LedgerRow(f"{row.key}:transit", sku_id, header.transit_location_id, "transfer_in", row.quantity, 0),
    ]
    if apply_entries(conn, entries)[0] is None:
        on_hand, reserved = _level(conn, sku_id, from_id)
        raise RowRejected(
            f"sends {row.quantity} of {row.sku} from {row.from_location}, but only {on_hand - reserved} are "
            f"free there (on hand {on_hand}, reserved {reserved} for orders): a transfer never takes "
            "reserved units"
        )
    conn.execute(
        insert(transfer_lines).values(
            transfer_id=header.id, line_no=row.line_no, sku_id=sku_id, sent_quantity=row.quantity
        )
    )
    units["sent"] += row.quantity
    return True


def _header_for_send(
    conn: Connection, lookups: CatalogLookups, row: TransferRow, from_id: int, to_id: int
) -> Any:
    """The transfer, inserted by its first line and locked; later lines must name the same two locations."""
    conn.execute(
        insert(transfers)
        .values(
            transfer_key=row.transfer_id,
            from_location_id=from_id,
            to_location_id=to_id,
            transit_location_id=transit_location_id(conn),
            sent_at=row.sent_at,
            source=lookups.source,
        )
        .on_conflict_do_nothing(index_elements=["transfer_key"])
    )
    header = _locked(conn, row.transfer_id)
    assert header is not None  # inserted just now, or before
    if (header.from_location_id, header.to_location_id) != (from_id, to_id):
        raise RowRejected(
            f"transfer {row.transfer_id} goes from {header.from_code} to {header.to_code} "
            f"(from {header.source}); this row says {row.from_location} to {row.to_location}"
        )
    return header


def _locked(conn: Connection, transfer_id: str) -> Any:
    """The transfer with its locations' codes, locked: one change of a transfer at a time."""
    source, destination, transit = (locations.alias(name) for name in ("src", "dst", "tr"))
    return conn.execute(
        select(
            transfers,
            source.c.code.label("from_code"),
            destination.c.code.label("to_code"),
            transit.c.code.label("transit_code"),
        )
        .join(source, source.c.id == transfers.c.from_location_id)
        .join(destination, destination.c.id == transfers.c.to_location_id)
        .join(transit, transit.c.id == transfers.c.transit_location_id)
        .where(transfers.c.transfer_key == transfer_id)
        .with_for_update(of=transfers)
    ).first()


def _set_line(conn: Connection, line_id: int, **values: int) -> None:
    conn.execute(update(transfer_lines).where(transfer_lines.c.id == line_id).values(**values))


def _level(conn: Connection, sku_id: int, location_id: int) -> tuple[int, int]:
    row = conn.execute(
        select(stock_levels.c.on_hand, stock_levels.c.reserved).where(
            stock_levels.c.sku_id == sku_id, stock_levels.c.location_id == location_id
        )
    ).first()
    return (row.on_hand, row.reserved) if row else (0, 0)


# -- receive ---------------------------------------------------------------------------------------


def receive_line(
    lookups: CatalogLookups, conn: Connection, row: TransferReceiptRow, units: Counter[str]
) -> bool:
    """Units of a transfer line arrive at its destination. False: this receipt line was applied before."""
    header = _locked(conn, row.transfer_id)
    if header is None:
        raise RowRejected(f"no transfer {row.transfer_id} was sent (import its transfers file first)")
    line = _line_of(conn, header, row)
    before = conn.execute(
        select(transfer_receipts.c.quantity).where(
            transfer_receipts.c.line_id == line.id, transfer_receipts.c.receipt_key == row.receipt_id
        )
    ).first()
    if before is not None:
        if before.quantity == row.received_quantity:
            return False
        raise RowRejected(
            f"receipt {row.receipt_id} of transfer {row.transfer_id} line {line.line_no} was imported with "
            f"{before.quantity} units; this row says {row.received_quantity}"
        )
    if header.status == "closed_short":
        raise RowRejected(
            f"transfer {row.transfer_id} was closed short on {header.closed_at:%Y-%m-%d %H:%M} UTC by "
            f"{header.closed_by}: its missing units were written off; count {header.to_code} to add them"
        )
    lookups.check_row_units(conn, header.to_code, "received_quantity", row.received_quantity)
    in_transit = max(0, line.sent_quantity - line.received_quantity)
    moved = min(row.received_quantity, in_transit)
    excess = row.received_quantity - moved
    if moved:
        key = f"transfer:{row.transfer_id}:{line.line_no}:receipt:{row.receipt_id}"
        entries = [
            LedgerRow(f"{key}:transit", line.sku_id, header.transit_location_id, "transfer_out", -moved, 0),
            LedgerRow(f"{key}:in", line.sku_id, header.to_location_id, "transfer_in", moved, 0),
        ]
        if None in apply_entries(conn, entries):
            raise RowRejected(
                f"transit holds fewer than the {moved} units of {line.sku} this receipt moves (was "
                f"{header.transit_code} counted or adjusted?): count {header.to_code} instead"
            )
    conn.execute(
        insert(transfer_receipts).values(
            line_id=line.id,
            receipt_key=row.receipt_id,
            quantity=row.received_quantity,
            received_at=row.received_at,
            source=lookups.source,
        )
    )
    received = line.received_quantity + row.received_quantity
    conn.execute(
        update(transfer_lines).where(transfer_lines.c.id == line.id).values(received_quantity=received)
    )
    if excess:
        queue_discrepancy(
            conn,
            TRANSFER_DISCREPANCY,
            subject_of(row.transfer_id),
            line.sku,
            f"transfer {row.transfer_id} line {line.line_no} ({header.from_code} -> {header.to_code}): "
            f"{received} units of {line.sku} received, {line.sent_quantity} sent; the "
            f"{received - line.sent_quantity - line.accepted_excess} beyond are not on hand: "
            f"`channelhub transfer accept {row.transfer_id} --line {line.line_no}` moves them from "
            f"{header.from_code}, or count both locations",
        )
    _mark_received_when_complete(conn, header.id)
    units["received"] += moved
    units["over_received"] += excess
    return True


def _line_of(conn: Connection, header: Any, row: TransferReceiptRow) -> Any:
    lines = conn.execute(
        select(transfer_lines, skus.c.code.label("sku"))
        .join(skus, skus.c.id == transfer_lines.c.sku_id)
        .where(transfer_lines.c.transfer_id == header.id)
        .order_by(transfer_lines.c.id)
        .with_for_update(of=transfer_lines)
    ).all()
    if row.line_no is not None:
        found = [line for line in lines if line.line_no == row.line_no]
        if not found:
            raise RowRejected(f"transfer {row.transfer_id} has no line {row.line_no}")
        if row.sku is not None and found[0].sku != row.sku:
            raise RowRejected(
                f"line {row.line_no} of transfer {row.transfer_id} is {found[0].sku}, not {row.sku}"
            )
        return found[0]
    found = [line for line in lines if line.sku == row.sku]
    if not found:
        raise RowRejected(f"transfer {row.transfer_id} sent no {row.sku}")
    if len(found) > 1:
        numbers = ", ".join(line.line_no for line in found)
        raise RowRejected(
            f"transfer {row.transfer_id} sent {row.sku} on lines {numbers}: name the line_no of the receipt"
        )
    return found[0]


def _mark_received_when_complete(conn: Connection, header_id: int) -> None:
    short = conn.execute(
        select(func.count()).where(
            transfer_lines.c.transfer_id == header_id,
            transfer_lines.c.received_quantity < transfer_lines.c.sent_quantity,
        )
    ).scalar_one()
    if not short:
        conn.execute(
            update(transfers)
            .where(transfers.c.id == header_id, transfers.c.status == "in_transit")
            .values(status="received")
        )


# -- a person's decisions: close short, accept the units received beyond sent ------------------------


@dataclass(frozen=True, slots=True)
class TransferLineView:
    line_no: str
    sku: str
    sent: int
    received: int
    lost: int
    accepted_excess: int

    @property
    def in_transit(self) -> int:
        return max(0, self.sent - self.received - self.lost)

    @property
    def excess_waiting(self) -> int:
        """Received beyond sent, not yet accepted (not on hand)."""
        return max(0, self.received - self.sent) - self.accepted_excess


@dataclass(frozen=True, slots=True)
class TransferView:
    transfer_id: str
    from_location: str
    to_location: str
    status: str
    sent_at: datetime
    closed_at: datetime | None
    lines: tuple[TransferLineView, ...]


def close_transfer(conn: Connection, transfer_id: str, actor: str) -> TransferView:
    """No more receipts: lines received short have their missing units written off transit and queued for a
    person. Closing a closed or fully received transfer changes nothing."""
    header = _locked(conn, transfer_id)
    if header is None:
        raise RowRejected(f"no transfer {transfer_id} was sent")
    if header.status == "in_transit":
        lines = conn.execute(
            select(transfer_lines, skus.c.code.label("sku"))
            .join(skus, skus.c.id == transfer_lines.c.sku_id)
            .where(transfer_lines.c.transfer_id == header.id)
            .order_by(transfer_lines.c.id)
        ).all()
        short = [line for line in lines if line.received_quantity < line.sent_quantity]
        for line in short:
            lost = line.sent_quantity - line.received_quantity
            entry = LedgerRow(
                f"transfer:{transfer_id}:{line.line_no}:lost", line.sku_id, header.transit_location_id,
                "adjust", -lost, 0,
            )  # fmt: skip
            if None in apply_entries(conn, [entry]):
                raise RowRejected(f"transit holds fewer than the {lost} missing units of {line.sku}")
            conn.execute(
                update(transfer_lines).where(transfer_lines.c.id == line.id).values(lost_quantity=lost)
            )
            queue_discrepancy(
                conn,
                TRANSFER_DISCREPANCY,
                subject_of(transfer_id),
                line.sku,
                f"transfer {transfer_id} line {line.line_no} ({header.from_code} -> {header.to_code}) closed "
                f"by {actor}: {line.sent_quantity} units of {line.sku} sent, {line.received_quantity} "
                f"received; the {lost} missing were written off transit: find them or claim them",
            )
        conn.execute(
            update(transfers)
            .where(transfers.c.id == header.id)
            .values(status="closed_short" if short else "received", closed_at=func.now(), closed_by=actor)
        )
    return get_transfer(conn, transfer_id)


def accept_excess(conn: Connection, transfer_id: str, line_no: str, actor: str) -> int:
    """A person's yes to the units a line received beyond what was sent: the source sent more than its
    document said, so they move source -> destination (from its free units). Returns the units moved."""
    header = _locked(conn, transfer_id)
    if header is None:
        raise RowRejected(f"no transfer {transfer_id} was sent")
    line = conn.execute(
        select(transfer_lines, skus.c.code.label("sku"))
        .join(skus, skus.c.id == transfer_lines.c.sku_id)
        .where(transfer_lines.c.transfer_id == header.id, transfer_lines.c.line_no == line_no)
        .with_for_update(of=transfer_lines)
    ).first()
    if line is None:
        raise RowRejected(f"transfer {transfer_id} has no line {line_no}")
    waiting = max(0, line.received_quantity - line.sent_quantity) - line.accepted_excess
    if waiting <= 0:
        raise RowRejected(f"line {line_no} of transfer {transfer_id} has no units received beyond sent")
    accepted = line.accepted_excess + waiting
    key = f"transfer:{transfer_id}:{line_no}:excess:{accepted}"
    entries = [
        LedgerRow(f"{key}:out", line.sku_id, header.from_location_id, "transfer_out", -waiting, 0),
        LedgerRow(f"{key}:in", line.sku_id, header.to_location_id, "transfer_in", waiting, 0),
    ]
    if apply_entries(conn, entries)[0] is None:
        on_hand, reserved = _level(conn, line.sku_id, header.from_location_id)
        raise RowRejected(
            f"{header.from_code} has {on_hand - reserved} free units of {line.sku}, not the {waiting} it "
            f"would have sent beyond the document: count {header.from_code} and {header.to_code} instead"
        )
    conn.execute(
        update(transfer_lines).where(transfer_lines.c.id == line.id).values(accepted_excess=accepted)
    )
    resolve_discrepancy(
        conn,
        TRANSFER_DISCREPANCY,
        subject_of(transfer_id),
        line.sku,
        actor,
        f"accepted: {waiting} units moved {header.from_code} -> {header.to_code}",
    )
    return waiting


# -- reading -----------------------------------------------------------------------------------------


def get_transfer(conn: Connection, transfer_id: str) -> TransferView:
    views = list_transfers(conn, transfer_id=transfer_id)
    if not views:
        raise RowRejected(f"no transfer {transfer_id} was sent")
    return views[0]


def list_transfers(
    conn: Connection, *, status: str | None = None, transfer_id: str | None = None, limit: int = 200
) -> list[TransferView]:
    """Transfers newest first, with their lines."""
    source, destination = locations.alias("src"), locations.alias("dst")
    query = (
        select(transfers, source.c.code.label("from_code"), destination.c.code.label("to_code"))
        .join(source, source.c.id == transfers.c.from_location_id)
        .join(destination, destination.c.id == transfers.c.to_location_id)
        .order_by(transfers.c.sent_at.desc(), transfers.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(transfers.c.status == status)
    if transfer_id is not None:
        query = query.where(transfers.c.transfer_key == transfer_id)
    headers = conn.execute(query).all()
    lines: dict[int, list[TransferLineView]] = {}
    if headers:
        for line in conn.execute(
            select(transfer_lines, skus.c.code.label("sku"))
            .join(skus, skus.c.id == transfer_lines.c.sku_id)
            .where(transfer_lines.c.transfer_id.in_([h.id for h in headers]))
            .order_by(transfer_lines.c.id)
        ):
            lines.setdefault(line.transfer_id, []).append(
                TransferLineView(
                    line.line_no,
                    line.sku,
                    line.sent_quantity,
                    line.received_quantity,
                    line.lost_quantity,
                    line.accepted_excess,
                )
            )
    return [
        TransferView(
            h.transfer_key,
            h.from_code,
            h.to_code,
            h.status,
            h.sent_at,
            h.closed_at,
            tuple(lines.get(h.id, ())),
        )
        for h in headers
    ]


APPLIERS: dict[type, RowApplier] = {TransferRow: send_line, TransferReceiptRow: receive_line}
