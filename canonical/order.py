"""The canonical order: the one shape every platform mapping produces and the warehouse consumes.

The JSON form (``to_json``) is specified by ``schemas/canonical_order.schema.json``; design.md lists
the minimum contract. Inside the hub times are timezone-aware UTC ``datetime`` and money is ``Decimal``
in major units of the order's currency; the JSON form renders them as "...Z" strings and decimal strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Literal

PaymentStatus = Literal["unpaid", "authorized", "paid", "partially_refunded", "refunded", "voided"]
FulfillmentStatus = Literal["unfulfilled", "partial", "fulfilled"]

PAYMENT_STATUSES: tuple[str, ...] = PaymentStatus.__args__  # type: ignore[attr-defined]
FULFILLMENT_STATUSES: tuple[str, ...] = FulfillmentStatus.__args__  # type: ignore[attr-defined]


class MappingError(ValueError):
    """A payload that cannot become a canonical order. ``reason`` is the exception-queue reason code."""

    def __init__(self, detail: str, reason: str = "mapping_failed") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class NotAnOrder(Exception):
    """A payload the platform lists among orders that is none (a WooCommerce checkout draft: a cart in
    checkout). Not an error: the pipeline counts it as skipped and lands nothing."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(slots=True)
class Totals:
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    refunded: Decimal = Decimal("0")


@dataclass(slots=True)
class Customer:
    external_id: str | None
    name: str | None
    email: str | None
    phone: str | None


@dataclass(slots=True)
class Address:
    name: str | None
    phone: str | None
    country_code: str | None
    province: str | None
    city: str | None
    district: str | None
    address1: str | None
    address2: str | None
    postal_code: str | None


@dataclass(slots=True)
class OrderLine:
    external_line_id: str
    sku: str | None  # the merchant's SKU code as the channel holds it; None when the channel has none
    channel_product_id: str | None
    channel_variant_id: str | None
    title: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    shipped_quantity: int = 0
    refunded_quantity: int = 0
    # Of the refunded units, how many the platform says went back to stock (Shopify restock_type).
    restocked_quantity: int = 0


@dataclass(slots=True)
class CanonicalOrder:
    platform: str
    external_id: str
    number: str
    created_at: datetime
    updated_at: datetime
    currency: str
    payment_status: PaymentStatus
    fulfillment_status: FulfillmentStatus
    cancelled: bool
    totals: Totals
    lines: list[OrderLine] = field(default_factory=list)
    customer: Customer | None = None
    shipping_address: Address | None = None
    cancelled_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict of the canonical contract (decimal strings, UTC "Z" times)."""
        return _jsonable(self)


def utc_iso(value: datetime) -> str:
    """ISO-8601 in UTC with a "Z", to the second (every platform here has second precision)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: convert platform times to UTC at the edge")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return utc_iso(value)
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@cache
def canonical_order_schema() -> dict[str, Any]:
    text = resources.files("canonical").joinpath("schemas/canonical_order.schema.json").read_text()
    return json.loads(text)
