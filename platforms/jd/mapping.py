"""JD POP ``orderInfo`` (one item of ``jingdong.pop.order.search``'s ``orderInfoList``, or
``jingdong.pop.order.get``'s ``orderDetailInfo.orderInfo``) -> CanonicalOrder. Pure: no I/O, no clock.

Choices (facts and sources in platforms/jd/NOTES.md):
- Times are naive Beijing wall times; JD writes ``0001-01-01 00:00:00`` for "never" (``outBoundDate``), read
  as unset. Money is yuan strings, currency CNY.
- number = external_id = ``orderId``; created_at = ``orderStartTime``; updated_at = ``modified``.
- totals: shipping = ``freightPrice``; discount = ``sellerDiscount``; subtotal = ``orderSellerPrice`` (goods
  after the seller's discount); total = ``orderPayment`` (what the buyer pays); tax = 0 (prices include VAT).
- lines: one per ``itemInfoList`` item, keyed by ``skuId`` (JD's items carry no line id of their own; two
  items with one skuId are refused rather than told apart by guessing); sku = ``outerSkuId`` ("" -> None);
  channel_product_id = ``wareId``; quantity = ``itemTotal`` (JD sends it as a digit string); unit_price =
  ``jdPrice``; line_total = ``jdPrice`` x ``itemTotal``.
- status: JD ships a whole order with one waybill: every unit shipped once ``orderState`` is
  WAIT_GOODS_RECEIVE_CONFIRM or FINISHED_L, none before. TRADE_CANCELED is cancelled: "refunded" (the whole
  ``orderPayment``) when it had been paid, "voided" otherwise. JD lists paid orders only; an order without
  ``paymentConfirmTime`` (cash on delivery) is "unpaid". After-sales refunds live in JD's after-sales API,
  not in the order: refunded quantities stay 0 here.
- customer: ``pin`` (the buyer's JD account, when the order carries it); no name, e-mail or phone of the
  buyer. The address is ``consigneeInfo`` (country CN); JD may deliver it encrypted (``enSearch``): the
  text is kept as JD sent it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from canonical.order import Address, CanonicalOrder, Customer, MappingError, OrderLine, Totals
from mappings.common import (
    PersonalData,
    blank_to_none,
    china_address,
    id_str,
    json_object,
    json_objects,
    map_identified,
    money,
    objects,
    parse_beijing_datetime,
    parse_optional_beijing_datetime,
    under,
)

PLATFORM = "jd"
CURRENCY = "CNY"
NEVER = "0001-01-01 00:00:00"
SHIPPED = frozenset({"WAIT_GOODS_RECEIVE_CONFIRM", "FINISHED_L"})
OPEN = frozenset({"WAIT_SELLER_STOCK_OUT", "WAIT_SELLER_DELIVERY", "LOCKED", "PAUSE", "POP_ORDER_PAUSE"})
STATES = SHIPPED | OPEN | {"TRADE_CANCELED"}

PERSONAL_DATA = PersonalData(
    personal=frozenset({"pin", "realPin", "open_id_buyer", "xid_buyer"}),
    fulfilment=frozenset(
        under(
            "consigneeInfo",
            "fullname",
            "telephone",
            "mobile",
            "fullAddress",
            "town",  # the street office (街道): below the district that erasure keeps
            "desen_telephone",
            "desen_mobile",
        )
        | {"orderRemark", "invoiceEasyInfo/invoiceTitle"}
    ),
)


def unwrap(document: Any) -> list[dict[str, Any]]:
    """The orders in a JD document: a search answer (the whole body, its ``..._responce`` or its
    ``searchorderinfo_result``), a get answer, one ``orderInfo``, or a list of them."""
    if isinstance(document, list):
        return [json_object(item, f"[{index}]") for index, item in enumerate(document)]
    if not isinstance(document, dict):
        raise MappingError(f"expected a JD order document (JSON object), got {type(document).__name__}")
    if "error_response" in document:
        raise MappingError(f"a JD error answer, not an order: {str(document['error_response'])[:200]}")
    for key in ("jingdong_pop_order_search_responce", "jingdong_pop_order_get_responce"):
        if key in document:
            return unwrap(document[key])
    for key in ("searchorderinfo_result", "orderDetailInfo"):
        if key in document:
            return unwrap(document[key])
    if "orderInfoList" in document:
        return json_objects(document["orderInfoList"], "orderInfoList")
    if "orderInfo" in document:
        return [json_object(document["orderInfo"], "orderInfo")]
    if "orderId" in document:
        return [document]
    raise MappingError(f"not a JD order document: got keys {sorted(document)[:10]}")


def map_order(payload: dict[str, Any]) -> CanonicalOrder:
    """One JD orderInfo -> CanonicalOrder; MappingError names what is wrong and where."""
    return map_identified(PLATFORM, "JD", payload, "orderId", _map)


def _map(order: dict[str, Any], order_id: str) -> CanonicalOrder:
    state = order.get("orderState")
    if state not in STATES:
        raise MappingError(f"orderState: unknown value {state!r} (known: {', '.join(sorted(STATES))})")
    shipped = state in SHIPPED
    lines = [_line(item, index, shipped) for index, item in enumerate(objects(order, "itemInfoList"))]
    if not lines:
        raise MappingError("itemInfoList: an order has at least one item")
    ids = [line.external_line_id for line in lines]
    if len(set(ids)) != len(ids):
        raise MappingError("itemInfoList: two items share a skuId; JD gives no line id to tell them apart")
    payment = money(order.get("orderPayment"), "orderPayment")
    paid_at = parse_optional_beijing_datetime(
        order.get("paymentConfirmTime"), "paymentConfirmTime", never=NEVER
    )
    cancelled = state == "TRADE_CANCELED"
    if cancelled:
        payment_status = "refunded" if paid_at is not None else "voided"
    else:
        payment_status = "paid" if paid_at is not None else "unpaid"
    updated_at = parse_beijing_datetime(order.get("modified"), "modified")
    return CanonicalOrder(
        platform=PLATFORM,
        external_id=order_id,
        number=order_id,
        created_at=parse_beijing_datetime(order.get("orderStartTime"), "orderStartTime"),
        updated_at=updated_at,
        currency=CURRENCY,
        payment_status=payment_status,  # type: ignore[arg-type]
        fulfillment_status="fulfilled" if shipped else "unfulfilled",
        cancelled=cancelled,
        cancelled_at=updated_at if cancelled else None,
        totals=Totals(
            subtotal=money(order.get("orderSellerPrice"), "orderSellerPrice"),
            discount=money(order.get("sellerDiscount"), "sellerDiscount"),
            shipping=money(order.get("freightPrice"), "freightPrice"),
            tax=Decimal("0.00"),
            total=payment,
            refunded=payment if payment_status == "refunded" else Decimal("0.00"),
        ),
        lines=lines,
        customer=_customer(order),
        shipping_address=_address(order.get("consigneeInfo")),
    )


def _line(item: dict[str, Any], index: int, shipped: bool) -> OrderLine:
    where = f"itemInfoList[{index}]."
    quantity = _units(item.get("itemTotal"), f"{where}itemTotal")
    price = money(item.get("jdPrice"), f"{where}jdPrice")
    return OrderLine(
        external_line_id=id_str(item.get("skuId"), f"{where}skuId"),
        sku=blank_to_none(item.get("outerSkuId"), f"{where}outerSkuId"),
        channel_product_id=id_str(item.get("wareId"), f"{where}wareId"),
        channel_variant_id=id_str(item.get("skuId"), f"{where}skuId"),
        title=blank_to_none(item.get("skuName"), f"{where}skuName") or "",
        quantity=quantity,
        unit_price=price,
        line_total=price * quantity,
        shipped_quantity=quantity if shipped else 0,
    )


def _customer(order: dict[str, Any]) -> Customer | None:
    pin = blank_to_none(order.get("pin"), "pin")
    return Customer(external_id=pin, name=None, email=None, phone=None) if pin else None


def _address(consignee: Any) -> Address | None:
    if not consignee:
        return None
    if not isinstance(consignee, dict):
        raise MappingError(f"consigneeInfo: expected an object, got {type(consignee).__name__}")

    def text(key: str) -> str | None:
        return blank_to_none(consignee.get(key), f"consigneeInfo.{key}")

    return china_address(
        name=text("fullname"),
        phone=text("mobile") or text("telephone"),
        province=text("province"),
        city=text("city"),
        district=text("county"),
        address1=text("fullAddress"),
        address2=text("town"),
    )


def _units(value: Any, field: str) -> int:
    """JD's counts are digit strings ("1"); a plain non-negative integer is taken too."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit() and value.isascii():
        return int(value)
    raise MappingError(f"{field}: expected a whole number of units >= 0, got {value!r}")
