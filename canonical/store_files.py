"""Store and warehouse files -> typed rows. Pure: records in, typed rows and bad rows out; no database.

The kinds, their columns and row types are ``canonical.store_rows``' (re-exported here, where importers look).

The formats (docs/store-imports.md): a header row naming the columns (any order and case, English or the
Chinese names of ``canonical.store_headers``; extra columns are ignored), one record per row, blank rows
skipped. Times are ISO-8601; a time without an offset is UTC, or in the source's time zone when its folder
declares one (``timezone``). Counts are whole numbers. Reading the bytes
(CSV in UTF-8, UTF-8 with BOM or GB18030, or an .xlsx sheet) into (line, fields) records is
``canonical.store_read``'s; everything after it (``parse_records``) is shared by every form.

A row that does not fit becomes a ``BadRow`` (its line number in the file, the reason, the raw row) and the
rest of the file goes on. A file that cannot be read as this kind at all (not UTF-8, no header, a header
without a required column) raises ``ImportFileError``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from canonical.store_headers import HeaderError, resolve_header
from canonical.store_rows import (
    KINDS,
    LOCAL_ZONE,
    MAX_UNITS,
    OPTIONAL,
    REQUIRED,
    STORE_CURRENCY,
    TIMEZONE_KEY,
    BadRow,
    CountRow,
    ExpectedDeliveryRow,
    PurchaseReceiptRow,
    ReturnRow,
    Row,
    RowInvalid,
    SaleRow,
    ShipmentRow,
    TransferReceiptRow,
    TransferRow,
    build_row,
)

__all__ = [
    "KINDS",
    "MAX_UNITS",
    "OPTIONAL",
    "REQUIRED",
    "STORE_CURRENCY",
    "TIMEZONE_KEY",
    "BadRow",
    "CountRow",
    "ExpectedDeliveryRow",
    "ImportFileError",
    "ParsedFile",
    "PurchaseReceiptRow",
    "ReturnRow",
    "Row",
    "SaleRow",
    "ShipmentRow",
    "TransferReceiptRow",
    "TransferRow",
    "csv_records",
    "header_columns",
    "parse_csv",
    "parse_records",
    "time_zone",
]


class ImportFileError(ValueError):
    """The file cannot be imported at all (unreadable, not in its declared encoding, header missing a column,
    unknown kind). ``reason`` is the typed cause (snake_case), the message says it for a person."""

    def __init__(self, message: str, reason: str = "unreadable_file") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ParsedFile:
    kind: str
    rows: list[Row] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return len(self.rows) + len(self.bad)

    def in_file_order(self) -> list[Row | BadRow]:
        return sorted([*self.rows, *self.bad], key=lambda item: item.line)


def parse_csv(
    kind: str, text: str, headers: Mapping[str, str | None] | None = None, timezone: str | None = None
) -> ParsedFile:
    """Every row of CSV ``text`` as a typed record of ``kind``, or a BadRow saying why not. ``headers``: the
    source's own header names (name -> canonical column), over the built-in ones; ``timezone``: of times
    without an offset."""
    return parse_records(kind, csv_records(text), headers, timezone)


def parse_records(
    kind: str,
    records: Iterable[tuple[int, list[str]]],
    headers: Mapping[str, str | None] | None = None,
    timezone: str | None = None,
) -> ParsedFile:
    """Every record (line number, fields) after the header record as a typed row of ``kind``, or a BadRow.
    ``timezone`` (IANA, e.g. Asia/Shanghai): the zone of times written without an offset (default UTC)."""
    zone = time_zone(timezone)
    token = LOCAL_ZONE.set(zone)
    try:
        parsed = _parse_records(kind, records, headers)
    finally:
        LOCAL_ZONE.reset(token)
    if zone is not UTC:  # a row kept raw (queued) is retried in the zone it was read in
        for item in (*parsed.rows, *parsed.bad):
            item.raw[TIMEZONE_KEY] = str(timezone)
    return parsed


def time_zone(name: str | None) -> tzinfo:
    """The zone named ``name`` (None or "UTC": UTC), or ImportFileError."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportFileError(
            f"unknown time zone {name!r} (e.g. Asia/Shanghai)", "unknown_time_zone"
        ) from None


def _parse_records(
    kind: str, records: Iterable[tuple[int, list[str]]], headers: Mapping[str, str | None] | None
) -> ParsedFile:
    if kind not in KINDS:
        raise ImportFileError(f"unknown import kind {kind!r}: expected one of {', '.join(KINDS)}")
    parsed = ParsedFile(kind)
    records = iter(records)
    header_line, header = next(records, (0, None))
    if header is None:
        raise ImportFileError("empty file: a header row naming the columns is required", "no_header")
    columns = header_columns(kind, header_line, header, headers)
    for line, values in records:
        raw = {name: values[i] for i, name in enumerate(columns) if i < len(values)}
        if len(values) > len(columns):
            raw["_extra"] = ",".join(values[len(columns) :])
        if len(values) != len(columns):
            parsed.bad.append(BadRow(line, f"expected {len(columns)} fields, got {len(values)}", raw))
            continue
        try:
            parsed.rows.append(build_row(kind, line, raw))
        except RowInvalid as err:
            parsed.bad.append(BadRow(line, str(err), raw))
    return parsed


def csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, its fields), blank lines skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for values in reader:
            if any(v.strip() for v in values):
                yield start, values
            start = reader.line_num + 1
    except csv.Error as err:
        raise ImportFileError(f"line {reader.line_num}: not valid CSV: {err}", "not_csv") from None


def header_columns(
    kind: str, line: int, header: list[str], headers: Mapping[str, str | None] | None = None
) -> list[str]:
    """The canonical column of each header cell (unknown cells keep their own name), or ImportFileError
    when the header is ambiguous or lacks a required column of ``kind``."""
    try:
        names = resolve_header(header, (*REQUIRED[kind], *OPTIONAL[kind]), headers)
    except HeaderError as err:
        raise ImportFileError(f"line {line}: {err}", "ambiguous_header") from None
    missing = [c for c in REQUIRED[kind] if c not in names]
    if kind == "shipments" and "line_id" not in names and "sku" not in names:
        missing.append("line_id or sku")
    if kind == "transfer_receipts" and "line_no" not in names and "sku" not in names:
        missing.append("line_no or sku")
    if missing:
        raise ImportFileError(
            f"line {line}: the header of a {kind} file lacks {', '.join(missing)} "
            f"(it has: {', '.join(h.strip() for h in header if h.strip()) or 'nothing'}; "
            "Chinese names: docs/store-imports.md, or map yours in the source's header map)",
            "header_lacks_column",
        )
    return names
