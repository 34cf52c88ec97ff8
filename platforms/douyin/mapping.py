"""Douyin shop order (one item of ``order.searchList``'s ``data.shop_order_list``, or ``order.orderDetail``'s
``data.shop_order_detail``: the same shape) -> CanonicalOrder. Pure: no I/O, no clock, no globals.

Field meanings are the official SDK's (NOTES.md). Choices this mapping makes:
- Times are epoch seconds; 0 means "not yet" (``pay_time`` of an unpaid order). Money is integer fen, CNY.
- external_id = number = ``order_id`` (a 19-digit string).
- totals: shipping = ``post_amount``; total = ``pay_amount`` (what the buyer pays); tax = ``tax_amount`` (0 or
  absent outside cross-border: prices include VAT); subtotal = total - shipping - tax; discount = goods at
  their price (sku ``sum_amount``, else ``origin_amount`` x ``item_num``) + shipping + tax - total (so a price
  change by the seller shows in it); refunded = the ``pay_amount`` of sku orders whose refund succeeded.
- lines (one per sku order): external_line_id = the sku order's ``order_id``; sku = ``code`` (the merchant's
  code; "" -> None, the warehouse then resolves by ids); channel_product_id = ``product_id_str`` (else
  ``product_id``), channel_variant_id = ``sku_id``; unit_price = ``origin_amount``; line_total = the sku
  order's ``pay_amount``. Douyin's after-sales act on a whole sku order: refunded_quantity = ``item_num`` once
  ``after_sale_info.refund_status`` is 3 (退款成功), else 0; shipped_quantity = the units of the sku order
  in the packages of ``logistics_info`` (``product_info[].product_count``), or, where a payload carries no
  packages, every unit not refunded once the order is shipped (status 3 or 5).
- status (``order_status``): 1 unpaid, 105 paid, 2 备货中 (paid), 101 partly shipped, 3 shipped, 4 cancelled,
  5 completed; any other value is refused, never guessed. payment_status: no ``pay_time`` -> unpaid (voided
  once cancelled); else refunded / partially_refunded / paid by the refunded amount against ``pay_amount``.
  cancelled = status 4 with nothing shipped: Douyin also closes (4, "已关闭") an order refunded after it
  shipped (``main_status`` 22 发货后退款完成 in the agiso sample): that is a full return, not a cancellation.
- customer: only ``doudian_open_id`` (Douyin gives no buyer name, e-mail or phone); address: the receiver
  (``post_receiver``, ``post_tel``, ``post_addr`` province/city/town/street/detail), country CN.
"""

from __future__ import annotations

from datetime import datetime
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
    money_from_minor_units,
    objects,
    parse_epoch_seconds,
    under,
    unit_count,
)

PLATFORM = "douyin"
CURRENCY = "CNY"
UNPAID, CANCELLED = 1, 4
STATUSES = frozenset({1, 105, 2, 101, 3, 4, 5})
SHIPPED = frozenset({3, 5})
REFUND_SUCCESS = 3

RECEIVER = ("post_receiver", "post_tel", "encrypt_post_receiver", "encrypt_post_tel")
RECEIVER += ("mask_post_receiver", "mask_post_tel")
PERSONAL_DATA = PersonalData(
    # The buyer's ids on Douyin, and ID documents (cross-border orders): fulfilment never needs them.
    personal=frozenset({"doudian_open_id", "open_id", "user_id_info", "sku_order_list/*/account_list"}),
    # The receiver, at the order and again on each sku order (plain, masked and encrypted forms).
    fulfilment=frozenset(
        path
        for prefix in ("", "sku_order_list/*/")
        for path in (
            {f"{prefix}{name}" for name in RECEIVER}
            | under(f"{prefix}post_addr", "street", "detail", "encrypt_detail")
            | under(f"{prefix}mask_post_addr", "street", "detail")
        )
    )
    | {"buyer_words", "user_coordinate", "open_address_id"},
)


def unwrap(document: Any) -> list[dict[str, Any]]:
    """The shop orders in a Douyin document: an ``order.searchList`` or ``order.orderDetail`` answer (or
    its ``data``), one order, or a list of orders."""
    if isinstance(document, list):
        return [json_object(item, f"[{index}]") for index, item in enumerate(document)]
    if not isinstance(document, dict):
        raise MappingError(f"expected a Douyin order document (JSON object), got {type(document).__name__}")
    if "code" in document and str(document.get("code")) != "10000":
        detail = document.get("sub_msg") or document.get("msg")
        raise MappingError(f"a Douyin error answer, not an order: code {document['code']}: {detail}")
    if "data" in document and "order_id" not in document:
        return unwrap(document["data"])
    if "shop_order_list" in document:
        return json_objects(document["shop_order_list"], "shop_order_list")
    if "shop_order_detail" in document:
        return [json_object(document["shop_order_detail"], "shop_order_detail")]
    if "order_id" in document:
        return [document]
    raise MappingError(
        f"not a Douyin order document: expected shop_order_list, shop_order_detail or order_id; "
        f"got keys {sorted(document)[:10]}"
    )


def map_order(payload: Any) -> CanonicalOrder:
    return map_identified(PLATFORM, "Douyin", payload, "order_id", _build)


def _build(payload: dict[str, Any], external_id: str) -> CanonicalOrder:
    status = payload.get("order_status")
    if status not in STATUSES or isinstance(status, bool):
        raise MappingError(f"order_status: {status!r} is not a Douyin order status (1/105/2/101/3/4/5)")
    items = objects(payload, "sku_order_list")
    if not items:
        raise MappingError("sku_order_list: an order has at least one sku order")
    shipped_units = _shipped_units(payload)
    lines, goods, refunded = [], Decimal("0.00"), Decimal("0.00")
    for index, item in enumerate(items):
        where = f"sku_order_list[{index}]."
        line_id = id_str(item.get("order_id"), f"{where}order_id")
        quantity = unit_count(item.get("item_num"), f"{where}item_num")
        unit_price = _fen(item.get("origin_amount"), f"{where}origin_amount")
        paid = _fen(item.get("pay_amount"), f"{where}pay_amount")
        gross = item.get("sum_amount")
        goods += _fen(gross, f"{where}sum_amount") if gross is not None else unit_price * quantity
        after_sale = item.get("after_sale_info")
        if after_sale is not None and not isinstance(after_sale, dict):
            raise MappingError(f"{where}after_sale_info: expected an object")
        refunded_units = quantity if (after_sale or {}).get("refund_status") == REFUND_SUCCESS else 0
        refunded += paid if refunded_units else 0
        if shipped_units is None:
            shipped = quantity - refunded_units if status in SHIPPED else 0
        else:
            shipped = shipped_units.pop(line_id, 0)
            if shipped > quantity:
                raise MappingError(f"{where}: {shipped} units in packages but only {quantity} ordered")
        product = item.get("product_id_str") or item.get("product_id")
        lines.append(
            OrderLine(
                external_line_id=line_id,
                sku=blank_to_none(item.get("code"), f"{where}code"),
                channel_product_id=id_str(product, f"{where}product_id"),
                channel_variant_id=id_str(item.get("sku_id"), f"{where}sku_id"),
                title=_title(item, where),
                quantity=quantity,
                unit_price=unit_price,
                line_total=paid,
                shipped_quantity=shipped,
                refunded_quantity=refunded_units,
            )
        )
    if shipped_units:
        raise MappingError(
            f"logistics_info: packages name sku orders not in this order: {sorted(shipped_units)}"
        )

    total = _fen(payload.get("pay_amount"), "pay_amount")
    shipping = _fen(payload.get("post_amount"), "post_amount")
    tax = _fen(payload.get("tax_amount") or 0, "tax_amount")
    totals = Totals(
        subtotal=total - shipping - tax,
        discount=goods + shipping + tax - total,
        shipping=shipping,
        tax=tax,
        total=total,
        refunded=refunded,
    )
    paid_at = payload.get("pay_time")
    if paid_at in (None, 0, "0"):
        payment = "voided" if status == CANCELLED else "unpaid"
    elif refunded >= total and refunded > 0:
        payment = "refunded"
    else:
        payment = "partially_refunded" if refunded > 0 else "paid"
    # Fulfilled once every unit not refunded has shipped (a line shipped, then refunded, was returned).
    shipped_any = any(line.shipped_quantity for line in lines)
    complete = all(line.shipped_quantity >= line.quantity - line.refunded_quantity for line in lines)
    fulfillment = ("fulfilled" if complete else "partial") if shipped_any else "unfulfilled"
    updated = _time(payload.get("update_time"), "update_time")
    cancelled = status == CANCELLED and not any(line.shipped_quantity for line in lines)
    return CanonicalOrder(
        platform=PLATFORM,
        external_id=external_id,
        number=external_id,
        created_at=_time(payload.get("create_time"), "create_time"),
        updated_at=updated,
        currency=CURRENCY,
        payment_status=payment,
        fulfillment_status=fulfillment,
        cancelled=cancelled,
        totals=totals,
        lines=lines,
        customer=_customer(payload),
        shipping_address=_address(payload),
        cancelled_at=updated if cancelled else None,
    )


def _shipped_units(payload: dict[str, Any]) -> dict[str, int] | None:
    """sku order id -> units in the order's packages; None when the payload carries no package detail."""
    if payload.get("logistics_info") is None:
        return None
    units: dict[str, int] = {}
    for p_index, package in enumerate(objects(payload, "logistics_info")):
        where = f"logistics_info[{p_index}]."
        for i_index, item in enumerate(objects(package, "product_info", where)):
            key = id_str(item.get("sku_order_id"), f"{where}product_info[{i_index}].sku_order_id")
            count = unit_count(item.get("product_count"), f"{where}product_info[{i_index}].product_count")
            units[key] = units.get(key, 0) + count
    return units


def _title(item: dict[str, Any], where: str) -> str:
    name = blank_to_none(item.get("product_name"), f"{where}product_name")
    if name is None:
        raise MappingError(f"{where}product_name: a sku order always names its product")
    values = [s.get("value") for s in objects(item, "spec", where) if isinstance(s.get("value"), str)]
    return f"{name} - {' / '.join(values)}" if values else name


def _customer(payload: dict[str, Any]) -> Customer | None:
    open_id = blank_to_none(payload.get("doudian_open_id"), "doudian_open_id")
    return Customer(external_id=open_id, name=None, email=None, phone=None) if open_id else None


def _address(payload: dict[str, Any]) -> Address | None:
    addr = payload.get("post_addr") or {}
    if not isinstance(addr, dict):
        raise MappingError(f"post_addr: expected an object, got {type(addr).__name__}")

    def area(key: str) -> str | None:
        part = addr.get(key)
        if part is None:
            return None
        if not isinstance(part, dict):
            raise MappingError(f"post_addr.{key}: expected an object with a name")
        return blank_to_none(part.get("name"), f"post_addr.{key}.name")

    street = " ".join(p for p in (area("street"), blank_to_none(addr.get("detail"), "post_addr.detail")) if p)
    return china_address(
        name=blank_to_none(payload.get("post_receiver"), "post_receiver"),
        phone=blank_to_none(payload.get("post_tel"), "post_tel"),
        province=area("province"),
        city=area("city"),
        district=area("town"),
        address1=street or None,
    )


def _fen(value: Any, field: str) -> Decimal:
    return money_from_minor_units(value, field)


def _time(value: Any, field: str) -> datetime:
    return parse_epoch_seconds(value, field)
