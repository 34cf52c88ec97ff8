"""Pinduoduo order (``pdd.order.information.get``'s ``order_info_get_response.order_info``, or one item of
``pdd.order.number.list.increment.get``'s ``order_sn_list``: the same object) -> CanonicalOrder. Pure.

Choices (sources in NOTES.md):
- Times are Beijing wall times ``yyyy-MM-dd HH:mm:ss``, "" when unset; money is yuan as JSON numbers (the
  docs type them DOUBLE; decimal strings are taken too), currency CNY. ``money`` reads a float through its
  shortest repr, so 11.01 stays 11.01.
- number = external_id = ``order_sn`` ("180831-481803633911509").
- totals: total = ``pay_amount``, shipping = ``postage``, discount = ``discount_amount`` (platform + seller +
  group-leader discounts), subtotal = total - shipping, tax 0 (prices include VAT). Pinduoduo states
  pay_amount = goods_amount - discount_amount + postage: a payload that contradicts it is refused.
- lines: ``item_list`` has no line id, so a line is named by its ``sku_id`` (a second line of the same SKU
  gets ``#2``, by position); sku = ``outer_id`` ("" -> None), unit price ``goods_price``, line total price x
  count (Pinduoduo apportions no discount to lines).
- Pinduoduo ships and refunds whole orders on this API: ``order_status`` 2 (shipped) and 3 (received) mean
  every line shipped; ``refund_status`` 4 (退款成功) means the order was refunded in full: before shipping
  (``order_status`` 1) it is cancelled, after shipping it is a return. Statuses 2 and 3 (after-sale under
  way, refund in progress) move nothing yet. Partial refunds are only in the after-sales API.
- payment: neither ``pay_time`` nor ``confirm_time`` (成交时间; older answers have no pay_time) -> unpaid
  (the API lists paid orders, so this is rare); refund_status 4 -> refunded; else paid.
- customer: Pinduoduo gives no buyer id, name or e-mail on the order, only the receiver: None.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any

from canonical.order import Address, CanonicalOrder, MappingError, OrderLine, Totals
from mappings.common import (
    PersonalData,
    about_order,
    blank_to_none,
    china_address,
    id_str,
    json_object,
    json_objects,
    money,
    parse_beijing_datetime,
    parse_optional_beijing_datetime,
    unit_count,
)

PLATFORM = "pinduoduo"
CURRENCY = "CNY"
CENT = Decimal("0.01")
WAIT_SHIP, SHIPPED, RECEIVED = 1, 2, 3
REFUND_SUCCESS = 4
ORDER_STATUSES = frozenset({WAIT_SHIP, SHIPPED, RECEIVED})
REFUND_STATUSES = frozenset({1, 2, 3, 4})

PERSONAL_DATA = PersonalData(
    # Real-name data of cross-border orders and the payment reference: never needed to ship.
    personal=frozenset({"id_card_num", "id_card_name", "pay_no"}),
    fulfilment=frozenset(
        {
            "receiver_name",
            "receiver_phone",
            "address",
            "receiver_address",
            "receiver_name_mask",
            "receiver_phone_mask",
            "address_mask",
            "buyer_memo",
            "remark",
        }
    ),
)


def unwrap(document: Any) -> list[dict[str, Any]]:
    """The orders in a Pinduoduo document: an information.get answer (``{"order_info_get_response":
    {"order_info": ...}}``), an increment answer (``{"order_sn_increment_get_response": {"order_sn_list":
    [...]}}``), an ``pdd.order.list.get`` answer (``order_list_get_response.order_list``), one order, or a
    list of orders."""
    if isinstance(document, list):
        return [json_object(item, f"[{index}]") for index, item in enumerate(document)]
    if not isinstance(document, dict):
        raise MappingError(
            f"expected a Pinduoduo order document (JSON object), got {type(document).__name__}"
        )
    if "error_response" in document:
        raise MappingError(f"a Pinduoduo error answer, not an order: {str(document['error_response'])[:200]}")
    if "order_info_get_response" in document:
        response = document["order_info_get_response"]
        info = response.get("order_info") if isinstance(response, dict) else None
        return [json_object(info, "order_info_get_response.order_info")]
    lists = {"order_sn_increment_get_response": "order_sn_list", "order_list_get_response": "order_list"}
    if wrapper := next((key for key in lists if key in document), None):
        response = document[wrapper]
        items = response.get(lists[wrapper]) if isinstance(response, dict) else None
        if items is None:
            return []
        return json_objects(items, lists[wrapper])
    if "order_sn" in document:
        return [document]
    raise MappingError(
        "not a Pinduoduo order document: expected order_info_get_response, order_sn_increment_get_response "
        f"or an order with order_sn; got keys {sorted(document)[:10]}"
    )


def map_order(payload: dict[str, Any]) -> CanonicalOrder:
    """One Pinduoduo order -> CanonicalOrder; MappingError names what is wrong and where."""
    if not isinstance(payload, dict):
        raise MappingError(f"expected a Pinduoduo order object, got {type(payload).__name__}")
    order_sn = blank_to_none(payload.get("order_sn"), "order_sn")
    if order_sn is None:
        raise MappingError("order_sn: missing; a Pinduoduo order always has one")
    with about_order(PLATFORM, order_sn):
        return _map(payload, order_sn)


def _map(order: dict[str, Any], order_sn: str) -> CanonicalOrder:
    order_status = _enum(order, "order_status", ORDER_STATUSES)
    refund_status = _enum(order, "refund_status", REFUND_STATUSES)
    pay_amount = _yuan(order.get("pay_amount"), "pay_amount")
    goods_amount = _yuan(order.get("goods_amount"), "goods_amount")
    discount = _yuan(order.get("discount_amount"), "discount_amount")
    postage = _yuan(order.get("postage"), "postage")
    if goods_amount - discount + postage != pay_amount:
        raise MappingError(
            f"pay_amount {pay_amount} is not goods_amount {goods_amount} - discount_amount {discount} + "
            f"postage {postage}, as Pinduoduo defines it"
        )

    items = order.get("item_list")
    if not isinstance(items, list) or not items:
        raise MappingError("item_list: expected a non-empty list of goods")
    shipped = order_status in (SHIPPED, RECEIVED)
    refunded = refund_status == REFUND_SUCCESS
    seen: Counter[str] = Counter()
    lines = []
    for index, item in enumerate(items):
        where = f"item_list[{index}]."
        if not isinstance(item, dict):
            raise MappingError(f"item_list[{index}]: expected an object, got {type(item).__name__}")
        sku_id = id_str(item.get("sku_id"), f"{where}sku_id")
        seen[sku_id] += 1
        quantity = unit_count(item.get("goods_count"), f"{where}goods_count")
        price = _yuan(item.get("goods_price"), f"{where}goods_price")
        lines.append(
            OrderLine(
                external_line_id=sku_id if seen[sku_id] == 1 else f"{sku_id}#{seen[sku_id]}",
                sku=blank_to_none(item.get("outer_id"), f"{where}outer_id"),
                channel_product_id=id_str(item.get("goods_id"), f"{where}goods_id"),
                channel_variant_id=sku_id,
                title=blank_to_none(item.get("goods_name"), f"{where}goods_name") or "",
                quantity=quantity,
                unit_price=price,
                line_total=price * quantity,
                shipped_quantity=quantity if shipped else 0,
                refunded_quantity=quantity if refunded else 0,
                restocked_quantity=0,  # Pinduoduo does not say whether a return came back to stock
            )
        )

    # Older answers carry no pay_time; confirm_time (成交时间) comes only once the buyer paid (and the group
    # formed), so either one says the order is paid.
    pay_time = parse_optional_beijing_datetime(
        order.get("pay_time"), "pay_time"
    ) or parse_optional_beijing_datetime(order.get("confirm_time"), "confirm_time")
    updated_at = parse_beijing_datetime(order.get("updated_at"), "updated_at")
    cancelled = refunded and not shipped
    payment_status = "unpaid" if pay_time is None else "refunded" if refunded else "paid"
    return CanonicalOrder(
        platform=PLATFORM,
        external_id=order_sn,
        number=order_sn,
        created_at=parse_beijing_datetime(order.get("created_time"), "created_time"),
        updated_at=updated_at,
        currency=CURRENCY,
        payment_status=payment_status,  # type: ignore[arg-type]
        fulfillment_status="fulfilled" if shipped else "unfulfilled",
        cancelled=cancelled,
        cancelled_at=updated_at if cancelled else None,
        totals=Totals(
            subtotal=pay_amount - postage,
            discount=discount,
            shipping=postage,
            tax=Decimal("0.00"),
            total=pay_amount,
            refunded=pay_amount if refunded and pay_time is not None else Decimal("0.00"),
        ),
        lines=lines,
        customer=None,
        shipping_address=_address(order),
    )


def _enum(order: dict[str, Any], key: str, known: frozenset[int]) -> int:
    value = order.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value not in known:
        raise MappingError(f"{key}: unknown value {value!r} (known: {', '.join(map(str, sorted(known)))})")
    return value


def _address(order: dict[str, Any]) -> Address | None:
    def text(key: str) -> str | None:
        return blank_to_none(order.get(key), key)

    country = text("country")
    address = china_address(
        name=text("receiver_name"),
        phone=text("receiver_phone"),
        province=text("province"),
        city=text("city"),
        district=text("town"),
        # receiver_address is the street alone; older answers carry only ``address`` (province and city
        # spelled out in front)
        address1=text("receiver_address") or text("address"),
    )
    # No address at all stays None whatever "country" says; an address outside mainland China is refused.
    if address is not None and country not in (None, "中国", "CN"):
        raise MappingError(f"country: {country!r} is not mainland China, which this mapping reads")
    return address


def _yuan(value: Any, field: str) -> Decimal:
    """Yuan with cents (a JSON number such as 4.5, or a decimal string), as an exact Decimal to the cent; an
    amount finer than a cent is refused, never rounded."""
    amount = money(value, field)
    try:
        cents = amount.quantize(CENT)
    except InvalidOperation:  # more digits than any price has (1e300)
        raise MappingError(f"{field}: {value!r} is out of range for an amount") from None
    if cents != amount:
        raise MappingError(f"{field}: {value!r} is finer than a cent")
    return cents
