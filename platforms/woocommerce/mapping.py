"""WooCommerce REST API v3 order object -> CanonicalOrder. Pure: no I/O, no clock, no globals.

Choices this mapping makes (payload shape: the REST API docs' orders 727/723 and refund 724; corrections
and decisions: docs/platform-notes.md, WooCommerce):

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
  | pending    | unpaid                                 | unfulfilled | no        | 0        | (r)      |
  | on-hold    | authorized (awaiting capture/transfer) | unfulfilled | no        | 0        | (r)      |
  | processing | paid                                   | unfulfilled | no        | 0        | (r)      |
  | completed  | paid                                   | fulfilled   | no        | (s)      | (r)      |
  | refunded   | refunded                               | (*)         | no        | (*)      | quantity |
  | cancelled  | voided if never paid, else paid        | (*)         | yes       | (*)      | (r)      |
  | failed     | voided (the payment failed; may retry) | unfulfilled | no        | 0        | (r)      |
  | trash      | as cancelled                           | (*)         | yes       | (*)      | (r)      |

  (*) as completed (s) when ``date_completed_gmt`` is set (the order had been completed), else unfulfilled
  and 0. Any refund on top turns "paid" into "partially_refunded" (or "refunded" once the refunds reach the
  total). ``checkout-draft`` and ``auto-draft`` are no orders (a cart in checkout, a blank admin order):
  ``not_an_order`` says so and ``map_order`` raises ``NotAnOrder``. A plugin status maps only through the
  channel's ``status_map`` (plugin status -> the core status it means); any other status is refused.
- Refunded lines come from the refund objects the connector attaches under ``channelhub_refunds`` (``GET
  /orders/{id}/refunds``; the order's own ``refunds[]`` summary has no lines): (r) = the units of the refund
  line items whose ``_refunded_item_id`` meta names the line (their quantities are negative). Core
  WooCommerce records no partial shipment, only completion, so (s) = quantity less the units refunded
  before ``date_completed_gmt`` (those never shipped). Restocked units: WooCommerce keeps on the order's line
  item ``_restock_refunded_items``, the units its refunds put back in stock, but not which refund did (the
  refund's ``api_restock`` is write-only); units refunded before completion were never shipped, so the
  units known to have come back from the shelf are ``min(restocked - refunded before completion, refunded
  after completion)``, never more (an overstated return would let the hub oversell). Without
  ``channelhub_refunds`` (a webhook delivery, a hand-made file) no line is refunded (a ``refunded`` order
  refunds every unit), shipped is the whole quantity on completion and nothing is restocked.
- Line titles are ``name`` with its HTML entities decoded.
- customer: ``customer_id`` 0 is a guest (external_id null); name, email and phone come from ``billing``.
  shipping_address: ``shipping``; its phone (WC >= 5.6) falls back to the billing phone; null when blank.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from canonical.order import (
    Address,
    CanonicalOrder,
    Customer,
    MappingError,
    NotAnOrder,
    OrderLine,
    Totals,
)
from mappings.common import (
    PersonalData,
    blank_to_none,
    id_str,
    join_name,
    map_identified,
    money,
    objects,
    parse_local_datetime,
    under,
)

PLATFORM = "woocommerce"

_ADDRESS = ("first_name", "last_name", "company", "address_1", "address_2", "postcode")
PERSONAL_DATA = PersonalData(
    personal=frozenset({"customer_ip_address", "customer_user_agent"} | under("billing", *_ADDRESS, "email")),
    # billing.phone is the receiver's phone when shipping has none (before WC 5.6, and whenever the
    # checkout does not ask for one): the mapping falls back to it, so a delivery may need it.
    fulfilment=frozenset(under("shipping", *_ADDRESS, "phone") | {"billing/phone", "customer_note"}),
)
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
# Statuses of records that are no orders yet: a cart the block checkout saved (its DraftOrders service adds
# the status) and the blank order WordPress creates when an admin opens "Add order".
NOT_ORDERS = {
    "checkout-draft": "a checkout draft (a cart in checkout, not placed)",
    "auto-draft": "an auto-draft (a blank order nobody saved)",
}
REFUNDS_KEY = (
    "channelhub_refunds"  # the refund objects the connector attaches (platforms.woocommerce.connector)
)
REFUNDED_ITEM = "_refunded_item_id"  # a refund line item's meta: the order line it refunds
RESTOCKED = "_restock_refunded_items"  # an order line item's meta: units its refunds put back in stock


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


def not_an_order(payload: Any, *, status_map: Mapping[str, str] | None = None) -> str | None:
    """Why ``payload`` is no order (a checkout draft), or None. Reads only ``status``, so it holds whatever
    else the record lacks."""
    status = payload.get("status") if isinstance(payload, dict) else None
    if not isinstance(status, str):
        return None
    what = NOT_ORDERS.get((status_map or {}).get(status, status))
    return None if what is None else f"status {status!r}: {what}"


def map_order(payload: dict[str, Any], *, status_map: Mapping[str, str] | None = None) -> CanonicalOrder:
    """One WooCommerce order object -> CanonicalOrder; MappingError("...") names what is wrong, NotAnOrder
    says it is a checkout draft. ``status_map``: the channel's plugin statuses, each the core status it
    means (``{"shipped": "completed"}``)."""
    aliases = dict(status_map or {})
    if (why := not_an_order(payload, status_map=aliases)) is not None:
        raise NotAnOrder(f"woocommerce record {payload.get('id')}: {why}")
    return map_identified("woocommerce", "WooCommerce", payload, "id", lambda p, i: _map(p, i, aliases))


def _map(payload: dict[str, Any], external_id: str, status_map: dict[str, str]) -> CanonicalOrder:
    currency = payload.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise MappingError(f"currency: expected a 3-letter ISO 4217 code, got {currency!r}")
    raw_status = payload.get("status")
    status = status_map.get(raw_status, raw_status) if isinstance(raw_status, str) else raw_status
    if not isinstance(status, str) or status not in STATUSES:
        raise MappingError(
            f"status: unknown value {raw_status!r} (known: {', '.join(STATUSES)}; a plugin's status maps "
            "through the channel's status_map)"
        )
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
    refunds = _refunded_units(
        payload, items, _optional_gmt(payload, "date_completed_gmt") if completed else None
    )
    lines = [
        _line(item, index, shipped_all=completed, refunded_all=status == "refunded", refunds=refunds)
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


# -- refunds -------------------------------------------------------------------------------------

# Per order line id: units refunded before completion (never shipped), units refunded after it.
RefundedUnits = dict[str, tuple[int, int]]


def _refunded_units(
    payload: dict[str, Any], items: list[Any], completed_at: datetime | None
) -> RefundedUnits | None:
    """Units each line's refunds took back, split at ``completed_at`` (None: not completed, all before);
    None when the payload carries no refund objects."""
    details = payload.get(REFUNDS_KEY)
    if details is None:
        return None
    if not isinstance(details, list) or not all(isinstance(refund, dict) for refund in details):
        raise MappingError(f"{REFUNDS_KEY}: expected a list of refund objects")
    by_id = {refund.get("id"): refund for refund in details}
    for index, summary in enumerate(objects(payload, "refunds")):
        if summary.get("id") not in by_id:
            raise MappingError(
                f"refunds[{index}]: refund {summary.get('id')!r} has no object in {REFUNDS_KEY} (the order "
                "and its refunds were read at different times)"
            )
    line_ids = {str(item.get("id")) for item in items if isinstance(item, dict)}
    units: RefundedUnits = {}
    for index, refund in enumerate(details):
        where = f"{REFUNDS_KEY}[{index}]."
        at = parse_local_datetime(refund.get("date_created_gmt"), UTC_OFFSET, f"{where}date_created_gmt")
        before = completed_at is None or at < completed_at  # the same second counts as after: deducts more
        for position, item in enumerate(objects(refund, "line_items", where)):
            item_where = f"{where}line_items[{position}]."
            quantity = item.get("quantity")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity > 0:
                raise MappingError(f"{item_where}quantity: expected a whole number <= 0, got {quantity!r}")
            line_id = _refunded_item(item, item_where)
            if line_id not in line_ids:
                raise MappingError(
                    f"{item_where}meta_data: {REFUNDED_ITEM} {line_id} is no line of the order"
                )
            earlier, later = units.get(line_id, (0, 0))
            units[line_id] = (earlier - quantity, later) if before else (earlier, later - quantity)
    return units


def _refunded_item(item: dict[str, Any], where: str) -> str:
    for meta in objects(item, "meta_data", where):
        if meta.get("key") == REFUNDED_ITEM:
            return id_str(meta.get("value"), f"{where}meta_data.{REFUNDED_ITEM}")
    raise MappingError(f"{where}meta_data: no {REFUNDED_ITEM} (which order line it refunds)")


def _restocked(item: dict[str, Any], where: str) -> int:
    """The line's ``_restock_refunded_items`` meta: units WooCommerce put back in stock (0 when absent)."""
    for meta in objects(item, "meta_data", where):
        if meta.get("key") == RESTOCKED:
            value = meta.get("value")
            text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
            if not text.isdigit():
                raise MappingError(f"{where}meta_data.{RESTOCKED}: expected a whole number, got {value!r}")
            return int(text)
    return 0


# -- lines ---------------------------------------------------------------------------------------


def _line(
    item: Any, index: int, *, shipped_all: bool, refunded_all: bool, refunds: RefundedUnits | None
) -> OrderLine:
    where = f"line_items[{index}]."
    if not isinstance(item, dict):
        raise MappingError(f"line_items[{index}]: expected an object, got {type(item).__name__}")
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise MappingError(f"{where}quantity: expected a whole number of units >= 0, got {quantity!r}")
    shipped = quantity if shipped_all else 0
    refunded = quantity if refunded_all else 0
    restocked = 0
    if refunds is not None:
        before, after = refunds.get(str(item.get("id")), (0, 0))
        if before + after > quantity:
            raise MappingError(
                f"{where}quantity: {quantity}, but its refunds take back {before + after} units"
            )
        refunded = max(refunded, before + after)
        if shipped_all:
            shipped = quantity - before  # units refunded before completion never shipped
            restocked = min(max(0, _restocked(item, where) - before), after)
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
        shipped_quantity=shipped,
        refunded_quantity=refunded,
        restocked_quantity=restocked,
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
