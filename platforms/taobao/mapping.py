"""Taobao trade (``taobao.trade.fullinfo.get``'s ``trade``) -> CanonicalOrder. Pure: no I/O, no clock.

Choices (sources in NOTES.md):
- Times are naive Beijing wall times ``yyyy-MM-dd HH:mm:ss``; "" or absent when unset. Money is yuan strings,
  currency CNY. ``tid`` (a number above 2^53: ``tid_str`` wins when present) is the external id and number.
- totals: total = ``payment``; shipping = ``post_fee``; subtotal = payment - post_fee; discount =
  ``total_fee`` (goods) + post_fee - payment (a seller's price adjustment shows as a negative discount);
  tax 0 (prices include VAT, TOP has no tax field); refunded = the refunded sub-orders' paid amounts, all of
  ``payment`` (postage too) once every sub-order is refunded and the trade closed.
- lines (``orders.order[]``): sku = ``outer_sku_id``, else ``outer_iid`` for an item without SKUs ("" ->
  None: the warehouse then resolves ``num_iid``/``sku_id``); unit_price = ``price``; line_total = the
  sub-order's paid share ``divide_order_fee``, else ``payment`` (which for a trade of one sub-order includes
  the postage, as Taobao's doc warns: it is taken off then).
- Taobao refunds and ships whole sub-orders: ``refund_status`` SUCCESS refunds every unit of the sub-order
  (its line_total); a sub-order with an ``invoice_no`` or ``consign_time``, or in a shipped status, shipped
  every unit not refunded. No restock information: restocked 0.
- payment_status: no ``pay_time`` -> unpaid ("voided" once closed); else refunded / partially_refunded / paid
  by the refunded amount against ``payment``. cancelled: closed (TRADE_CLOSED_BY_TAOBAO, or TRADE_CLOSED)
  with nothing ever shipped; a closed trade that had shipped is a full return (its lines carry the refunds).
- customer: ``buyer_open_uid`` and ``buyer_nick`` (both often masked by Taobao); no e-mail or phone.
  Address: the ``receiver_*`` fields, country CN.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from canonical.order import Address, CanonicalOrder, Customer, MappingError, OrderLine
from mappings.common import (
    PersonalData,
    about_order,
    blank_to_none,
    china_address,
    id_str,
    json_object,
    money,
    parse_beijing_datetime,
    parse_optional_beijing_datetime,
    totals_paid_with_postage,
    unit_count,
)

PLATFORM = "taobao"
CURRENCY = "CNY"
STATUSES = frozenset(
    {
        "TRADE_NO_CREATE_PAY",
        "WAIT_BUYER_PAY",
        "SELLER_CONSIGNED_PART",
        "WAIT_SELLER_SEND_GOODS",
        "WAIT_BUYER_CONFIRM_GOODS",
        "TRADE_BUYER_SIGNED",
        "TRADE_FINISHED",
        "TRADE_CLOSED",
        "TRADE_CLOSED_BY_TAOBAO",
        "PAY_PENDING",
        "WAIT_PRE_AUTH_CONFIRM",
        "PAID_FORBID_CONSIGN",
    }
)
SHIPPED = frozenset({"WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED", "TRADE_FINISHED"})
CLOSED = frozenset({"TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO"})
REFUND_STATUSES = frozenset(
    {
        "NO_REFUND",
        "WAIT_SELLER_AGREE",
        "WAIT_BUYER_RETURN_GOODS",
        "WAIT_SELLER_CONFIRM_GOODS",
        "SELLER_REFUSE_BUYER",
        "CLOSED",
        "SUCCESS",
    }
)
PERSONAL_DATA = PersonalData(
    # The buyer's nick and open uid (who bought), never needed to ship.
    personal=frozenset({"buyer_nick", "buyer_open_uid", "buyer_email", "buyer_alipay_no"}),
    fulfilment=frozenset(
        {
            "receiver_name",
            "receiver_mobile",
            "receiver_phone",
            "receiver_address",
            "receiver_town",
            "receiver_zip",
            "buyer_message",
        }
    ),
)


def unwrap(document: Any) -> list[dict[str, Any]]:
    """The trades in a TOP document: a fullinfo answer (``{"trade_fullinfo_get_response": {"trade"}}``), an
    increment page (``{"trades_sold_increment_get_response": {"trades": {"trade": [...]}}}``), a bare trade,
    or a list of trades."""
    if isinstance(document, list):
        return [json_object(item, f"[{index}]", "a trade") for index, item in enumerate(document)]
    if not isinstance(document, dict):
        raise MappingError(f"expected a Taobao trade document (JSON object), got {type(document).__name__}")
    if "error_response" in document:
        raise MappingError(f"a TOP error answer, not a trade: {str(document['error_response'])[:200]}")
    if "trade_fullinfo_get_response" in document:
        return unwrap(document["trade_fullinfo_get_response"])
    if "trades_sold_increment_get_response" in document:
        trades = document["trades_sold_increment_get_response"].get("trades") or {}
        return unwrap(trades.get("trade") or [] if isinstance(trades, dict) else trades)
    if "trade" in document and isinstance(document["trade"], dict):
        return [document["trade"]]
    if "tid" in document or "tid_str" in document:
        return [document]
    raise MappingError(f"not a Taobao trade document: got keys {sorted(document)[:10]}")


def map_order(payload: dict[str, Any]) -> CanonicalOrder:
    if not isinstance(payload, dict):
        raise MappingError(f"expected a Taobao trade object, got {type(payload).__name__}")
    raw = payload.get("tid_str") or payload.get("tid")
    if raw is None:
        raise MappingError("tid: missing; a Taobao trade always has one")
    tid = id_str(raw, "tid")
    with about_order(PLATFORM, tid):
        return _map(payload, tid)


def _map(trade: dict[str, Any], tid: str) -> CanonicalOrder:
    status = trade.get("status")
    if status not in STATUSES:
        raise MappingError(f"status: unknown value {status!r} (known: {', '.join(sorted(STATUSES))})")
    payment = money(trade.get("payment"), "payment")
    post_fee = money(trade.get("post_fee", "0.00"), "post_fee")
    goods = money(trade.get("total_fee"), "total_fee")
    orders = trade.get("orders")
    items = orders.get("order") if isinstance(orders, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise MappingError("orders.order: expected a non-empty list of sub-orders")
    pay_time = parse_optional_beijing_datetime(trade.get("pay_time"), "pay_time")
    trade_shipped = status in SHIPPED

    lines, refunded_total, ever_shipped = [], Decimal("0.00"), trade_shipped
    for index, item in enumerate(items):
        where = f"orders.order[{index}]."
        oid = id_str(item.get("oid_str") or item.get("oid"), f"{where}oid")
        quantity = unit_count(item.get("num"), f"{where}num")
        refund_status = item.get("refund_status", "NO_REFUND")
        if refund_status not in REFUND_STATUSES:
            raise MappingError(f"{where}refund_status: unknown value {refund_status!r}")
        line_total = _line_total(item, where, post_fee if len(items) == 1 else None)
        refunded = quantity if refund_status == "SUCCESS" else 0
        if refunded:
            refunded_total += line_total
        shipped = trade_shipped or bool(item.get("invoice_no")) or bool(item.get("consign_time"))
        ever_shipped = ever_shipped or shipped
        sku_id = item.get("sku_id")
        lines.append(
            OrderLine(
                external_line_id=oid,
                sku=blank_to_none(item.get("outer_sku_id"), f"{where}outer_sku_id")
                or (blank_to_none(item.get("outer_iid"), f"{where}outer_iid") if not sku_id else None),
                channel_product_id=id_str(item.get("num_iid"), f"{where}num_iid"),
                channel_variant_id=None if sku_id in (None, "", 0, "0") else id_str(sku_id, f"{where}sku_id"),
                title=blank_to_none(item.get("title"), f"{where}title") or "",
                quantity=quantity,
                unit_price=money(item.get("price"), f"{where}price"),
                line_total=line_total,
                shipped_quantity=quantity - refunded if shipped else 0,
                refunded_quantity=refunded,
            )
        )
    if status == "TRADE_CLOSED" and pay_time is not None and all(line.refunded_quantity for line in lines):
        refunded_total = payment  # every sub-order refunded closes the trade: the postage went back too
    refunded_total = min(refunded_total, payment)
    open_lines = [line for line in lines if line.quantity > line.refunded_quantity]
    shipped_lines = [line for line in lines if line.shipped_quantity > 0]
    if not shipped_lines:
        fulfillment = "unfulfilled"
    elif all(line.shipped_quantity > 0 for line in open_lines):
        fulfillment = "fulfilled"
    else:
        fulfillment = "partial"
    if pay_time is None:
        payment_status = "voided" if status in CLOSED else "unpaid"
    elif refunded_total > 0:
        payment_status = "refunded" if refunded_total >= payment else "partially_refunded"
    else:
        payment_status = "paid"
    cancelled = status in CLOSED and not ever_shipped  # a closed trade that had shipped is a full return
    modified = parse_beijing_datetime(trade.get("modified"), "modified")
    return CanonicalOrder(
        platform=PLATFORM,
        external_id=tid,
        number=tid,
        created_at=parse_beijing_datetime(trade.get("created"), "created"),
        updated_at=modified,
        currency=CURRENCY,
        payment_status=payment_status,  # type: ignore[arg-type]
        fulfillment_status=fulfillment,  # type: ignore[arg-type]
        cancelled=cancelled,
        cancelled_at=(parse_optional_beijing_datetime(trade.get("end_time"), "end_time") or modified)
        if cancelled
        else None,
        totals=totals_paid_with_postage(goods=goods, postage=post_fee, paid=payment, refunded=refunded_total),
        lines=lines,
        customer=_customer(trade),
        shipping_address=_address(trade),
    )


def _line_total(item: dict[str, Any], where: str, single_post_fee: Decimal | None) -> Decimal:
    if item.get("divide_order_fee") not in (None, ""):
        return money(item["divide_order_fee"], f"{where}divide_order_fee")
    paid = money(item.get("payment"), f"{where}payment")
    # "Order.payment includes the postage when the trade has one sub-order" (TOP's fullinfo doc).
    return paid - single_post_fee if single_post_fee is not None else paid


def _customer(trade: dict[str, Any]) -> Customer | None:
    uid = blank_to_none(trade.get("buyer_open_uid"), "buyer_open_uid")
    nick = blank_to_none(trade.get("buyer_nick"), "buyer_nick")
    if uid is None and nick is None:
        return None
    return Customer(external_id=uid, name=nick, email=None, phone=None)


def _address(trade: dict[str, Any]) -> Address | None:
    def text(key: str) -> str | None:
        return blank_to_none(trade.get(key), key)

    return china_address(
        name=text("receiver_name"),
        phone=text("receiver_mobile") or text("receiver_phone"),
        province=text("receiver_state"),
        city=text("receiver_city"),
        district=text("receiver_district"),
        address1=text("receiver_address"),
        address2=text("receiver_town"),
        postal_code=text("receiver_zip"),
    )
