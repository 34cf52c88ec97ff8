"""Store and warehouse systems in: shipments, stock counts (盘点), store (POS) sales and returns
(退换货, applied by ``warehouse.returns``) from CSV files.

``import_file(engine, kind, path)`` parses the file (``canonical.store_files``) and applies its rows in
chunks, one transaction per chunk and a savepoint per row, so a row the database refuses is reported and
the rest goes on. Every row is idempotent: importing a file again changes nothing.

- **Shipment** row: units of one order line (by external line id, or by SKU spread over the order's lines
  with that SKU in line order) left in shipment ``shipment_id`` of ``channel``. It is recorded in
  ``shipments``/``shipment_lines`` (identity ``ship:<channel>:<shipment_id>:<line ref>``), raises the line's
  ``warehouse_shipped_quantity`` and re-evaluates the order through ingest's own stock evaluation: on-hand
  is deducted and the reservation released per line and quantity, by the same code path (and ledger keys,
  ``deduct:<channel>:<order>:<line>``) as a shipment the channel reports, which counts
  max(platform shipped, warehouse shipped) so the same shipment reported by both deducts once.
- **Count** row: on-hand becomes the counted quantity through an ``adjust`` ledger row of
  (counted - on_hand now), key ``count:<location>:<sku>:<count_id or counted_at>``; the count itself is kept
  in ``stock_counts``. A count older than one already applied to that SKU and location is refused.
- **Sale** row: a ``deduct`` ledger row (a negative quantity, a store return: ``restock``), key
  ``pos:<location>:<receipt_id>:<line_no>``. Selling more than is on hand is refused (on-hand never goes
  negative). A bundle sold (``sku_components``) deducts its components, units per bundle each, keys ending
  ``@<component>``; a count of a bundle is refused: it has no stock of its own, its components are counted.

A count or sale that leaves on-hand below what is reserved releases the newest orders' reservations of
that SKU there (``ingest.release_beyond_on_hand``): those orders wait for stock with an
``insufficient_stock`` exception, never negative availability.

A row that does not fit goes to the exception queue as ``bad_import_row`` (detail ``file:line: reason``,
the row kept raw; under the row's channel for shipments, else under no channel) and into the report. Its
identity is the row's content (kind and values): importing it again bumps that exception's attempts, and
the same row applying on a later import (say, after the order synced) resolves it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from canonical.store_files import (
    KINDS,
    BadRow,
    CountRow,
    ImportFileError,
    Row,
    SaleRow,
    ShipmentRow,
    parse_csv,
)
from canonical.store_read import FileOptions, read_file
from warehouse import exceptions as queue
from warehouse import purchase_receipts, returns, transfers
from warehouse.db_errors import DB_ERRORS, error_text, raise_unless_the_rows_fault
from warehouse.exceptions import ExceptionRecord
from warehouse.import_rows import (
    CatalogLookups,
    ChannelRef,
    RowApplier,
    RowRejected,
    change_on_hand,
    lock_level,
)
from warehouse.ingest import (
    _retrying,
    reevaluate_orders,
    release_beyond_on_hand,
)
from warehouse.models import (
    locations,
    order_lines,
    orders,
    shipment_lines,
    shipments,
    skus,
    stock_counts,
    stock_ledger,
)
from warehouse.route_lines import line_location
from warehouse.stock import LedgerRow
from warehouse.store_sales import record_store_sale

__all__ = [
    "KINDS",
    "FileOptions",
    "ImportFileError",
    "ImportReport",
    "RejectedRow",
    "import_file",
    "import_rows",
    "import_text",
]

log = logging.getLogger("warehouse.store_imports")

BAD_ROW = "bad_import_row"
CHUNK_ROWS = 200
BAD_ROW_CLEARED = "cleared: the row applied on a later import"

# The kinds whose rows are applied in modules of their own: row type -> applier (``warehouse.import_rows``).
ROW_APPLIERS: dict[type, RowApplier] = {}
ROW_APPLIERS.update(transfers.APPLIERS)  # transfers, transfer_receipts
ROW_APPLIERS.update(purchase_receipts.APPLIERS)  # expected_deliveries, receipts
ROW_APPLIERS.update(returns.APPLIERS)  # returns (退换货)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ImportReport:
    """What one import of one file did."""

    file: str
    kind: str
    rows_read: int = 0
    applied: int = 0
    already_applied: int = 0  # idempotent no-ops: the row was imported before
    rejected: list[RejectedRow] = field(default_factory=list)
    # Units by effect: shipped, deducted (shipped units that left on-hand), adjusted (net, counts), sold,
    # returned (store returns), released (reservations released because on-hand fell below them); and
    # tracking_corrected: shipments whose tracking number a row corrected (pushed again as an update).
    units: Counter[str] = field(default_factory=Counter)
    # Per row (its line): applied | already_applied | rejected (the POS feed answers per document line).
    outcomes: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def merge(self, other: ImportReport) -> None:
        self.applied += other.applied
        self.already_applied += other.already_applied
        self.rejected.extend(other.rejected)
        self.units.update(other.units)
        self.outcomes.update(other.outcomes)

    def summary_line(self) -> str:
        units = ", ".join(f"{k}={v}" for k, v in sorted(self.units.items()) if v) or "none"
        return (
            f"{self.file} ({self.kind}): rows={self.rows_read} applied={self.applied} "
            f"already_applied={self.already_applied} rejected={len(self.rejected)} units: {units}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "rows_read": self.rows_read,
            "applied": self.applied,
            "already_applied": self.already_applied,
            "rejected": [{"file": r.file, "line": r.line, "reason": r.reason} for r in self.rejected],
            "units": dict(sorted(self.units.items())),
        }


# -- entry points --------------------------------------------------------------------------------


def import_file(
    engine: Engine, kind: str, path: str | Path, options: FileOptions | None = None
) -> ImportReport:
    """Import one file of ``kind``: CSV (in ``options.encoding``, default detected safely) or ``.xlsx``, with
    the source's header names of ``options.headers``. Raises ``ImportFileError`` when the file cannot be read
    as that kind at all; bad rows are in the report (and the exception queue)."""
    if kind not in KINDS:
        raise ImportFileError(f"unknown import kind {kind!r}: expected one of {', '.join(KINDS)}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImportFileError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        parsed = read_file(kind, data, path.name, options)
    except ImportFileError as err:
        raise ImportFileError(f"{path}: {err}", err.reason) from None
    return import_rows(engine, kind, parsed.in_file_order(), file=str(path), source=path.name)


def import_text(
    engine: Engine, kind: str, csv_text: str, *, file: str, source: str, timezone: str | None = None
) -> ImportReport:
    """Import CSV text; ``file`` names it in the report, ``source`` (the file name) in the warehouse;
    ``timezone``: of its times without an offset (default UTC)."""
    parsed = parse_csv(kind, csv_text, timezone=timezone)
    return import_rows(engine, kind, parsed.in_file_order(), file=file, source=source)


def import_rows(
    engine: Engine, kind: str, items: Sequence[Row | BadRow], *, file: str, source: str
) -> ImportReport:
    """Apply rows already parsed (a file's, or a POS document's lines) by the same rules and queue as a
    file: ``file`` names them in the report, ``source`` in the warehouse and the exceptions' details."""
    report = ImportReport(file, kind, rows_read=len(items))
    importer = _Importer(kind, file, source)
    for start in range(0, len(items), CHUNK_ROWS):
        report.merge(_retrying(importer.apply_chunk, engine, items[start : start + CHUNK_ROWS]))
    log.info("import %s", report.summary_line())
    return report


# -- one chunk, one transaction ------------------------------------------------------------------


class _Importer(CatalogLookups):
    def __init__(self, kind: str, file: str, source: str) -> None:
        super().__init__(source)
        self.kind = kind
        self.file = file

    def raw_of(self, raw: dict[str, str]) -> dict[str, str]:
        """What the queue keeps of a row; its digest is the bad row's identity (kind and content, not where
        it sat): importing it again bumps the same exception, and the row applying later clears it."""
        return {"kind": self.kind, **raw}

    def apply_chunk(self, engine: Engine, items: Sequence[Row | BadRow]) -> ImportReport:
        """Apply these rows in one transaction, each in a savepoint (a deadlock retries the chunk)."""
        result = ImportReport(self.file, self.kind)
        bad: list[tuple[int, str, dict[str, str], int | None]] = []  # line, reason, raw, channel id
        good: list[tuple[int | None, str]] = []  # (channel id, raw digest) of rows that applied
        with engine.begin() as conn:
            for item in items:
                if isinstance(item, BadRow):
                    bad.append((item.line, item.reason, item.raw, self.channel_id_of_raw(conn, item.raw)))
                    result.outcomes[item.line] = "rejected"
                    continue
                try:
                    with conn.begin_nested():
                        applied = self._apply(conn, item, result.units)
                except RowRejected as err:
                    bad.append((item.line, err.reason, item.raw, err.channel_id))
                    result.outcomes[item.line] = "rejected"
                    continue
                except DB_ERRORS as err:
                    raise_unless_the_rows_fault(err)
                    reason = f"the database refused the row: {error_text(err)}"
                    bad.append((item.line, reason, item.raw, None))
                    result.outcomes[item.line] = "rejected"
                    continue
                if applied:
                    result.applied += 1
                else:
                    result.already_applied += 1
                result.outcomes[item.line] = "applied" if applied else "already_applied"
                good.append((self.channel_id_of_raw(conn, item.raw), _digest(self.raw_of(item.raw))))
            self._queue(conn, bad)
            _resolve_bad_rows(conn, good)
        result.rejected = [RejectedRow(self.file, line, reason) for line, reason, _, _ in bad]
        return result

    def _apply(self, conn: Connection, row: Row, units: Counter[str]) -> bool:
        if isinstance(row, ShipmentRow):
            return self._shipment(conn, row, units)
        if isinstance(row, CountRow):
            return self._count(conn, row, units)
        if isinstance(row, SaleRow):
            return self._sale(conn, row, units)
        return ROW_APPLIERS[type(row)](self, conn, row, units)

    def _queue(self, conn: Connection, bad: list[tuple[int, str, dict[str, str], int | None]]) -> None:
        by_channel: dict[int | None, list[tuple[int, str, dict[str, str]]]] = {}
        for line, reason, raw, channel_id in bad:
            by_channel.setdefault(channel_id, []).append((line, reason, raw))
            log.warning("%s:%d: %s", self.file, line, reason)
        for channel_id, rows in by_channel.items():
            raw_ids = queue.land_raw(conn, channel_id, [(None, self.raw_of(raw)) for _, _, raw in rows])
            records = [
                ExceptionRecord(
                    BAD_ROW,
                    None,
                    f"{self.source}:{line}: {reason}",
                    raw_id,
                    (raw.get("sku") or "").strip() or None,
                )
                for (line, reason, raw), raw_id in zip(rows, raw_ids, strict=True)
            ]
            queue.upsert_exceptions(conn, channel_id, records)

    # -- shipments -----------------------------------------------------------------------------

    def _shipment(self, conn: Connection, row: ShipmentRow, units: Counter[str]) -> bool:
        channel = self.channel(conn, row.channel)
        try:
            return self._ship(conn, channel, row, units)
        except RowRejected as err:
            raise RowRejected(err.reason, channel.id) from None

    def _ship(self, conn: Connection, channel: ChannelRef, row: ShipmentRow, units: Counter[str]) -> bool:
        # The order's lock serialises everything that changes its lines (ingest, other imports).
        order_id = conn.execute(
            select(orders.c.id)
            .where(orders.c.channel_id == channel.id, orders.c.external_id == row.order_id)
            .with_for_update()
        ).scalar()
        if order_id is None:
            raise RowRejected(
                f"order {row.order_id} of channel {channel.code} is not in the warehouse "
                f"(not synced yet? import the file again after the next sync)"
            )
        # A row without a location ships from where its line holds its stock (routing may have chosen it).
        location_id = (
            self.location(conn, row.location)
            if row.location
            else line_location(conn, order_id, channel.location_id, line_id=row.line_id, sku=row.sku)
        )
        shipment_id, corrected = self._shipment_header(conn, channel, order_id, location_id, row)
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

        allocation = self._allocate(conn, channel, order_id, shipment_id, location_id, row)
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
        self, conn: Connection, channel: ChannelRef, order_id: int, location_id: int, row: ShipmentRow
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
            .values(channel_id=channel.id, shipment_key=row.shipment_id, source=self.source, **header)
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
                f"shipment {row.shipment_id} belongs to order {existing.order_external_id}, "
                f"not {row.order_id}"
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
                self.source,
            )
        return existing.id, corrects

    def _allocate(
        self,
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
                raise RowRejected(
                    f"line {row.line_id} is already in shipment {row.shipment_id} (another row)"
                )
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

    # -- counts and sales ----------------------------------------------------------------------

    def _count(self, conn: Connection, row: CountRow, units: Counter[str]) -> bool:
        sku_id, location_id = self.sku(conn, row.sku), self.location(conn, row.location)
        self.check_row_units(conn, row.location, "counted_quantity", row.counted_quantity)
        if recipe := self.recipe(conn, row.sku):
            components = ", ".join(f"{units} x {code}" for _, code, units in recipe)
            raise RowRejected(
                f"{row.sku} is a bundle of {components}: it has no stock of its own, count its components"
            )
        on_hand, reserved = lock_level(conn, sku_id, location_id)  # serialises this SKU at this location
        applied_before = conn.execute(
            select(stock_counts.c.counted_quantity).where(stock_counts.c.idempotency_key == row.key)
        ).first()
        if applied_before is not None:
            if applied_before.counted_quantity == row.counted_quantity:
                return False
            raise RowRejected(
                f"count {row.key} was already applied with {applied_before.counted_quantity} units; "
                f"this row says {row.counted_quantity}"
            )
        newest = conn.execute(
            select(func.max(stock_counts.c.counted_at)).where(
                stock_counts.c.sku_id == sku_id, stock_counts.c.location_id == location_id
            )
        ).scalar()
        if newest is not None and newest > row.counted_at:
            raise RowRejected(
                f"a newer count of {row.sku} at {row.location} ({newest.isoformat()}) was already applied; "
                f"this one is from {row.counted_at.isoformat()}"
            )
        conn.execute(
            insert(stock_counts).values(
                idempotency_key=row.key,
                sku_id=sku_id,
                location_id=location_id,
                count_id=row.count_id,
                counted_quantity=row.counted_quantity,
                counted_at=row.counted_at,
                on_hand_before=on_hand,
                source=self.source,
            )
        )
        delta = row.counted_quantity - on_hand
        if delta:
            change_on_hand(conn, LedgerRow(row.key, sku_id, location_id, "adjust", delta, 0))
            units["adjusted"] += delta
        if row.counted_quantity < reserved:
            units["released"] += release_beyond_on_hand(conn, sku_id, location_id, f"stock count {row.key}")
        return True

    def _sale(self, conn: Connection, row: SaleRow, units: Counter[str]) -> bool:
        location_id = self.location(conn, row.location)
        self.check_row_units(conn, row.location, "quantity", row.quantity)
        recipe = self.recipe(conn, row.sku)  # in sku id order, as ingest locks levels
        parts, bundle = recipe or [(self.sku(conn, row.sku), row.sku, 1)], bool(recipe)
        entries = [
            LedgerRow(
                f"{row.key}@{code}" if bundle else row.key,
                sku_id,
                location_id,
                "deduct" if row.quantity > 0 else "restock",
                -row.quantity * per_unit,
                0,
            )
            for sku_id, code, per_unit in parts
        ]
        levels = [lock_level(conn, entry.sku_id, location_id) for entry in entries]
        before = conn.execute(
            select(stock_ledger.c.delta_on_hand).where(
                stock_ledger.c.idempotency_key == entries[0].idempotency_key
            )
        ).first()
        if before is not None:  # every entry of the row was written in one transaction
            if before.delta_on_hand == entries[0].delta_on_hand:
                record_store_sale(conn, row, location_id, self.sku(conn, row.sku), self.source)
                return False
            raise RowRejected(
                f"receipt line {row.key} was already imported with quantity "
                f"{-before.delta_on_hand // parts[0][2]}; this row says {row.quantity}"
            )
        for (_, code, _), entry, (on_hand, _) in zip(parts, entries, levels, strict=True):
            if on_hand + entry.delta_on_hand < 0:
                what = (
                    f"{-entry.delta_on_hand} of {code}, in {row.quantity} x bundle {row.sku},"
                    if bundle
                    else f"{row.quantity} of {row.sku}"
                )
                raise RowRejected(
                    f"sells {what} at {row.location} but only {on_hand} are on hand: "
                    f"count the shelf (a stock count corrects on-hand), then import the file again"
                )
        for entry, (on_hand, reserved) in zip(entries, levels, strict=True):
            change_on_hand(conn, entry)
            if on_hand + entry.delta_on_hand < reserved:
                units["released"] += release_beyond_on_hand(
                    conn, entry.sku_id, location_id, f"store sale {row.key}"
                )
        record_store_sale(conn, row, location_id, self.sku(conn, row.sku), self.source)  # for sales reports
        units["sold" if row.quantity > 0 else "returned"] += abs(row.quantity)
        return True


# -- helpers -------------------------------------------------------------------------------------


def _digest(raw: dict[str, str]) -> str:
    return queue.digest_of(queue.canonical_json(raw))


def _resolve_bad_rows(conn: Connection, good: list[tuple[int | None, str]]) -> None:
    """Rows that applied now: open ``bad_import_row`` exceptions of the same rows are cleared."""
    if not good:
        return
    closed = conn.execute(
        text(
            """
            UPDATE exceptions e
               SET status = 'resolved', resolved_at = now(), updated_at = now(), note = :note
              FROM raw_payloads r
             WHERE e.raw_payload_id = r.id AND e.reason = :reason AND e.status = 'open'
               AND (r.channel_id IS NULL OR r.channel_id = ANY(CAST(:channel_ids AS bigint[])))
               AND r.digest = ANY(CAST(:digests AS text[]))
            RETURNING e.id
            """
        ),
        {
            "note": BAD_ROW_CLEARED,
            "reason": BAD_ROW,
            "channel_ids": sorted({channel_id for channel_id, _ in good if channel_id is not None}),
            "digests": sorted({digest for _, digest in good}),
        },
    ).scalars()
    queue.log_auto_resolved(conn, list(closed), BAD_ROW_CLEARED)


def _ref_text(row: ShipmentRow) -> str:
    return f"line {row.line_id}" if row.line_id else f"sku {row.sku}"
