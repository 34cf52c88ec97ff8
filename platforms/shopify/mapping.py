"""Shopify REST Admin API order object -> CanonicalOrder. Pure: no I/O, no clock, no globals.

The fields read here are those of the 2024-10 reference and its example order 450789469; the pinned 2026-10
serves them alike (docs/platform-notes.md, Shopify). Choices this mapping makes:

- Money is the shop's currency (``currency``): every amount is read from ``<field>_set.shop_money.amount``
  when present, else the plain ``<field>`` (also shop currency). Presentment money is never used.
- totals.subtotal = ``subtotal_price``: Shopify's "after discounts, before shipping, taxes and tips",
  i.e. the sum of the lines' ``line_total``. totals.discount = ``total_discounts`` (product and shipping
  discounts). totals.shipping = ``total_shipping_price_set`` (before shipping discounts), else the sum of
  ``shipping_lines[].price``. totals.tax = ``total_tax``; totals.total = ``total_price``. These are the
  order's original figures; refunds show in totals.refunded, not by shrinking the others (the
  ``current_*`` fields are ignored).
- totals.refunded = the sum of ``refunds[].transactions[]`` with kind "refund" and status "success".
- line_total = price * quantity - the line's discount, where the discount is the sum of its
  ``discount_allocations`` (order-level codes are allocated to lines there). Only when a line has no
  allocations is the deprecated ``total_discount`` used: Shopify documents it as carrying "the same
  information", so subtracting both would count the discount twice.
- Line quantities come from the events, not from ``current_quantity``/``fulfillable_quantity``:
  shipped = units in fulfillments with status "success" (capped at quantity); refunded = units in
  ``refund_line_items``; restocked = refunded units with restock_type "return", plus "legacy_restock"
  (or the pre-2019 ``restock: true``) units only as far as the line had shipped units not already
  returned. restock_type "cancel" units were never shipped, so they are refunded but not restocked:
  the warehouse releases their reservation instead.
- payment_status: ``partially_paid`` -> "paid" (money has been captured and the merchant fulfils the
  order; the balance is Shopify's ``total_outstanding``); ``expired`` (an authorization that lapsed
  uncaptured) -> "voided"; null (no payment recorded) -> "unpaid". Anything unknown is a MappingError.
- fulfillment_status: null -> "unfulfilled"; legacy ``restocked`` -> "unfulfilled" (every unit went back
  to stock, nothing is out for delivery; the line quantities carry the detail).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from canonical.order import Address, CanonicalOrder, Customer, MappingError, OrderLine, Totals
from mappings.common import (
    PersonalData,
    blank_to_none,
    id_str,
    join_name,
    map_identified,
    money,
    objects,
    optional_id_str,
    parse_iso_datetime,
    parse_optional_iso_datetime,
    under,
    unit_count,
)

PLATFORM = "shopify"

# An address's fields that name or locate someone (country, province and city stay: they name no one).
_ADDRESS = ("name", "first_name", "last_name", "company", "phone", "address1", "address2", "zip")
_ADDRESS_POINT = ("latitude", "longitude")
PERSONAL_DATA = PersonalData(
    # The buyer's own contact details (the receiver's are in shipping_address), the billing address, the
    # customer record's address book and notes, and the browser the order was placed from.
    personal=frozenset(
        {"email", "contact_email", "phone", "browser_ip"}
        | under("client_details", "browser_ip", "user_agent", "session_hash")
        | under("customer", "email", "phone", "first_name", "last_name", "note")
        | under("customer/default_address", *_ADDRESS, *_ADDRESS_POINT)
        | under("billing_address", *_ADDRESS, *_ADDRESS_POINT)
        # A delivery needs the street, not its coordinates.
        | under("shipping_address", *_ADDRESS_POINT)
    ),
    fulfilment=frozenset(
        under("shipping_address", *_ADDRESS)
        | {"note", "note_attributes/*/value", "shipping_lines/*/phone"}  # buyer's notes, pickup phone
    ),
)

PAYMENT_STATUS: dict[str | None, str] = {
    None: "unpaid",
    "pending": "unpaid",
    "authorized": "authorized",
    "partially_paid": "paid",
    "paid": "paid",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "voided",
    "expired": "voided",
}

FULFILLMENT_STATUS: dict[str | None, str] = {
    None: "unfulfilled",
    "partial": "partial",
    "fulfilled": "fulfilled",
    "restocked": "unfulfilled",
}


def unwrap(document: Any) -> list[dict[str, Any]]:
    """The order objects in a Shopify response body: ``{"orders": [...]}``, ``{"order": {...}}`` or one
    bare order object (as webhooks deliver it)."""
    if not isinstance(document, dict):
        raise MappingError(f"expected a Shopify order document (JSON object), got {type(document).__name__}")
    if "orders" in document:
        orders = document["orders"]
        if not isinstance(orders, list):
            raise MappingError(f'"orders" must be a list, got {type(orders).__name__}')
        for index, order in enumerate(orders):
            if not isinstance(order, dict):
                raise MappingError(f"orders[{index}]: expected an order object, got {type(order).__name__}")
        return list(orders)
    if "order" in document:
        order = document["order"]
        if not isinstance(order, dict):
            raise MappingError(f'"order" must be an order object, got {type(order).__name__}')
        return [order]
    if "id" in document or "line_items" in document:
        return [document]
    if "errors" in document:
        raise MappingError(f"a Shopify error body, not an order: {str(document['errors'])[:200]}")
    raise MappingError(
        'not a Shopify order document: expected an order object, {"order": {...}} or {"orders": [...]}; '
        f"got keys {sorted(document)[:10]}"
    )


def map_order(payload: dict[str, Any]) -> CanonicalOrder:
    """One Shopify REST order object -> CanonicalOrder; MappingError("...") names what is wrong."""
    return map_identified("shopify", "Shopify", payload, "id", _map)


def _map(payload: dict[str, Any], external_id: str) -> CanonicalOrder:
    currency = payload.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise MappingError(f"currency: expected a 3-letter ISO 4217 code, got {currency!r}")
    number = blank_to_none(payload.get("name"), "name")
    if number is None:
        raise MappingError('name: missing; it is the order number the merchant sees ("#1001")')

    items = payload.get("line_items")
    if not isinstance(items, list):
        raise MappingError(f"line_items: expected a list, got {type(items).__name__}")
    lines = _lines(payload, items)

    cancelled_at = parse_optional_iso_datetime(payload.get("cancelled_at"), "cancelled_at")
    return CanonicalOrder(
        platform=PLATFORM,
        external_id=external_id,
        number=number,
        created_at=parse_iso_datetime(payload.get("created_at"), "created_at"),
        updated_at=parse_iso_datetime(payload.get("updated_at"), "updated_at"),
        currency=currency,
        payment_status=_status(PAYMENT_STATUS, payload, "financial_status"),  # type: ignore[arg-type]
        fulfillment_status=_status(FULFILLMENT_STATUS, payload, "fulfillment_status"),  # type: ignore[arg-type]
        cancelled=cancelled_at is not None,
        cancelled_at=cancelled_at,
        totals=_totals(payload, currency),
        lines=lines,
        customer=_customer(payload),
        shipping_address=_address(payload.get("shipping_address"), "shipping_address"),
    )


def _status(table: dict[str | None, str], payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not (value is None or isinstance(value, str)) or value not in table:
        known = ", ".join(sorted(str(k) for k in table if k is not None))
        raise MappingError(f"{key}: unknown value {value!r} (known: {known}, null)")
    return table[value]


# -- money ---------------------------------------------------------------------------------------


def _shop_money(obj: dict[str, Any], key: str, where: str) -> Decimal | None:
    """obj[key] in shop currency: ``<key>_set.shop_money.amount`` when present, else ``<key>``, else None."""
    money_set = obj.get(f"{key}_set")
    if isinstance(money_set, dict) and isinstance(money_set.get("shop_money"), dict):
        shop_money = money_set["shop_money"]
        if shop_money.get("amount") is not None:
            return money(shop_money["amount"], f"{where}{key}_set.shop_money.amount")
    if obj.get(key) is None:
        return None
    return money(obj[key], f"{where}{key}")


def _required_shop_money(obj: dict[str, Any], key: str, where: str = "") -> Decimal:
    amount = _shop_money(obj, key, where)
    if amount is None:
        raise MappingError(f"{where}{key}: missing")
    return amount


def _totals(payload: dict[str, Any], currency: str) -> Totals:
    shipping = _shop_money(payload, "total_shipping_price", "")
    if shipping is None:
        shipping = sum(
            (
                _required_shop_money(line, "price", f"shipping_lines[{index}].")
                for index, line in enumerate(objects(payload, "shipping_lines"))
            ),
            Decimal(0),
        )
    return Totals(
        subtotal=_required_shop_money(payload, "subtotal_price"),
        discount=_required_shop_money(payload, "total_discounts"),
        shipping=shipping,
        tax=_required_shop_money(payload, "total_tax"),
        total=_required_shop_money(payload, "total_price"),
        refunded=_refunded_amount(payload, currency),
    )


def _refunded_amount(payload: dict[str, Any], currency: str) -> Decimal:
    refunded = Decimal(0)
    for r_index, refund in enumerate(objects(payload, "refunds")):
        for t_index, transaction in enumerate(objects(refund, "transactions", f"refunds[{r_index}].")):
            if transaction.get("kind") != "refund" or transaction.get("status") != "success":
                continue
            where = f"refunds[{r_index}].transactions[{t_index}]."
            tx_currency = transaction.get("currency")
            if "amount_set" not in transaction and tx_currency not in (None, currency):
                # REST transactions are in the presentment currency; without a shop_money amount there
                # is no exact conversion, and a guessed one would corrupt the refunded total.
                raise MappingError(f"{where}amount: in {tx_currency}, not shop currency {currency}")
            refunded += _required_shop_money(transaction, "amount", where)
    return refunded


# -- lines ---------------------------------------------------------------------------------------


def _lines(payload: dict[str, Any], items: list[Any]) -> list[OrderLine]:
    line_ids: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise MappingError(f"line_items[{index}]: expected an object, got {type(item).__name__}")
        line_ids.append(id_str(item.get("id"), f"line_items[{index}].id"))
    known = set(line_ids)
    shipped = _shipped_units(payload, known)
    refunded, returned, legacy_restocked = _refunded_units(payload, known)

    lines = []
    for index, (item, line_id) in enumerate(zip(items, line_ids, strict=True)):
        where = f"line_items[{index}]."
        quantity = unit_count(item.get("quantity"), f"{where}quantity")
        if refunded[line_id] > quantity:
            raise MappingError(f"{where}quantity: {quantity}, yet {refunded[line_id]} units are refunded")
        shipped_units = min(shipped[line_id], quantity)
        shipped_not_returned = max(shipped_units - returned[line_id], 0)
        restocked = returned[line_id] + min(legacy_restocked[line_id], shipped_not_returned)
        unit_price = _required_shop_money(item, "price", where)
        lines.append(
            OrderLine(
                external_line_id=line_id,
                sku=blank_to_none(item.get("sku"), f"{where}sku"),
                channel_product_id=optional_id_str(item.get("product_id"), f"{where}product_id"),
                channel_variant_id=optional_id_str(item.get("variant_id"), f"{where}variant_id"),
                title=blank_to_none(item.get("name"), f"{where}name")
                or blank_to_none(item.get("title"), f"{where}title")
                or "",
                quantity=quantity,
                unit_price=unit_price,
                line_total=unit_price * quantity - _line_discount(item, where),
                shipped_quantity=shipped_units,
                refunded_quantity=refunded[line_id],
                restocked_quantity=restocked,
            )
        )
    return lines


def _line_discount(item: dict[str, Any], where: str) -> Decimal:
    allocations = objects(item, "discount_allocations", where)
    if allocations:
        return sum(
            (
                _required_shop_money(allocation, "amount", f"{where}discount_allocations[{index}].")
                for index, allocation in enumerate(allocations)
            ),
            Decimal(0),
        )
    return _shop_money(item, "total_discount", where) or Decimal(0)


def _shipped_units(payload: dict[str, Any], line_ids: set[str]) -> Counter[str]:
    shipped: Counter[str] = Counter()
    for f_index, fulfillment in enumerate(objects(payload, "fulfillments")):
        if fulfillment.get("status") != "success":  # pending, open, cancelled, error, failure
            continue
        where = f"fulfillments[{f_index}]."
        for index, item in enumerate(objects(fulfillment, "line_items", where)):
            line_id = _line_ref(item.get("id"), f"{where}line_items[{index}].id", line_ids)
            shipped[line_id] += unit_count(item.get("quantity"), f"{where}line_items[{index}].quantity")
    return shipped


def _refunded_units(
    payload: dict[str, Any], line_ids: set[str]
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Per line: units refunded, of those returned to stock, and of those restocked the legacy way."""
    refunded: Counter[str] = Counter()
    returned: Counter[str] = Counter()
    legacy: Counter[str] = Counter()
    for r_index, refund in enumerate(objects(payload, "refunds")):
        where = f"refunds[{r_index}]."
        for index, item in enumerate(objects(refund, "refund_line_items", where)):
            item_where = f"{where}refund_line_items[{index}]."
            line_id = _line_ref(item.get("line_item_id"), f"{item_where}line_item_id", line_ids)
            units = unit_count(item.get("quantity"), f"{item_where}quantity")
            refunded[line_id] += units
            restock_type = item.get("restock_type")
            if restock_type == "return":
                returned[line_id] += units
            elif restock_type == "legacy_restock" or (restock_type is None and refund.get("restock") is True):
                legacy[line_id] += units
    return refunded, returned, legacy


def _line_ref(value: Any, field: str, line_ids: set[str]) -> str:
    line_id = id_str(value, field)
    if line_id not in line_ids:
        raise MappingError(f"{field}: {line_id} is not a line item of this order")
    return line_id


# -- people and places ---------------------------------------------------------------------------


def _customer(payload: dict[str, Any]) -> Customer | None:
    customer = payload.get("customer")
    if not customer:  # absent, null or {}: a guest/POS order with no customer record
        return None
    if not isinstance(customer, dict):
        raise MappingError(f"customer: expected an object, got {type(customer).__name__}")
    return Customer(
        external_id=optional_id_str(customer.get("id"), "customer.id"),
        name=join_name(customer.get("first_name"), customer.get("last_name")),
        email=blank_to_none(customer.get("email"), "customer.email")
        or blank_to_none(payload.get("email"), "email")
        or blank_to_none(payload.get("contact_email"), "contact_email"),
        phone=blank_to_none(customer.get("phone"), "customer.phone")
        or blank_to_none(payload.get("phone"), "phone"),
    )


def _address(address: Any, where: str) -> Address | None:
    if not address:
        return None
    if not isinstance(address, dict):
        raise MappingError(f"{where}: expected an object, got {type(address).__name__}")

    def text(key: str) -> str | None:
        return blank_to_none(address.get(key), f"{where}.{key}")

    return Address(
        name=text("name") or join_name(address.get("first_name"), address.get("last_name")),
        phone=text("phone"),
        country_code=text("country_code"),
        province=text("province"),
        city=text("city"),
        district=None,  # Shopify addresses have no district level
        address1=text("address1"),
        address2=text("address2"),
        postal_code=text("zip"),
    )


# -- small readers -------------------------------------------------------------------------------
