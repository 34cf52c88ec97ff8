"""The rows of every store file kind, as typed records: columns per kind, one builder per kind. Pure.

``canonical.store_files`` reads a file's records and calls ``build_row(kind, line, raw)`` per record: the
typed row, or ``RowInvalid`` saying why the row does not fit (it becomes a ``BadRow``; the rest of the file
goes on). Times are ISO-8601; one without an offset is in the zone ``LOCAL_ZONE`` holds while a file is read
(UTC unless its source declares one). Counts are whole numbers. A new kind is its columns, its frozen row
type (``line``, ``raw``, a ``key`` naming it in the ledger) and its builder here; docs/store-imports.md.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation

KINDS = (
    "shipments",
    "counts",
    "sales",
    # Transfers (调拨) and purchase receipts (采购入库): rows applied by warehouse.transfers and
    # warehouse.purchase_receipts (docs/transfers-and-receipts.md).
    "transfers",
    "transfer_receipts",
    "expected_deliveries",
    "receipts",
    "returns",  # returns and exchanges (退换货): rows applied by warehouse.returns (docs/returns.md)
)
STORE_CURRENCY = "CNY"  # a priced sales row without a currency column: the stores' till currency
_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_UNITS = 2**31 - 1
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")

# Per kind: columns the header must have, and columns it may have. Shipments need line_id or sku (or both).
REQUIRED = {
    "shipments": (
        "shipment_id",
        "channel",
        "order_id",
        "quantity",
        "carrier",
        "tracking_number",
        "shipped_at",
    ),
    "counts": ("location", "sku", "counted_quantity", "counted_at"),
    "sales": ("receipt_id", "line_no", "location", "sku", "quantity", "sold_at"),
    # Transfers and purchase receipts; their Chinese names are in canonical.store_headers.
    "transfers": ("transfer_id", "line_no", "from_location", "to_location", "sku", "quantity", "sent_at"),
    # Needs line_no or sku (or both).
    "transfer_receipts": ("transfer_id", "receipt_id", "received_quantity", "received_at"),
    "expected_deliveries": ("po_id", "supplier", "location", "sku", "quantity", "expected_at"),
    "receipts": ("receipt_id", "po_id", "sku", "received_quantity", "received_at"),
    # Returns (退换货): 退货单号, 行号, 门店, 商品编码, 数量, 退货原因, 退货时间 (canonical.store_headers).
    "returns": ("return_id", "line_no", "location", "sku", "quantity", "reason", "returned_at"),
}
OPTIONAL = {
    "shipments": ("line_id", "sku", "location"),
    "counts": ("count_id",),
    "sales": ("unit_price", "amount", "currency"),  # the price, for sales reports; stock needs none
    "transfers": (),
    "transfer_receipts": ("line_no", "sku"),
    "expected_deliveries": (),
    "receipts": (),
    # order_line_id: the channel's line id; line_id (子订单号) as shipments name it is the same column.
    "returns": ("channel", "order_id", "order_line_id", "line_id", "exchange_sku", "exchange_quantity"),
}


# The zone of times written without an offset, while one file's rows are built (a source's ``timezone``:
# store systems and spreadsheets write local times; an .xlsx date-time cell has no offset at all).
LOCAL_ZONE: ContextVar[tzinfo] = ContextVar("store_file_local_zone", default=UTC)
TIMEZONE_KEY = "_timezone"  # in a row's raw fields: the zone its times without an offset were read in


class RowInvalid(ValueError):
    """One row's problem (becomes a BadRow)."""


@dataclass(frozen=True, slots=True)
class ShipmentRow:
    """Units of one order line (by its line id, or by SKU) that left in one shipment."""

    line: int
    raw: dict[str, str]
    shipment_id: str
    channel: str
    order_id: str  # the channel's external order id
    line_id: str | None  # the channel's external line id
    sku: str | None  # internal SKU code, or the channel's SKU code as on the order line
    quantity: int
    carrier: str | None
    tracking_number: str | None
    shipped_at: datetime
    location: str | None  # None: the channel's fulfilment location

    @property
    def line_ref(self) -> str:
        return f"line:{self.line_id}" if self.line_id else f"sku:{self.sku}"

    @property
    def key(self) -> str:
        return f"ship:{self.channel}:{self.shipment_id}:{self.line_ref}"


@dataclass(frozen=True, slots=True)
class CountRow:
    """A stock count (盘点): the units of a SKU found at a location at ``counted_at``."""

    line: int
    raw: dict[str, str]
    count_id: str | None
    location: str
    sku: str
    counted_quantity: int
    counted_at: datetime

    @property
    def key(self) -> str:
        return f"count:{self.location}:{self.sku}:{self.count_id or _iso(self.counted_at)}"


@dataclass(frozen=True, slots=True)
class SaleRow:
    """A store (POS) receipt line: units sold over the counter; a negative quantity is a return."""

    line: int
    raw: dict[str, str]
    receipt_id: str
    line_no: str
    location: str
    sku: str
    quantity: int
    sold_at: datetime
    # Optional, for sales reports: the price of one unit and the line's money (after discounts; positive,
    # also for a return), in ``currency`` (ISO 4217; the file's column, else ``STORE_CURRENCY``).
    unit_price: Decimal | None = None
    amount: Decimal | None = None
    currency: str | None = None

    @property
    def key(self) -> str:
        return f"pos:{self.location}:{self.receipt_id}:{self.line_no}"

    @property
    def line_amount(self) -> Decimal | None:
        """The line's money: ``amount`` when given, else unit price x units; None without a price."""
        if self.amount is not None:
            return self.amount
        return None if self.unit_price is None else self.unit_price * abs(self.quantity)


@dataclass(frozen=True, slots=True)
class TransferRow:
    """One line of a transfer (调拨单) sent out of ``from_location`` towards ``to_location``."""

    line: int
    raw: dict[str, str]
    transfer_id: str
    line_no: str
    from_location: str
    to_location: str
    sku: str
    quantity: int
    sent_at: datetime

    @property
    def key(self) -> str:
        return f"transfer:{self.transfer_id}:{self.line_no}"


@dataclass(frozen=True, slots=True)
class TransferReceiptRow:
    """Units of one transfer line (by its line_no, or by SKU) that arrived at the destination."""

    line: int
    raw: dict[str, str]
    transfer_id: str
    receipt_id: str
    line_no: str | None
    sku: str | None
    received_quantity: int
    received_at: datetime

    @property
    def line_ref(self) -> str:
        return f"line:{self.line_no}" if self.line_no else f"sku:{self.sku}"

    @property
    def key(self) -> str:
        return f"transfer:{self.transfer_id}:receipt:{self.receipt_id}:{self.line_ref}"


@dataclass(frozen=True, slots=True)
class ExpectedDeliveryRow:
    """One line of a purchase order (采购单): units of a SKU a supplier is to deliver at a location."""

    line: int
    raw: dict[str, str]
    po_id: str
    supplier: str
    location: str
    sku: str
    quantity: int
    expected_at: datetime

    @property
    def key(self) -> str:
        return f"po:{self.po_id}:{self.sku}"


@dataclass(frozen=True, slots=True)
class PurchaseReceiptRow:
    """Units of a SKU received (采购入库) against an expected delivery."""

    line: int
    raw: dict[str, str]
    receipt_id: str
    po_id: str
    sku: str
    received_quantity: int
    received_at: datetime

    @property
    def key(self) -> str:
        return f"receipt:{self.po_id}:{self.receipt_id}:{self.sku}"


@dataclass(frozen=True, slots=True)
class ReturnRow:
    """Units of one SKU returned at a store or warehouse (退货): of a channel order's line (channel, order id,
    and the line by its id, else by SKU) or a walk-in return (no order). An exchange (换货) names the
    replacement SKU (and quantity, default the returned quantity), reserved at the same location."""

    line: int
    raw: dict[str, str]
    return_id: str
    line_no: str
    location: str  # where it was received
    sku: str  # internal SKU code, or the channel's SKU code as on the order line
    quantity: int
    reason: str  # a return reason code: it says whether the units are sellable or damaged
    returned_at: datetime
    channel: str | None
    order_id: str | None  # the channel's external order id; None: a walk-in return
    order_line_id: str | None  # the channel's external line id; None: the order's line with this SKU
    exchange_sku: str | None
    exchange_quantity: int | None

    @property
    def key(self) -> str:
        return f"return:{self.location}:{self.return_id}:{self.line_no}"


Row = (
    ShipmentRow
    | CountRow
    | SaleRow
    | TransferRow
    | TransferReceiptRow
    | ExpectedDeliveryRow
    | PurchaseReceiptRow
    | ReturnRow
)


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str
    raw: dict[str, str]


# -- fields --------------------------------------------------------------------------------------


def _text(raw: dict[str, str], name: str, *, required: bool = True) -> str | None:
    value = (raw.get(name) or "").strip()
    if not value:
        if required:
            raise RowInvalid(f"{name} is empty")
        return None
    return value


def _units(raw: dict[str, str], name: str, *, minimum: int) -> int:
    value = _text(raw, name) or ""
    if not _WHOLE_NUMBER.fullmatch(value):
        raise RowInvalid(f"{name} {value[:40]!r} is not a whole number")
    if len(value.lstrip("+-").lstrip("0")) > len(str(MAX_UNITS)):  # int() refuses past 4,300 digits
        raise RowInvalid(f"{name} has {len(value)} digits: out of range (at most {MAX_UNITS})")
    units = int(value)
    if units < minimum or abs(units) > MAX_UNITS:
        raise RowInvalid(f"{name} {units} is out of range (at least {minimum}, at most {MAX_UNITS})")
    return units


def _instant(raw: dict[str, str], name: str) -> datetime:
    value = _text(raw, name) or ""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RowInvalid(
            f"{name} {value!r} is not an ISO-8601 time (e.g. 2026-11-20T14:05:00+08:00)"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_ZONE.get())).astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- rows ----------------------------------------------------------------------------------------


def _shipment(line: int, raw: dict[str, str]) -> ShipmentRow:
    line_id, sku = _text(raw, "line_id", required=False), _text(raw, "sku", required=False)
    if line_id is None and sku is None:
        raise RowInvalid("line_id and sku are both empty: name the order line by one of them")
    return ShipmentRow(
        line=line,
        raw=raw,
        shipment_id=_text(raw, "shipment_id") or "",
        channel=_text(raw, "channel") or "",
        order_id=_text(raw, "order_id") or "",
        line_id=line_id,
        sku=sku,
        quantity=_units(raw, "quantity", minimum=1),
        carrier=_text(raw, "carrier", required=False),
        tracking_number=_text(raw, "tracking_number", required=False),
        shipped_at=_instant(raw, "shipped_at"),
        location=_text(raw, "location", required=False),
    )


def _count(line: int, raw: dict[str, str]) -> CountRow:
    return CountRow(
        line=line,
        raw=raw,
        count_id=_text(raw, "count_id", required=False),
        location=_text(raw, "location") or "",
        sku=_text(raw, "sku") or "",
        counted_quantity=_units(raw, "counted_quantity", minimum=0),
        counted_at=_instant(raw, "counted_at"),
    )


def _money(raw: dict[str, str], name: str) -> Decimal | None:
    value = _text(raw, name, required=False)
    if value is None:
        return None
    try:
        money = Decimal(value)  # "12,50" or "1,250" is refused: which one the till meant is a guess
    except InvalidOperation:
        raise RowInvalid(f"{name} {value[:40]!r} is not a number (e.g. 12.50)") from None
    if not money.is_finite() or abs(money) >= 10**12:
        raise RowInvalid(f"{name} {value[:40]!r} is out of range")
    return money


def _sale(line: int, raw: dict[str, str]) -> SaleRow:
    quantity = _units(raw, "quantity", minimum=-MAX_UNITS)
    if quantity == 0:
        raise RowInvalid("quantity is 0: a sale sells at least one unit (a return is negative)")
    unit_price, amount = _money(raw, "unit_price"), _money(raw, "amount")
    if unit_price is not None and unit_price < 0:
        raise RowInvalid(f"unit_price {unit_price} is negative (a return is a negative quantity)")
    if amount is not None and amount < 0:
        if quantity > 0:
            raise RowInvalid(f"amount {amount} is negative for a sale of {quantity} units")
        amount = -amount  # a return's money, written as the till prints it
    currency = (_text(raw, "currency", required=False) or "").upper() or None
    if currency is not None and not _CURRENCY.fullmatch(currency):
        raise RowInvalid(f"currency {currency[:40]!r} is not an ISO 4217 code (e.g. CNY)")
    priced = unit_price is not None or amount is not None
    return SaleRow(
        line=line,
        raw=raw,
        receipt_id=_text(raw, "receipt_id") or "",
        line_no=_text(raw, "line_no") or "",
        location=_text(raw, "location") or "",
        sku=_text(raw, "sku") or "",
        quantity=quantity,
        sold_at=_instant(raw, "sold_at"),
        unit_price=unit_price,
        amount=amount,
        currency=(currency or STORE_CURRENCY) if priced else currency,
    )


def _transfer(line: int, raw: dict[str, str]) -> TransferRow:
    return TransferRow(
        line=line,
        raw=raw,
        transfer_id=_text(raw, "transfer_id") or "",
        line_no=_text(raw, "line_no") or "",
        from_location=_text(raw, "from_location") or "",
        to_location=_text(raw, "to_location") or "",
        sku=_text(raw, "sku") or "",
        quantity=_units(raw, "quantity", minimum=1),
        sent_at=_instant(raw, "sent_at"),
    )


def _transfer_receipt(line: int, raw: dict[str, str]) -> TransferReceiptRow:
    line_no, sku = _text(raw, "line_no", required=False), _text(raw, "sku", required=False)
    if line_no is None and sku is None:
        raise RowInvalid("line_no and sku are both empty: name the transfer line by one of them")
    return TransferReceiptRow(
        line=line,
        raw=raw,
        transfer_id=_text(raw, "transfer_id") or "",
        receipt_id=_text(raw, "receipt_id") or "",
        line_no=line_no,
        sku=sku,
        received_quantity=_units(raw, "received_quantity", minimum=1),
        received_at=_instant(raw, "received_at"),
    )


def _expected_delivery(line: int, raw: dict[str, str]) -> ExpectedDeliveryRow:
    return ExpectedDeliveryRow(
        line=line,
        raw=raw,
        po_id=_text(raw, "po_id") or "",
        supplier=_text(raw, "supplier") or "",
        location=_text(raw, "location") or "",
        sku=_text(raw, "sku") or "",
        quantity=_units(raw, "quantity", minimum=1),
        expected_at=_instant(raw, "expected_at"),
    )


def _purchase_receipt(line: int, raw: dict[str, str]) -> PurchaseReceiptRow:
    return PurchaseReceiptRow(
        line=line,
        raw=raw,
        receipt_id=_text(raw, "receipt_id") or "",
        po_id=_text(raw, "po_id") or "",
        sku=_text(raw, "sku") or "",
        received_quantity=_units(raw, "received_quantity", minimum=1),
        received_at=_instant(raw, "received_at"),
    )


def _return(line: int, raw: dict[str, str]) -> ReturnRow:
    channel, order_id = _text(raw, "channel", required=False), _text(raw, "order_id", required=False)
    order_line_id = _text(raw, "order_line_id", required=False)
    line_id = _text(raw, "line_id", required=False)
    if None not in (order_line_id, line_id) and order_line_id != line_id:
        raise RowInvalid(f"order_line_id {order_line_id!r} and line_id {line_id!r} name two lines: keep one")
    order_line_id = order_line_id or line_id
    if (channel is None) != (order_id is None):
        raise RowInvalid("channel and order_id go together: both for a channel order, neither for a walk-in")
    if order_line_id is not None and order_id is None:
        raise RowInvalid("order_line_id names a line of an order: order_id and channel are empty")
    exchange_sku = _text(raw, "exchange_sku", required=False)
    exchange_quantity = None
    if _text(raw, "exchange_quantity", required=False) is not None:
        if exchange_sku is None:
            raise RowInvalid("exchange_quantity without exchange_sku: name the replacement SKU")
        exchange_quantity = _units(raw, "exchange_quantity", minimum=1)
    quantity = _units(raw, "quantity", minimum=1)
    return ReturnRow(
        line=line,
        raw=raw,
        return_id=_text(raw, "return_id") or "",
        line_no=_text(raw, "line_no") or "",
        location=_text(raw, "location") or "",
        sku=_text(raw, "sku") or "",
        quantity=quantity,
        reason=(_text(raw, "reason") or "").lower(),
        returned_at=_instant(raw, "returned_at"),
        channel=channel,
        order_id=order_id,
        order_line_id=order_line_id,
        exchange_sku=exchange_sku,
        exchange_quantity=quantity if exchange_sku and exchange_quantity is None else exchange_quantity,
    )


_BUILDERS = {
    "shipments": _shipment,
    "counts": _count,
    "sales": _sale,
    "transfers": _transfer,
    "transfer_receipts": _transfer_receipt,
    "expected_deliveries": _expected_delivery,
    "receipts": _purchase_receipt,
    "returns": _return,
}


def build_row(kind: str, line: int, raw: dict[str, str]) -> Row:
    """The typed row of ``kind`` that ``raw`` (column -> text) is, or ``RowInvalid``."""
    return _BUILDERS[kind](line, raw)
