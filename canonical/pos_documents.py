"""A store system's POS document (sale, return, count) -> the store files' typed rows. Pure: bytes in.

The live POS feed (docs/pos-feed.md) takes JSON documents that say what a sales, counts file row says, so
their lines are applied by exactly the files' rules: a sale line is a ``SaleRow`` (key
``pos:<location>:<document_id>:<line_no>``, the key of a sales file row with ``receipt_id`` = the document
id), a count line a ``CountRow`` (``count_id`` = the document id), a return line a ``SaleRow`` of a negative
quantity, or a ``ReturnRow`` (``warehouse.returns``) when it is damaged or names its channel order
(``return_row``).

``parse_document`` refuses a document that cannot be applied at all with ``BadPosDocument`` (400: not JSON;
422: not the schema ``schemas/pos_document.schema.json``, a time without an offset, a line number twice, a
SKU counted twice); a line that breaks a business rule is the warehouse's to refuse, the rest going on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from canonical.store_files import STORE_CURRENCY, BadRow, CountRow, ReturnRow, Row, SaleRow

SCHEMA_PATH = Path(__file__).parent / "schemas" / "pos_document.schema.json"
MAX_SCHEMA_ERRORS = 10


class BadPosDocument(ValueError):
    """A document that cannot be applied at all: ``reason`` one line, ``errors`` the schema's findings."""

    def __init__(self, reason: str, errors: tuple[str, ...] = (), status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors
        self.status = status


@dataclass(frozen=True, slots=True)
class PosLine:
    line_no: int
    sku: str
    quantity: int | None  # units sold or returned (sale, return)
    counted_quantity: int | None  # units found (count)
    unit_price: str | None
    reason: str  # a return: sellable | damaged
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PosDocument:
    document_id: str
    type: str  # sale | return | count
    location: str
    occurred_at: datetime
    lines: tuple[PosLine, ...]
    body: Mapping[str, Any]  # as posted (decoded JSON): what the warehouse keeps and digests

    @property
    def kind(self) -> str:
        """The import kind its rows are of (names them in the exception queue, as a file's would)."""
        return "counts" if self.type == "count" else "sales"

    @property
    def source(self) -> str:
        return f"pos:{self.location}:{self.document_id}"


@cache
def schema_validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_document(body: bytes) -> PosDocument:
    """The document in ``body``, or ``BadPosDocument`` saying why it cannot be applied."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadPosDocument(f"the body is not UTF-8 (byte {err.start})", status=400) from None
    try:
        decoded = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise BadPosDocument(f"the body is not JSON: {str(err)[:200]}", status=400) from None
    errors = sorted(schema_validator().iter_errors(decoded), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        found = tuple(
            f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message[:200]}"
            for e in errors[:MAX_SCHEMA_ERRORS]
        )
        raise BadPosDocument("the document does not match the POS document schema", found)
    occurred_at = _instant(decoded["occurred_at"])
    lines = tuple(_line(raw) for raw in decoded["lines"])
    _unique(lines, lambda line: line.line_no, "line_no")
    if decoded["type"] == "count":
        _unique(lines, lambda line: line.sku, "sku")  # two counts of one SKU in one count: which is it?
    return PosDocument(
        document_id=decoded["document_id"],
        type=decoded["type"],
        location=decoded["location"],
        occurred_at=occurred_at,
        lines=lines,
        body=decoded,
    )


def document_rows(document: PosDocument) -> list[Row | BadRow]:
    """The rows the document's lines are, in line order (``Row.line`` is the line number)."""
    if document.type == "sale":
        return [_sale_row(document, line, line.quantity or 0) for line in document.lines]
    if document.type == "count":
        return [_count_row(document, line) for line in document.lines]
    return [return_row(document, line) for line in document.lines]


# ----------------------------------------------------------------------------------------------------------
# RETURNS. A walk-in return of sellable goods stays a store sale of a negative quantity: it restocks at the
# document's location (ledger ``restock``, key ``pos:...``) and its till money reaches the sales reports
# (store_sales). A line returned ``damaged``, or naming the channel order it came from (``channel`` and
# ``order_id``, optionally ``order_line_id``), is a return of ``warehouse.returns`` (``ReturnRow``, key
# ``return:<location>:<document_id>:<line_no>``): damaged units go to the store's damaged location, and an
# order's return is checked against what shipped, counts on its line and links to the channel's refund.
# ----------------------------------------------------------------------------------------------------------
def return_row(document: PosDocument, line: PosLine) -> Row | BadRow:
    channel, order_id = line.raw.get("channel"), line.raw.get("order_id")
    if line.reason != "damaged" and channel is None and order_id is None:
        return _sale_row(document, line, -(line.quantity or 0))
    raw = {
        "return_id": document.document_id,
        "line_no": str(line.line_no),
        "location": document.location,
        "sku": line.sku,
        "quantity": str(line.quantity),
        "reason": line.reason,
        "returned_at": document.body["occurred_at"],
        "channel": channel or "",
        "order_id": order_id or "",
        "order_line_id": line.raw.get("order_line_id") or "",
    }
    if (channel is None) != (order_id is None):
        return BadRow(
            line.line_no, "channel and order_id go together: both for a channel order's return", raw
        )
    return ReturnRow(
        line=line.line_no,
        raw=raw,
        return_id=document.document_id,
        line_no=str(line.line_no),
        location=document.location,
        sku=line.sku,
        quantity=line.quantity or 0,
        reason=line.reason,
        returned_at=document.occurred_at,
        channel=channel,
        order_id=order_id,
        order_line_id=line.raw.get("order_line_id"),
        exchange_sku=None,
        exchange_quantity=None,
    )


# -- helpers -------------------------------------------------------------------------------------------------


def _sale_row(document: PosDocument, line: PosLine, quantity: int) -> SaleRow:
    # The raw row a sales file would hold for this line: its queue entry is that row's.
    raw = {
        "receipt_id": document.document_id,
        "line_no": str(line.line_no),
        "location": document.location,
        "sku": line.sku,
        "quantity": str(quantity),
        "sold_at": document.body["occurred_at"],
    }
    if line.unit_price is not None:
        raw["unit_price"] = line.unit_price
    return SaleRow(
        line=line.line_no,
        raw=raw,
        receipt_id=document.document_id,
        line_no=str(line.line_no),
        location=document.location,
        sku=line.sku,
        quantity=quantity,
        sold_at=document.occurred_at,
        # The till's price, for sales reports (store_sales); the stores' currency (STORE_CURRENCY).
        unit_price=None if line.unit_price is None else Decimal(line.unit_price),
        currency=None if line.unit_price is None else STORE_CURRENCY,
    )


def _count_row(document: PosDocument, line: PosLine) -> CountRow:
    raw = {
        "count_id": document.document_id,
        "location": document.location,
        "sku": line.sku,
        "counted_quantity": str(line.counted_quantity),
        "counted_at": document.body["occurred_at"],
    }
    return CountRow(
        line=line.line_no,
        raw=raw,
        count_id=document.document_id,
        location=document.location,
        sku=line.sku,
        counted_quantity=line.counted_quantity or 0,
        counted_at=document.occurred_at,
    )


def _line(raw: Mapping[str, Any]) -> PosLine:
    price = raw.get("unit_price")
    return PosLine(
        line_no=int(raw["line_no"]),  # the schema's integer admits 2.0
        sku=raw["sku"],
        quantity=None if raw.get("quantity") is None else int(raw["quantity"]),
        counted_quantity=None if raw.get("counted_quantity") is None else int(raw["counted_quantity"]),
        unit_price=None if price is None else str(price),
        reason=raw.get("reason", "sellable"),
        raw=raw,
    )


def _instant(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadPosDocument(
            f"occurred_at {value!r} is not an ISO-8601 time (e.g. 2026-12-07T14:05:00+08:00)"
        ) from None
    if parsed.tzinfo is None:
        raise BadPosDocument(f"occurred_at {value!r} has no UTC offset (e.g. +08:00 or Z)")
    return parsed.astimezone(UTC)


def _unique(lines: tuple[PosLine, ...], key: Any, name: str) -> None:
    seen: dict[Any, int] = {}
    for index, line in enumerate(lines):
        value = key(line)
        if value in seen:
            raise BadPosDocument(
                f"{name} {value!r} is in lines/{seen[value]} and lines/{index}: once per document"
            )
        seen[value] = index
