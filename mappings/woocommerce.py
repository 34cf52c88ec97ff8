"""WooCommerce REST API v3 order object -> CanonicalOrder. Pure: no I/O, no clock, no globals.

Choices this mapping makes (payload shape: platform-contracts.md section 2.5, the docs' orders 727/723):

- Times come from the ``*_gmt`` fields (naive UTC). The plain ``date_*`` fields are naive *site-local*
  times whose zone the payload does not name, so they are never used.
- Money is the order's ``currency``, decimal strings. totals.subtotal = the sum of ``line_items[].total``
  (after discounts, before tax) plus ``fee_lines[].total``, so subtotal + shipping + tax = total as in the
  other mappings; totals.discount = ``discount_total`` (excluding tax); shipping = ``shipping_total``;
  tax = ``total_tax``; total = ``total``; refunded = minus the sum of ``refunds[].total`` (they are
  negative: "-10.00").
- A line's unit_price = ``subtotal / quantity`` (before discounts) and line_total = ``total`` (after
  discounts, before tax). ``price`` is ignored: it is a JSON number (a float) and already discounted.
- SKU: ``sku`` "" becomes null, so the warehouse resolves the line through (``product_id``,
  ``variation_id``); ``variation_id`` 0 (a simple product) becomes a null variant id.
- Status. WooCommerce has one ``status``; payment and fulfilment are derived from it and the money facts:

  | status     | payment_status                         | fulfillment | cancelled | shipped  | refunded |
  |------------|----------------------------------------|-------------|-----------|----------|----------|
  | pending    | unpaid                                 | unfulfilled | no        | 0        | 0        |
  | on-hold    | authorized (awaiting capture/transfer) | unfulfilled | no        | 0        | 0        |
  | processing | paid                                   | unfulfilled | no        | 0        | 0        |
  | completed  | paid                                   | fulfilled   | no        | quantity | 0        |
  | refunded   | refunded                               | (*)         | no        | (*)      | quantity |
  | cancelled  | voided if never paid, else paid        | (*)         | yes       | (*)      | 0        |
  | failed     | voided (the payment failed; may retry) | unfulfilled | no        | 0        | 0        |
  | trash      | as cancelled                           | (*)         | yes       | (*)      | 0        |

  (*) fulfilled with shipped = quantity when ``date_completed_gmt`` is set (the order had been completed),
  else unfulfilled. Any refund on top turns "paid" into "partially_refunded" (or "refunded" once the
  refunds reach the total). Core WooCommerce records neither partial shipments nor which lines a partial
  refund covered in the order object (that needs ``GET /orders/{id}/refunds``), so a partial refund shows
  in totals.refunded only; a ``refunded`` order refunds every unit. Restocked quantities are 0: the order
  does not say whether refunded goods came back. ``checkout-draft`` and plugin statuses are refused.
- Line titles are ``name`` with its HTML entities decoded.
- customer: ``customer_id`` 0 is a guest (external_id null); name, email and phone come from ``billing``.
  shipping_address: ``shipping``; its phone (WC >= 5.6) falls back to the billing phone; null when blank.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from channelhub.canonical import Address, CanonicalOrder, Customer, MappingError, OrderLine, Totals
from mappings.common import (
    blank_to_none,
    id_str,
    join_name,
    map_identified,
    money,
    objects,
    parse_local_datetime,
)

PLATFORM = "woocommerce"
UTC_OFFSET = timedelta(0)

# status -> (base payment status, cancelled)
STATUSES: dict[str, tuple[str, bool]] = {
    "pending": ("unpaid", False),
    "on-hold": ("authorized", False),
    "processing": ("paid", False),
    "completed": ("paid", False),
    "refunded": ("refunded", False),
    "cancelled": ("paid", True),
    "failed": ("voided", False),
    "trash": ("paid", True),
}
_CANCELLED_BEFORE_PAYMENT = "voided"


def unwrap(document: Any) -> list[dict[str, Any]]:
    """The order objects in a WooCommerce document: a listing (a bare JSON list), one order object (GET
    /orders/{id}, or a webhook delivery), or a batch answer ``{"create": [...], "update": [...]}``."""
    if isinstance(document, list):
        for index, order in enumerate(document):
            if not isinstance(order, dict):
                raise MappingError(f"[{index}]: expected an order object, got {type(order).__name__}")
        return list(document)
    if not isinstance(document, dict):
        raise MappingError(f"expected a WooCommerce order document, got {type(document).__name__}")
    if "id" in document and ("line_items" in document or "status" in document):
        return [document]
    if {"create", "update"} & set(document):
        orders = [order for key in ("create", "update") for order in document.get(key) or []]
        return unwrap(orders)
    if "code" in document and "message" in document:
        raise MappingError(
            f"a WooCommerce error body, not an order: {document['code']}: {document['message']}"
        )
    raise MappingError(
        "not a WooCommerce order document: expected an order object or a list of them; "
        f"got keys {sorted(document)[:10]}"
    )


def map_order(payload: dict[str, Any]) -> CanonicalOrder:
    """One WooCommerce order object -> CanonicalOrder; MappingError("...") names what is wrong."""
    return map_identified("woocommerce", "WooCommerce", payload, "id", _map)


def _map(payload: dict[str, Any], external_id: str) -> CanonicalOrder:
    currency = payload.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise MappingError(f"currency: expected a 3-letter ISO 4217 code, got {currency!r}")
    status = payload.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise MappingError(f"status: unknown value {status!r} (known: {', '.join(STATUSES)})")
    number = blank_to_none(payload.get("number"), "number") or external_id

    updated_at = _gmt(payload, "date_modified_gmt")
    paid = _optional_gmt(payload, "date_paid_gmt") is not None
    completed = status == "completed" or (
        status in ("refunded", "cancelled", "trash")
        and _optional_gmt(payload, "date_completed_gmt") is not None
    )
    totals = _totals(payload)
    payment_status, cancelled = STATUSES[status]
    if cancelled and not paid and totals.refunded == 0:
        payment_status = _CANCELLED_BEFORE_PAYMENT  # nothing was captured: the payment is void
    if payment_status in ("paid", "authorized", "unpaid") and totals.refunded > 0:
        payment_status = "refunded" if totals.refunded >= totals.total else "partially_refunded"

    items = payload.get("line_items")
    if not isinstance(items, list):
        raise MappingError(f"line_items: expected a list, got {type(items).__name__}")
    lines = [
        _line(item, index, shipped_all=completed, refunded_all=status == "refunded")
        for index, item in enumerate(items)
    ]
    return CanonicalOrder(
        platform=PLATFORM,
        external_id=external_id,
        number=number,
        created_at=_gmt(payload, "date_created_gmt"),
        updated_at=updated_at,
        currency=currency,
        payment_status=payment_status,  # type: ignore[arg-type]
        fulfillment_status="fulfilled" if completed and lines else "unfulfilled",
        cancelled=cancelled,
        cancelled_at=updated_at if cancelled else None,  # WooCommerce keeps no cancel time
        totals=totals,
        lines=lines,
        customer=_customer(payload),
        shipping_address=_address(payload),
    )


# -- times and money -----------------------------------------------------------------------------


def _gmt(payload: dict[str, Any], key: str) -> datetime:
    return parse_local_datetime(payload.get(key), UTC_OFFSET, key)


def _optional_gmt(payload: dict[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    return None if value is None or value == "" else _gmt(payload, key)


def _required_money(obj: dict[str, Any], key: str, where: str = "") -> Decimal:
    if obj.get(key) is None:
        raise MappingError(f"{where}{key}: missing")
    return money(obj[key], f"{where}{key}")


def _totals(payload: dict[str, Any]) -> Totals:
    lines_total = sum(
        (
            _required_money(item, "total", f"line_items[{index}].")
            for index, item in enumerate(objects(payload, "line_items"))
        ),
        Decimal(0),
    )
    fees = sum(
        (
            _required_money(fee, "total", f"fee_lines[{index}].")
            for index, fee in enumerate(objects(payload, "fee_lines"))
        ),
        Decimal(0),
    )
    refunded = Decimal(0)
    for index, refund in enumerate(objects(payload, "refunds")):
        amount = _required_money(refund, "total", f"refunds[{index}].")
        if amount > 0:
            raise MappingError(
                f"refunds[{index}].total: {amount} should be negative, as WooCommerce writes it"
            )
        refunded -= amount
    return Totals(
        subtotal=lines_total + fees,
        discount=_required_money(payload, "discount_total"),
        shipping=_required_money(payload, "shipping_total"),
        tax=_required_money(payload, "total_tax"),
        total=_required_money(payload, "total"),
        refunded=refunded,
    )


# -- lines ---------------------------------------------------------------------------------------


def _line(item: Any, index: int, *, shipped_all: bool, refunded_all: bool) -> OrderLine:
    where = f"line_items[{index}]."
    if not isinstance(item, dict):
        raise MappingError(f"line_items[{index}]: expected an object, got {type(item).__name__}")
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise MappingError(f"{where}quantity: expected a whole number of units >= 0, got {quantity!r}")
    subtotal = _required_money(item, "subtotal", where)
    unit_price = _unit_price(subtotal, quantity)
    product_id = _positive_id(item.get("product_id"), f"{where}product_id")
    variation_id = _positive_id(item.get("variation_id"), f"{where}variation_id")
    if variation_id is not None and product_id is None:
        raise MappingError(f"{where}variation_id: {variation_id} without a product_id")
    return OrderLine(
        external_line_id=id_str(item.get("id"), f"{where}id"),
        sku=blank_to_none(item.get("sku"), f"{where}sku"),
        channel_product_id=product_id,
        channel_variant_id=variation_id,
        # Names are stored HTML-escaped ("Ship Your Idea &ndash; Color: Black").
        title=html.unescape(blank_to_none(item.get("name"), f"{where}name") or ""),
        quantity=quantity,
        unit_price=unit_price,
        line_total=_required_money(item, "total", where),
        shipped_quantity=quantity if shipped_all else 0,
        refunded_quantity=quantity if refunded_all else 0,
    )


def _unit_price(subtotal: Decimal, quantity: int) -> Decimal:
    if quantity == 0:
        return subtotal
    unit = subtotal / quantity
    # A subtotal that does not divide evenly (3 for 10.00) is shown to the cent the way WooCommerce does.
    return unit if unit == unit.quantize(Decimal("0.0001")) else unit.quantize(Decimal("0.01"))


def _positive_id(value: Any, field: str) -> str | None:
    """A product or variation id; 0 (no variation, or a deleted product) and null mean none."""
    if value in (None, 0, "0", ""):
        return None
    return id_str(value, field)


# -- people and places ---------------------------------------------------------------------------


def _section(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{key}: expected an object, got {type(value).__name__}")
    return value


def _customer(payload: dict[str, Any]) -> Customer | None:
    billing = _section(payload, "billing")
    customer_id = payload.get("customer_id")
    external_id = None if customer_id in (None, 0, "0") else id_str(customer_id, "customer_id")
    name = join_name(billing.get("first_name"), billing.get("last_name"))
    email = blank_to_none(billing.get("email"), "billing.email")
    phone = blank_to_none(billing.get("phone"), "billing.phone")
    if external_id is None and name is None and email is None and phone is None:
        return None
    return Customer(external_id=external_id, name=name, email=email, phone=phone)


def _address(payload: dict[str, Any]) -> Address | None:
    shipping = _section(payload, "shipping")

    def text(key: str) -> str | None:
        return blank_to_none(shipping.get(key), f"shipping.{key}")

    if not any(text(key) for key in ("address_1", "city", "postcode", "country")):
        return None  # virtual goods: WooCommerce leaves every shipping field ""
    billing = _section(payload, "billing")
    return Address(
        name=join_name(shipping.get("first_name"), shipping.get("last_name")),
        phone=text("phone") or blank_to_none(billing.get("phone"), "billing.phone"),
        country_code=text("country"),
        province=text("state"),
        city=text("city"),
        district=None,
        address1=text("address_1"),
        address2=text("address_2"),
        postal_code=text("postcode"),
    )
