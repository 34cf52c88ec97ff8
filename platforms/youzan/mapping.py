"""Youzan trade (one item of ``youzan.trades.sold.get``'s ``full_order_info_list``, or ``youzan.trade.get``'s
``data``) -> CanonicalOrder. Pure: no I/O, no clock, no globals.

The payload is ``{"full_order_info": {order_info, orders, pay_info, buyer_info, address_info, ...},
"refund_order": [...], "delivery_order": [...], "order_promotion": {...}}`` (docs/platform-notes.md, Youzan;
the last three are optional: sold.get may carry only ``full_order_info``). Choices this mapping makes:

- Times are naive Beijing wall times (GMT+8), "" when unset. Money is yuan strings, currency CNY;
  ``deduction_*`` fields are fen and are not used for totals.
- number = external_id = ``order_info.tid`` ("E2019...").
- totals: shipping = ``pay_info.post_fee``; total = ``pay_info.payment``; discount = ``total_fee + post_fee -
  payment`` (Youzan's own relation payment = total_fee - discounts + adjust + post_fee, so a manual price
  adjustment shows as a negative discount); subtotal = goods after discounts = total - shipping; tax = 0
  (prices include VAT; Youzan has no tax field); refunded = the sum of successful (``refund_state`` 60)
  ``refund_order[].refund_fee``.
- lines: sku = ``outer_sku_id`` (the merchant's code; "" -> None, then the warehouse resolves the line through
  ``item_id``/``sku_id``); channel_variant_id = ``sku_id`` except 0 (a single-spec item has no sku);
  unit_price = ``price``; line_total = ``payment`` (the line's apportioned paid amount).
- Youzan refunds and ships whole sub-orders (oids), without unit counts, so per line:
  refunded_quantity = units covered by successful refunds, from the fee: a refund's fee is shared over its
  oids in proportion to their ``payment`` and divided by the unit payment (rounded, at least 1, at most
  ``num``; a free line refunds all its units). shipped_quantity = ``num`` - refunded units for an oid in
  a shipped ``delivery_order`` (``express_state`` 1), else 0: a refunded unit of a shipped sub-order
  either never left (refunded before shipping) or came back, and Youzan does not say which, nor whether
  it was restocked, so restocked_quantity stays 0. Without ``delivery_order``, a status of
  WAIT_BUYER_CONFIRM_GOODS or TRADE_SUCCESS (or a ``consign_time``) means every line shipped.
- payment_status: no ``pay_time`` -> "unpaid" ("voided" once TRADE_CLOSED); paid -> "refunded" /
  "partially_refunded" / "paid" from the refunded total against ``payment``; without ``refund_order`` the
  order's ``refund_state`` (12 full, 2 partial) says it.
- cancelled: TRADE_CLOSED with nothing ever shipped (expired, cancelled, or fully refunded before shipping).
  A closed order that had shipped is a full return: not cancelled, its lines carry the refunds.
- customer: external_id = ``buyer_info.yz_open_id`` (else ``buyer_id``), name = ``order_extra.buyer_name`` or
  ``fans_nickname``, phone = ``buyer_phone``; Youzan has no e-mail. Address country is CN (Youzan ships
  within mainland China).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from canonical.order import Address, CanonicalOrder, Customer, MappingError, OrderLine
from mappings.common import (
    PersonalData,
    about_order,
    blank_to_none,
    china_address,
    id_str,
    json_object,
    json_objects,
    money,
    objects,
    parse_beijing_datetime,
    parse_optional_beijing_datetime,
    totals_paid_with_postage,
    under,
    unit_count,
)

PLATFORM = "youzan"

PERSONAL_DATA = PersonalData(
    # The buyer's Youzan and WeChat ids (outer_user_id is an openid), nickname, name and bound phone: the
    # receiver's are in address_info.
    personal=frozenset(
        under(
            "full_order_info/buyer_info",
            "yz_open_id",
            "buyer_id",
            "fans_id",
            "outer_user_id",
            "fans_nickname",
            "buyer_phone",
        )
        | {"full_order_info/order_info/order_extra/buyer_name"}
    ),
    fulfilment=frozenset(
        under(
            "full_order_info/address_info",
            "receiver_name",
            "receiver_tel",
            "delivery_address",
            "delivery_postal_code",
            "address_extra",  # JSON text: area code and the address's coordinates
            "self_fetch_info",  # JSON text: who picks the parcel up, and their phone
        )
        | {"full_order_info/remark_info/buyer_message", "full_order_info/orders/*/buyer_messages"}
    ),
)
CURRENCY = "CNY"
REFUND_SUCCESS = 60
SHIPPED_STATUSES = frozenset({"WAIT_BUYER_CONFIRM_GOODS", "TRADE_SUCCESS"})
STATUSES = frozenset(
    {
        "WAIT_BUYER_PAY",
        "TRADE_PAID",
        "WAIT_CONFIRM",
        "WAIT_SELLER_SEND_GOODS",
        "WAIT_BUYER_CONFIRM_GOODS",
        "TRADE_SUCCESS",
        "TRADE_CLOSED",
        "WAIT_GROUP",  # older name of WAIT_CONFIRM (group buying) [S]
    }
)


def unwrap(document: Any) -> list[dict[str, Any]]:
    """The trades in a Youzan document: a sold.get answer (``{"data": {"full_order_info_list": [...]}}`` or
    its ``data``), a trade.get answer (``{"data": {"full_order_info": ...}}``), one trade
    (``{"full_order_info": ...}``), a list of trades, or a bare ``full_order_info`` object."""
    if isinstance(document, list):
        return [json_object(item, f"[{index}]", "a trade") for index, item in enumerate(document)]
    if not isinstance(document, dict):
        raise MappingError(f"expected a Youzan trade document (JSON object), got {type(document).__name__}")
    if "gw_err_resp" in document:
        raise MappingError(f"a Youzan gateway error, not a trade: {str(document['gw_err_resp'])[:200]}")
    if document.get("success") is False or "error_response" in document:
        detail = document.get("message") or document.get("error_response")
        raise MappingError(f"a Youzan error answer, not a trade: code {document.get('code')}: {detail}")
    if "data" in document and ("success" in document or "code" in document):
        return unwrap(document["data"])
    if "full_order_info_list" in document:
        items = document["full_order_info_list"]
        if items is None:
            return []
        return json_objects(items, "full_order_info_list", "a trade")
    if "full_order_info" in document:
        return [document]
    if "order_info" in document and "orders" in document:
        return [{"full_order_info": document}]
    raise MappingError(
        "not a Youzan trade document: expected full_order_info_list, full_order_info or order_info; "
        f"got keys {sorted(document)[:10]}"
    )


def map_order(payload: dict[str, Any]) -> CanonicalOrder:
    """One Youzan trade -> CanonicalOrder; MappingError names what is wrong and where."""
    if not isinstance(payload, dict) or not isinstance(payload.get("full_order_info"), dict):
        raise MappingError('full_order_info: missing; a Youzan trade is {"full_order_info": {...}}')
    info = payload["full_order_info"]
    order_info = _object(info, "order_info", "full_order_info.")
    tid = blank_to_none(order_info.get("tid"), "full_order_info.order_info.tid")
    if tid is None:
        raise MappingError("full_order_info.order_info.tid: missing")
    with about_order("youzan", tid):
        return _map(payload, info, order_info, tid)


def _map(
    payload: dict[str, Any], info: dict[str, Any], order_info: dict[str, Any], tid: str
) -> CanonicalOrder:
    where = "full_order_info.order_info."
    status = order_info.get("status")
    if status not in STATUSES:
        raise MappingError(f"{where}status: unknown value {status!r} (known: {', '.join(sorted(STATUSES))})")
    pay_info = _object(info, "pay_info", "full_order_info.")
    total_fee = money(pay_info.get("total_fee"), "full_order_info.pay_info.total_fee")
    post_fee = money(pay_info.get("post_fee"), "full_order_info.pay_info.post_fee")
    payment = money(pay_info.get("payment"), "full_order_info.pay_info.payment")

    items = info.get("orders")
    if not isinstance(items, list) or not items:
        raise MappingError("full_order_info.orders: expected a non-empty list of sub-orders")
    oids = [_oid(item, index) for index, item in enumerate(items)]
    refunds = objects(payload, "refund_order")
    refunded_units, refunded_total = _refunds(refunds, items, oids)
    delivered = _delivered_oids(payload, set(oids))
    consign_time = parse_optional_beijing_datetime(order_info.get("consign_time"), f"{where}consign_time")
    if delivered is None:  # no delivery detail in this payload: the trade status says it all or nothing
        everything_shipped = status in SHIPPED_STATUSES or consign_time is not None
        delivered = set(oids) if everything_shipped else set()

    lines = []
    for index, (item, oid) in enumerate(zip(items, oids, strict=True)):
        line_where = f"full_order_info.orders[{index}]."
        quantity = unit_count(item.get("num"), f"{line_where}num")
        refunded = min(refunded_units[oid], quantity)
        sku_id = item.get("sku_id")
        lines.append(
            OrderLine(
                external_line_id=oid,
                sku=blank_to_none(item.get("outer_sku_id"), f"{line_where}outer_sku_id"),
                channel_product_id=id_str(item.get("item_id"), f"{line_where}item_id"),
                channel_variant_id=None
                if sku_id in (None, 0, "0", "")
                else id_str(sku_id, f"{line_where}sku_id"),
                title=blank_to_none(item.get("title"), f"{line_where}title") or "",
                quantity=quantity,
                unit_price=money(item.get("price"), f"{line_where}price"),
                line_total=money(item.get("payment"), f"{line_where}payment"),
                shipped_quantity=quantity - refunded if oid in delivered else 0,
                refunded_quantity=refunded,
                restocked_quantity=0,
            )
        )

    pay_time = parse_optional_beijing_datetime(order_info.get("pay_time"), f"{where}pay_time")
    refunded_amount = refunded_total if refunds else Decimal("0.00")
    payment_status = _payment_status(status, pay_time, payment, refunded_amount, order_info, bool(refunds))
    ever_shipped = bool(delivered) or consign_time is not None
    cancelled = status == "TRADE_CLOSED" and not ever_shipped
    closed_at = None
    if cancelled:
        closed_at = parse_beijing_datetime(order_info.get("update_time"), f"{where}update_time")

    open_lines = [line for line in lines if line.quantity - line.refunded_quantity > 0]
    shipped_lines = [line for line in lines if line.external_line_id in delivered]
    if not shipped_lines:
        fulfillment = "unfulfilled"
    elif all(line.external_line_id in delivered for line in open_lines):
        fulfillment = "fulfilled"
    else:
        fulfillment = "partial"

    return CanonicalOrder(
        platform=PLATFORM,
        external_id=tid,
        number=tid,
        created_at=parse_beijing_datetime(order_info.get("created"), f"{where}created"),
        updated_at=parse_beijing_datetime(order_info.get("update_time"), f"{where}update_time"),
        currency=CURRENCY,
        payment_status=payment_status,  # type: ignore[arg-type]
        fulfillment_status=fulfillment,  # type: ignore[arg-type]
        cancelled=cancelled,
        cancelled_at=closed_at,
        totals=totals_paid_with_postage(
            goods=total_fee, postage=post_fee, paid=payment, refunded=refunded_amount
        ),
        lines=lines,
        customer=_customer(info, order_info),
        shipping_address=_address(info.get("address_info")),
    )


def _payment_status(
    status: str,
    pay_time: datetime | None,
    payment: Decimal,
    refunded: Decimal,
    order_info: dict[str, Any],
    has_refund_detail: bool,
) -> str:
    if pay_time is None:
        return "voided" if status == "TRADE_CLOSED" else "unpaid"
    if has_refund_detail:
        if refunded > 0:
            return "refunded" if refunded >= payment else "partially_refunded"
        return "paid"
    refund_state = order_info.get("refund_state")
    if refund_state in (12, "12"):
        return "refunded"
    if refund_state in (2, "2"):
        return "partially_refunded"
    return "paid"


# -- refunds and deliveries ----------------------------------------------------------------------


def _refunds(
    refunds: list[dict[str, Any]], items: list[Any], oids: list[str]
) -> tuple[Counter[str], Decimal]:
    """Refunded units per oid and the refunded amount, from successful refunds."""
    by_oid = {oid: item for oid, item in zip(oids, items, strict=True)}
    units: Counter[str] = Counter()
    total = Decimal("0.00")
    for r_index, refund in enumerate(refunds):
        where = f"refund_order[{r_index}]."
        state = refund.get("refund_state")
        if state not in (REFUND_SUCCESS, str(REFUND_SUCCESS)):
            continue  # applied, refused, closed or still in progress: no money moved yet
        fee = money(refund.get("refund_fee"), f"{where}refund_fee")
        total += fee
        covered = []
        for o_index, entry in enumerate(objects(refund, "oids", where)):
            oid = id_str(entry.get("oid"), f"{where}oids[{o_index}].oid")
            if oid not in by_oid:
                raise MappingError(f"{where}oids[{o_index}].oid: {oid} is not a sub-order of this trade")
            covered.append(oid)
        if not covered:
            raise MappingError(f"{where}oids: a refund names no sub-order")
        payments = {oid: money(by_oid[oid].get("payment"), f"orders[oid={oid}].payment") for oid in covered}
        paid_total = sum(payments.values(), Decimal(0))
        for oid in covered:
            num = unit_count(by_oid[oid].get("num"), f"orders[oid={oid}].num")
            if payments[oid] <= 0 or paid_total <= 0:
                units[oid] += num  # a free line has no fee to count by: the refund covers it whole
                continue
            share = fee * payments[oid] / paid_total
            unit_payment = payments[oid] / num if num else Decimal(0)
            counted = int((share / unit_payment).quantize(Decimal(1), ROUND_HALF_UP)) if unit_payment else num
            units[oid] += max(1, min(num, counted))
    return units, total


def _delivered_oids(payload: dict[str, Any], oids: set[str]) -> set[str] | None:
    """Oids in a shipped delivery order, or None when the payload carries no delivery detail."""
    if payload.get("delivery_order") is None:
        return None
    delivered: set[str] = set()
    for d_index, delivery in enumerate(objects(payload, "delivery_order")):
        if delivery.get("express_state") not in (1, "1"):
            continue  # 0: waiting to ship
        where = f"delivery_order[{d_index}]."
        for o_index, entry in enumerate(objects(delivery, "oids", where)):
            oid = id_str(entry.get("oid"), f"{where}oids[{o_index}].oid")
            if oid not in oids:
                raise MappingError(f"{where}oids[{o_index}].oid: {oid} is not a sub-order of this trade")
            delivered.add(oid)
    return delivered


# -- people and places ---------------------------------------------------------------------------


def _customer(info: dict[str, Any], order_info: dict[str, Any]) -> Customer | None:
    buyer = info.get("buyer_info")
    if not buyer:
        return None
    if not isinstance(buyer, dict):
        raise MappingError(f"full_order_info.buyer_info: expected an object, got {type(buyer).__name__}")
    where = "full_order_info.buyer_info."
    external_id = blank_to_none(buyer.get("yz_open_id"), f"{where}yz_open_id")
    if external_id is None and buyer.get("buyer_id") not in (None, 0, "", "0"):
        external_id = id_str(buyer.get("buyer_id"), f"{where}buyer_id")
    extra = order_info.get("order_extra") if isinstance(order_info.get("order_extra"), dict) else {}
    name = blank_to_none(extra.get("buyer_name"), "full_order_info.order_info.order_extra.buyer_name")
    phone = blank_to_none(buyer.get("buyer_phone"), f"{where}buyer_phone")
    name = name or blank_to_none(buyer.get("fans_nickname"), f"{where}fans_nickname")
    if external_id is None and name is None and phone is None:
        return None
    return Customer(external_id=external_id, name=name, email=None, phone=phone)


def _address(address: Any) -> Address | None:
    if not address:
        return None
    if not isinstance(address, dict):
        raise MappingError(f"full_order_info.address_info: expected an object, got {type(address).__name__}")

    def text(key: str) -> str | None:
        return blank_to_none(address.get(key), f"full_order_info.address_info.{key}")

    return china_address(
        name=text("receiver_name"),
        phone=text("receiver_tel"),
        province=text("delivery_province"),
        city=text("delivery_city"),
        district=text("delivery_district"),
        address1=text("delivery_address"),
        postal_code=text("delivery_postal_code"),
    )


# -- small readers -------------------------------------------------------------------------------


def _object(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise MappingError(f"{where}{key}: expected an object, got {type(value).__name__}")
    return value


def _oid(item: Any, index: int) -> str:
    if not isinstance(item, dict):
        raise MappingError(f"full_order_info.orders[{index}]: expected an object, got {type(item).__name__}")
    return id_str(item.get("oid"), f"full_order_info.orders[{index}].oid")
