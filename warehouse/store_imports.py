"""Store and warehouse systems in: every store file kind, run one way (each kind's rules are its module's).

``import_file(engine, kind, path)`` reads the file (``canonical.store_read``: CSV in UTF-8, UTF-8 with BOM
or GB18030, or .xlsx; ``canonical.store_files`` makes typed rows) and applies its rows in chunks, one
transaction per chunk and a savepoint per row, so a row the database refuses is reported and the rest goes
on. Every row is idempotent: importing a file again changes nothing. ``import_rows`` applies rows already
parsed (the live POS feed's documents). Counts and sales are applied here; the other kinds by their own
modules (``ROW_APPLIERS``): shipments ``warehouse.store_shipments``, transfers and their receipts
``warehouse.transfers``, expected deliveries and purchase receipts ``warehouse.purchase_receipts``, returns
and exchanges ``warehouse.returns``.

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

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert

from canonical.store_files import (
    KINDS,
    BadRow,
    CountRow,
    ImportFileError,
    Row,
    SaleRow,
    parse_csv,
)
from canonical.store_read import FileOptions, read_file
from warehouse import exceptions as queue
from warehouse import purchase_receipts, returns, store_shipments, transfers
from warehouse.db_errors import DB_ERRORS, error_text, raise_unless_the_rows_fault
from warehouse.exceptions import ExceptionRecord
from warehouse.import_rows import (
    CatalogLookups,
    RowApplier,
    RowRejected,
    change_on_hand,
    lock_level,
)
from warehouse.ingest import (
    _retrying,
    release_beyond_on_hand,
)
from warehouse.models import (
    stock_counts,
    stock_ledger,
)
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
ROW_APPLIERS: dict[type, RowApplier] = {
    **store_shipments.APPLIERS,  # shipments
    **transfers.APPLIERS,  # transfers, transfer_receipts
    **purchase_receipts.APPLIERS,  # expected_deliveries, receipts
    **returns.APPLIERS,  # returns (退换货)
}


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
