"""WeChat Channels shop (微信小店) order object (``order/get``'s ``order``) -> CanonicalOrder. Pure.

Choices this mapping makes (sources and corrections: docs/platform-notes.md, WeChat section):

- Ids: ``order_id`` is the external id and the number the merchant sees; it is read as a string (a JSON
  integer is rendered exactly, a float is refused: 19-digit ids do not survive one). ``product_id`` and
  ``sku_id`` become the line's channel product/variant ids; ``sku_code`` (blank or missing when the merchant
  set none) is the merchant SKU, else the warehouse resolves the line through its listing ids. A line has
  no id of its own, so ``external_line_id`` is ``"<product_id>:<sku_id>"`` (suffixed ``#n`` when one SKU is
  listed twice).
- Times: ``create_time``/``update_time`` are epoch seconds. Money: integer **fen** -> Decimal yuan, CNY.
- Totals: total = ``price_info.order_price`` (what the buyer paid); shipping = ``change_freight`` when
  ``is_change_freight`` else ``freight``; tax = 0 (Chinese prices include VAT; the order has no tax field);
  subtotal = total - shipping (goods after every discount); discount = ``product_price`` - subtotal, which
  covers coupons, merchant/finder discounts, points deduction and price changes alike.
- Lines: unit_price = ``sale_price``; line_total = ``real_price`` (the line's paid total), else
  sale_price * sku_cnt. shipped_quantity = units of the line's (product_id, sku_id) in
  ``delivery_info.delivery_product_info[].product_infos[]``.
- Refunds come from the after-sale orders the connector attached (``channelhub_aftersale_orders``, each
  ``getaftersaleorder``'s ``after_sale_order``); an order that lists after-sale ids
  (``aftersale_detail.aftersale_order_list``) without all of them attached is a ``mapping_failed``: its
  refunds cannot be exact. An after-sale counts once finished: ``MERCHANT_REFUND_SUCCESS`` (退款完成) or
  ``MERCHANT_RETURN_SUCCESS`` (退货退款完成); every other known status (in progress, rejected, closed,
  cancelled, refund failed) counts nothing, and an unknown status or type is a ``mapping_failed``.
  refunded_quantity = the finished after-sales' ``product_info.count`` of the line's (product_id, sku_id);
  restocked_quantity = those of type ``RETURN`` finished as ``MERCHANT_RETURN_SUCCESS`` (the buyer sent the
  goods back and the merchant received them before refunding); a ``REFUND`` (money only) restocks nothing.
- Status codes:

  ====  =======================================  ===============  ======================  =========
  code  meaning                                  payment_status   fulfillment_status      cancelled
  ====  =======================================  ===============  ======================  =========
  10    待付款 unpaid                            unpaid           from parcels            no
  12    礼物待收下 gift not accepted yet         paid             from parcels            no
  13    凑单买凑团中 group buy forming           paid             from parcels            no
  20    待发货 paid, to ship                     paid*            from parcels            no
  21    部分发货 partly shipped                  paid*            partial                 no
  30    待收货 shipped                           paid*            fulfilled               no
  100   完成 completed                           paid*            fulfilled               no
  190   超卖商家取消 merchant cancel (oversold)  refunded         from parcels            yes
  200   全部商品售后之后订单取消                 refunded         from parcels            yes
  250   未付款取消/超时取消 unpaid cancel        voided           unfulfilled             yes
  ====  =======================================  ===============  ======================  =========

  (*) "partially_refunded" when some units finished an after-sale, "refunded" when all did.
  ``12``/``13`` are not confirmed beyond the contract's table.
  "From parcels": nothing shipped -> unfulfilled, every unit shipped -> fulfilled, else partial.
- totals.refunded: the sum of the finished after-sales' ``refund_info.amount`` (fen, exact). A 190/200
  order (cancelled after payment) with no after-sale order at all was refunded whole: ``order_price``.
- cancelled_at: the order carries no cancel time; for a cancelled order it is ``update_time``, the moment
  the order reached its final state.
- Customer: ``openid`` only (no name, email or phone apart from the address). Address: ``address_info``,
  country "CN" (Channels shops deliver in mainland China), ``county_name`` as district, ``detail_info`` as
  address1 and ``house_number`` as address2; ``tel_number`` (possibly masked) as phone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from canonical.order import Address, CanonicalOrder, Customer, MappingError, OrderLine, Totals
from mappings.common import (
    PersonalData,
    blank_to_none,
    id_str,
    map_identified,
    money_from_minor_units,
    parse_epoch_seconds,
    under,
    unit_count,
)

PLATFORM = "wechat_channels"
CURRENCY = "CNY"
FEN = Decimal("0.01")
AFTERSALE_ORDERS_KEY = "channelhub_aftersale_orders"  # attached by the connector (not a WeChat field)
AFTERSALE_ERRORS_KEY = "channelhub_aftersale_errors"

_RECEIVER = "order_detail/delivery_info/address_info"
PERSONAL_DATA = PersonalData(
    # The buyer's ids under the shop's appid and across WeChat. The mini-program shipping upload needs the
    # payer's openid under the mini program's appid, which the connector asks the mini program for: this
    # one is never used for it (docs/platform-notes.md, WeChat).
    personal=frozenset(
        {"openid", "unionid"}
        | under(f"{AFTERSALE_ORDERS_KEY}/*", "openid", "unionid")
        | under(_RECEIVER, "lat", "lng")  # a delivery needs the street, not its coordinates
    ),
    fulfilment=frozenset(
        under(
            _RECEIVER,
            "user_name",
            "tel_number",
            "virtual_order_tel_number",
            "tel_number_ext_info",
            "detail_info",
            "house_number",
            "postal_code",
            "hash_code",  # a digest of the address: it recognises the receiver as well as the address does
        )
        | {"order_detail/ext_info/customer_notes", f"{AFTERSALE_ORDERS_KEY}/*/details/tel_number"}
    ),
)

# getaftersaleorder's status values (AfterSaleStatus). Only the two "success" ones moved money.
AFTERSALE_FINISHED = frozenset({"MERCHANT_REFUND_SUCCESS", "MERCHANT_RETURN_SUCCESS"})
AFTERSALE_STATUSES = AFTERSALE_FINISHED | frozenset(
    {
        "USER_CANCELD",  # sic
        "MERCHANT_PROCESSING",
        "MERCHANT_REJECT_REFUND",
        "MERCHANT_REJECT_RETURN",
        "USER_WAIT_RETURN",
        "RETURN_CLOSED",
        "MERCHANT_WAIT_RECEIPT",
        "MERCHANT_OVERDUE_REFUND",
        "PLATFORM_REFUNDING",
        "PLATFORM_REFUND_FAIL",
        "USER_WAIT_CONFIRM",
        "MERCHANT_REFUND_RETRY_FAIL",
        "MERCHANT_FAIL",
    }
)
AFTERSALE_RETURN_DONE = "MERCHANT_RETURN_SUCCESS"
AFTERSALE_TYPES = frozenset({"REFUND", "RETURN"})  # 仅退款 / 退货退款

PAID_STATUSES = frozenset({12, 13, 20, 21, 30, 100})
CANCELLED_AFTER_PAYMENT = frozenset({190, 200})
STATUS_UNPAID = 10
STATUS_PARTLY_SHIPPED = 21
STATUS_DELIVERED = frozenset({30, 100})
STATUS_CANCELLED_UNPAID = 250
KNOWN_STATUSES = PAID_STATUSES | CANCELLED_AFTER_PAYMENT | {STATUS_UNPAID, STATUS_CANCELLED_UNPAID}


def unwrap(document: Any) -> list[dict[str, Any]]:
    """The order objects in a document: ``order/get``'s answer ``{"errcode": 0, "order": {...}}``, a bare
    order object (as the connector yields it), a list of them, or ``{"orders": [...]}``."""
    if isinstance(document, list):
        for index, order in enumerate(document):
            if not isinstance(order, dict):
                raise MappingError(f"[{index}]: expected an order object, got {type(order).__name__}")
        return list(document)
    if not isinstance(document, dict):
        raise MappingError(f"expected a WeChat Channels order document, got {type(document).__name__}")
    errcode = document.get("errcode")
    if errcode not in (None, 0):
        raise MappingError(
            f"a WeChat error answer, not an order: errcode {errcode}: {document.get('errmsg')}"
        )
    if "order" in document:
        order = document["order"]
        if not isinstance(order, dict):
            raise MappingError(f'"order" must be an order object, got {type(order).__name__}')
        return [order]
    if "orders" in document:
        orders = document["orders"]
        if not isinstance(orders, list):
            raise MappingError(f'"orders" must be a list, got {type(orders).__name__}')
        return unwrap(orders)
    if "order_id" in document:
        return [document]
    if "order_id_list" in document:
        raise MappingError(
            "an order/list/get answer holds order ids only; fetch each order with order/get and map that"
        )
    raise MappingError(
        'not a WeChat Channels order document: expected an order object, {"order": {...}} or a list; '
        f"got keys {sorted(document)[:10]}"
    )


def map_order(payload: dict[str, Any]) -> CanonicalOrder:
    """One Channels order object -> CanonicalOrder; MappingError names what is wrong and where."""
    return map_identified("wechat_channels", "WeChat Channels", payload, "order_id", _map)


def _map(payload: dict[str, Any], external_id: str) -> CanonicalOrder:
    status = payload.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or status not in KNOWN_STATUSES:
        known = ", ".join(str(code) for code in sorted(KNOWN_STATUSES))
        raise MappingError(f"status: unknown value {status!r} (known: {known})")
    detail = _object(payload, "order_detail", "", required=True)
    price_info = _object(detail, "price_info", "order_detail.", required=True)
    delivery_info = _object(detail, "delivery_info", "order_detail.")

    aftersales = _aftersales(payload)
    lines = _lines(detail, delivery_info, aftersales)
    totals = _totals(price_info, status, aftersales)
    updated_at = parse_epoch_seconds(payload.get("update_time"), "update_time")
    cancelled = status in CANCELLED_AFTER_PAYMENT or status == STATUS_CANCELLED_UNPAID
    openid = blank_to_none(payload.get("openid"), "openid")
    return CanonicalOrder(
        platform=PLATFORM,
        external_id=external_id,
        number=external_id,
        created_at=parse_epoch_seconds(payload.get("create_time"), "create_time"),
        updated_at=updated_at,
        currency=CURRENCY,
        payment_status=_payment_status(status, lines),  # type: ignore[arg-type]
        fulfillment_status=_fulfillment_status(status, lines),  # type: ignore[arg-type]
        cancelled=cancelled,
        cancelled_at=updated_at if cancelled else None,
        totals=totals,
        lines=lines,
        customer=Customer(external_id=openid, name=None, email=None, phone=None) if openid else None,
        shipping_address=_address(delivery_info.get("address_info")),
    )


# -- status --------------------------------------------------------------------------------------


def _payment_status(status: int, lines: list[OrderLine]) -> str:
    if status == STATUS_UNPAID:
        return "unpaid"
    if status == STATUS_CANCELLED_UNPAID:
        return "voided"
    if status in CANCELLED_AFTER_PAYMENT:
        return "refunded"
    refunded = sum(line.refunded_quantity for line in lines)
    if refunded == 0:
        return "paid"
    return "refunded" if refunded >= sum(line.quantity for line in lines) else "partially_refunded"


def _fulfillment_status(status: int, lines: list[OrderLine]) -> str:
    if status in STATUS_DELIVERED:
        return "fulfilled"
    if status == STATUS_PARTLY_SHIPPED:
        return "partial"
    if status == STATUS_CANCELLED_UNPAID:
        return "unfulfilled"
    shipped = sum(line.shipped_quantity for line in lines)
    if shipped == 0:
        return "unfulfilled"
    return "fulfilled" if all(line.shipped_quantity >= line.quantity for line in lines) else "partial"


# -- money ---------------------------------------------------------------------------------------


def _fen(obj: dict[str, Any], key: str, where: str, *, default: int | None = None) -> Decimal:
    value = obj.get(key, default)
    if value is None:
        raise MappingError(f"{where}{key}: missing")
    amount = money_from_minor_units(value, f"{where}{key}")
    if amount < 0:
        raise MappingError(f"{where}{key}: negative amount {value!r}")
    return amount


def _totals(price_info: dict[str, Any], status: int, aftersales: list[_AfterSale]) -> Totals:
    where = "order_detail.price_info."
    total = _fen(price_info, "order_price", where)
    if price_info.get("is_change_freight") is True:
        shipping = _fen(price_info, "change_freight", where)
    else:
        shipping = _fen(price_info, "freight", where, default=0)
    product_price = _fen(price_info, "product_price", where)
    subtotal = total - shipping
    if subtotal < 0:
        raise MappingError(f"{where}order_price: {total} is less than the shipping {shipping}")
    discount = product_price - subtotal
    if discount < 0:
        raise MappingError(f"{where}order_price: goods paid {subtotal} exceed product_price {product_price}")
    finished = [a for a in aftersales if a.finished]
    if status in CANCELLED_AFTER_PAYMENT and not aftersales:
        refunded = total  # cancelled after payment without any after-sale order: refunded whole [U]
    else:
        refunded = sum((a.amount for a in finished), Decimal("0.00"))
    if refunded > total:
        raise MappingError(
            f"{AFTERSALE_ORDERS_KEY}: finished after-sales refund {refunded}, more than the order's {total}"
        )
    return Totals(
        subtotal=subtotal,
        discount=discount,
        shipping=shipping,
        tax=Decimal("0.00"),
        total=total,
        refunded=refunded,
    )


# -- after-sales ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AfterSale:
    key: tuple[str, str]  # (product_id, sku_id)
    units: int
    amount: Decimal  # refund_info.amount in yuan
    finished: bool  # the money went back
    returned: bool  # the goods came back first (RETURN, MERCHANT_RETURN_SUCCESS)


def _aftersales(payload: dict[str, Any]) -> list[_AfterSale]:
    """The order's after-sale orders, every one its ``aftersale_detail`` lists, from what the connector
    attached; MappingError when one is missing, unknown or malformed (refunds must be exact)."""
    detail = _object(payload, "aftersale_detail", "")
    listed = detail.get("aftersale_order_list") or []
    if not isinstance(listed, list) or not all(isinstance(entry, dict) for entry in listed):
        raise MappingError("aftersale_detail.aftersale_order_list: expected a list of objects")
    wanted = [
        id_str(
            entry.get("aftersale_order_id"), f"aftersale_detail.aftersale_order_list[{n}].aftersale_order_id"
        )
        for n, entry in enumerate(listed)
    ]
    attached = payload.get(AFTERSALE_ORDERS_KEY)
    if attached is None:
        if wanted:
            raise MappingError(
                f"aftersale_detail lists {len(wanted)} after-sale order(s) but none was fetched "
                f"({AFTERSALE_ORDERS_KEY} is missing): refunds cannot be exact"
            )
        return []
    if not isinstance(attached, list) or not all(isinstance(found, dict) for found in attached):
        raise MappingError(f"{AFTERSALE_ORDERS_KEY}: expected a list of objects")
    by_id: dict[str, dict[str, Any]] = {}
    for n, found in enumerate(attached):
        by_id[
            id_str(found.get("after_sale_order_id"), f"{AFTERSALE_ORDERS_KEY}[{n}].after_sale_order_id")
        ] = found
    missing = [aftersale_id for aftersale_id in dict.fromkeys(wanted) if aftersale_id not in by_id]
    if missing:
        errors = payload.get(AFTERSALE_ERRORS_KEY)
        why = errors.get(missing[0]) if isinstance(errors, dict) else None
        raise MappingError(
            f"after-sale order {missing[0]} is listed but was not fetched"
            + (f" ({why})" if isinstance(why, str) else "")
            + ": refunds cannot be exact"
        )
    return [_aftersale(found, f"{AFTERSALE_ORDERS_KEY}[{found_id}].") for found_id, found in by_id.items()]


def _aftersale(found: dict[str, Any], where: str) -> _AfterSale:
    status, kind = found.get("status"), found.get("type")
    if status not in AFTERSALE_STATUSES:
        raise MappingError(f"{where}status: unknown after-sale status {status!r}")
    if kind not in AFTERSALE_TYPES:
        raise MappingError(f"{where}type: unknown after-sale type {kind!r} (known: REFUND, RETURN)")
    product = _object(found, "product_info", where, required=True)
    key = (
        id_str(product.get("product_id"), f"{where}product_info.product_id"),
        id_str(product.get("sku_id"), f"{where}product_info.sku_id"),
    )
    units = unit_count(product.get("count"), f"{where}product_info.count")
    refund = _object(found, "refund_info", where)
    finished = status in AFTERSALE_FINISHED
    amount = _fen(refund, "amount", f"{where}refund_info.", default=0 if not finished else None)
    return _AfterSale(
        key, units, amount, finished, finished and kind == "RETURN" and status == AFTERSALE_RETURN_DONE
    )


# -- lines ---------------------------------------------------------------------------------------


def _lines(
    detail: dict[str, Any], delivery_info: dict[str, Any], aftersales: list[_AfterSale]
) -> list[OrderLine]:
    items = detail.get("product_infos")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MappingError("order_detail.product_infos: expected a list of objects")
    shipped = _shipped_units(delivery_info)
    refunded: Counter[tuple[str, str]] = Counter()
    restocked: Counter[tuple[str, str]] = Counter()
    for aftersale in aftersales:
        if aftersale.finished:
            refunded[aftersale.key] += aftersale.units
            restocked[aftersale.key] += aftersale.units if aftersale.returned else 0
    seen: Counter[str] = Counter()
    lines = []
    for index, item in enumerate(items):
        where = f"order_detail.product_infos[{index}]."
        product_id = id_str(item.get("product_id"), f"{where}product_id")
        sku_id = id_str(item.get("sku_id"), f"{where}sku_id")
        quantity = unit_count(item.get("sku_cnt"), f"{where}sku_cnt")
        unit_price = _fen(item, "sale_price", where)
        line_total = (
            _fen(item, "real_price", where) if item.get("real_price") is not None else unit_price * quantity
        )
        key = f"{product_id}:{sku_id}"
        seen[key] += 1
        shipped_here = min(shipped[(product_id, sku_id)], quantity)
        shipped[(product_id, sku_id)] -= shipped_here  # one SKU on two lines: fill them in order
        refunded_here = min(refunded[(product_id, sku_id)], quantity)
        refunded[(product_id, sku_id)] -= refunded_here
        restocked_here = min(restocked[(product_id, sku_id)], refunded_here)
        restocked[(product_id, sku_id)] -= restocked_here
        lines.append(
            OrderLine(
                external_line_id=key if seen[key] == 1 else f"{key}#{seen[key]}",
                sku=blank_to_none(item.get("sku_code"), f"{where}sku_code"),
                channel_product_id=product_id,
                channel_variant_id=sku_id,
                title=blank_to_none(item.get("title"), f"{where}title") or "",
                quantity=quantity,
                unit_price=unit_price,
                line_total=line_total,
                shipped_quantity=shipped_here,
                refunded_quantity=refunded_here,
                restocked_quantity=restocked_here,
            )
        )
    left = {key: units for key, units in refunded.items() if units > 0}
    if left:
        (product_id, sku_id), units = next(iter(left.items()))
        raise MappingError(
            f"{AFTERSALE_ORDERS_KEY}: {units} unit(s) of product {product_id} sku {sku_id} refunded beyond "
            "what the order holds of it"
        )
    return lines


def _shipped_units(delivery_info: dict[str, Any]) -> Counter[tuple[str, str]]:
    shipped: Counter[tuple[str, str]] = Counter()
    parcels = delivery_info.get("delivery_product_info")
    if parcels is None:
        return shipped
    if not isinstance(parcels, list) or not all(isinstance(parcel, dict) for parcel in parcels):
        raise MappingError("order_detail.delivery_info.delivery_product_info: expected a list of objects")
    for p_index, parcel in enumerate(parcels):
        where = f"order_detail.delivery_info.delivery_product_info[{p_index}]."
        products = parcel.get("product_infos") or []
        if not isinstance(products, list) or not all(isinstance(product, dict) for product in products):
            raise MappingError(f"{where}product_infos: expected a list of objects")
        for index, product in enumerate(products):
            item_where = f"{where}product_infos[{index}]."
            key = (
                id_str(product.get("product_id"), f"{item_where}product_id"),
                id_str(product.get("sku_id"), f"{item_where}sku_id"),
            )
            shipped[key] += unit_count(product.get("product_cnt"), f"{item_where}product_cnt")
    return shipped


# -- places --------------------------------------------------------------------------------------


def _address(address: Any) -> Address | None:
    if not address:
        return None
    if not isinstance(address, dict):
        raise MappingError(f"order_detail.delivery_info.address_info: expected an object, got {address!r}")

    def text(key: str) -> str | None:
        return blank_to_none(address.get(key), f"order_detail.delivery_info.address_info.{key}")

    phone = text("tel_number") or text("virtual_order_tel_number")
    return Address(
        name=text("user_name"),
        phone=phone,
        country_code="CN",
        province=text("province_name"),
        city=text("city_name"),
        district=text("county_name"),
        address1=text("detail_info"),
        address2=text("house_number"),
        postal_code=text("postal_code"),
    )


# -- small readers -------------------------------------------------------------------------------


def _object(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        if required:
            raise MappingError(f"{where}{key}: missing")
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{where}{key}: expected an object, got {type(value).__name__}")
    return value
