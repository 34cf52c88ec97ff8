"""A store file's bytes -> (line, fields) records -> typed rows: CSV in UTF-8 / UTF-8 with BOM / GB18030,
or an ``.xlsx`` workbook's sheet. Pure: bytes in, ``ParsedFile`` out.

The form is the file name's: ``.xlsx`` is a workbook, anything else CSV text. A workbook is read with
openpyxl (read-only, cached values, no macros), its first sheet or the named one; its cells become the text a
CSV would have held (``_cell_text``) and its row numbers are the line numbers in errors and the exception
queue, so both forms share everything after reading (``store_files.parse_records``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

from canonical.store_encoding import decode_bytes
from canonical.store_files import ImportFileError, ParsedFile, csv_records, header_columns, parse_records

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # .xls (Excel 97-2003) and other compound files


@dataclass(frozen=True)
class FileOptions:
    """How a source's files are read: declared encoding of its CSV files, its own header names (name ->
    canonical column, over the built-in ones), the sheet of its workbooks (None: the first), and the time
    zone of times written without an offset (None: UTC; .xlsx date-time cells never have one)."""

    encoding: str = "auto"
    headers: Mapping[str, str | None] = field(default_factory=dict)
    sheet: str | None = None
    timezone: str | None = None


def read_file(kind: str, data: bytes, name: str, options: FileOptions | None = None) -> ParsedFile:
    """Every row of the file ``name`` (its bytes ``data``) as a typed row of ``kind``, or a BadRow."""
    options = options or FileOptions()
    if data.startswith(OLE_MAGIC):
        raise ImportFileError(
            "an .xls (Excel 97-2003) workbook or another binary file: save it as .xlsx or CSV",
            "unsupported_form",
        )
    if name.lower().endswith(".xlsx"):
        return parse_records(kind, xlsx_records(data, options.sheet), options.headers, options.timezone)
    if data.startswith(ZIP_MAGIC):
        raise ImportFileError(
            "a zip archive (an .xlsx workbook?) named as CSV: name it .xlsx, or save it as CSV",
            "unsupported_form",
        )

    def recognises(text: str) -> bool:
        first = next(csv_records_safely(text), None)
        if first is None:
            return False
        try:
            header_columns(kind, first[0], first[1], options.headers)
        except ImportFileError:
            return False
        return True

    text = decode_bytes(data, options.encoding, recognises)
    return parse_records(kind, csv_records(text), options.headers, options.timezone)


def csv_records_safely(text: str) -> Iterator[tuple[int, list[str]]]:
    """``csv_records`` that ends where the text stops being CSV (for a look at the header only)."""
    try:
        yield from csv_records(text)
    except ImportFileError:
        return


def xlsx_records(data: bytes, sheet: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, cell texts) of the sheet's non-blank rows: trailing empty cells dropped, and
    a row shorter than the header (its last cells empty) padded to the header's width."""
    from openpyxl import load_workbook  # a workbook reader only where a workbook is read

    # A damaged workbook fails in openpyxl, zipfile or the XML parser with any of a dozen exception types,
    # on opening or halfway through the sheet: each is this file being unreadable, never a crash of the run.
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:
        why = f"not a readable .xlsx workbook: {_short(err)}"
        raise ImportFileError(why, "unreadable_workbook") from None
    try:
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            raise ImportFileError(
                f"the workbook has no sheet {sheet!r} (it has: {', '.join(workbook.sheetnames)})",
                "no_such_sheet",
            )
        width = number = 0
        rows = worksheet.iter_rows()
        while True:
            try:
                cells = next(rows)
            except StopIteration:
                return
            except Exception as err:
                why = f"not a readable .xlsx workbook (at row {number + 1}): {_short(err)}"
                raise ImportFileError(why, "unreadable_workbook") from None
            number += 1
            values = [_cell_text(cell) for cell in cells]
            while values and not values[-1].strip():
                values.pop()
            if values:
                width = width or len(values)
                yield number, values + [""] * (width - len(values))
    finally:
        workbook.close()


def _short(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"[:300]


def _cell_text(cell: object) -> str:
    """A cell as the text a CSV export would hold: integral numbers without ".0", dates and times ISO-8601
    (a date-only format at midnight as the date), empty as ""."""
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if _finite(value) and value == int(value):
            return str(int(value))
        return str(value)
    if isinstance(value, datetime):
        number_format = str(getattr(cell, "number_format", "") or "").lower()
        if value.time() == time(0) and "h" not in number_format and "s" not in number_format:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _finite(value: float | Decimal) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))
