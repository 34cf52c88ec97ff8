"""World order states -> Pinduoduo ``order_info`` objects (the same in the increment list and in
``pdd.order.information.get``); order_sn <-> world index.

How the world becomes Pinduoduo (facts: platforms/pinduoduo/NOTES.md):
- Buyers pay at checkout and only paid orders are orders on Pinduoduo, so every world order is paid at
  creation (``pay_time`` = ``confirm_time`` = ``created_time``).
- Money: yuan as JSON numbers (the docs type them DOUBLE); ``goods_amount`` = price x count summed,
  ``discount_amount`` = the world's discounts, ``postage`` the shipping price, ``pay_amount`` = goods -
  discount + postage. The world's sales tax is not rendered (prices include VAT).
- Times: Beijing wall time ``yyyy-MM-dd HH:mm:ss``, "" when unset.
- Pinduoduo ships whole orders with one waybill: ``order_status`` 2 once every open unit shipped (3 once the
  world closes the order: received), with the waybill of the last package (or the one a
  ``redelivery_type`` 2 call set); a partly shipped world order still waits (1).
- Refunds: ``refund_status`` 4 (退款成功) once the order is cancelled or every unit refunded; partial
  refunds live in the after-sales API, which the sandbox does not serve (1 meanwhile).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.gateway import CHINA, china_time
from sandbox.world import ZERO, OrderState, World

_ORDER_SN = re.compile(r"(\d{6})-(\d{15})")
# pdd.logistics.companies.get as the sandbox serves it: (id, logistics_company, code). [U] the ids of the
# real list; the connector reads them from this call and never relies on them.
LOGISTICS_COMPANIES: tuple[tuple[int, str, str], ...] = (
    (1, "申通快递", "STO"),
    (3, "百世快递", "HT"),
    (44, "顺丰快递", "SF"),
    (85, "圆通快递", "YTO"),
    (115, "中通快递", "ZTO"),
    (118, "邮政EMS", "EMS"),
    (120, "京东快递", "JD"),
    (121, "韵达快递", "YUNDA"),
    (131, "德邦快递", "DEPPON"),
    (132, "邮政快递包裹", "YZXB"),
    (384, "极兔速递", "JTSD"),
    (425, "UPS", "UPS"),
    (426, "FedEx", "FEDEX"),
    (427, "USPS", "USPS"),
)
LOGISTICS_NAMES = {company_id: name for company_id, name, _ in LOGISTICS_COMPANIES}
LOGISTICS_IDS = {name.upper(): company_id for company_id, name, _ in LOGISTICS_COMPANIES}


def _yuan(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01")))


def _digits(text: str | None) -> str:
    return "".join(ch for ch in text or "" if ch.isdigit())


class PinduoduoRenderer:
    def __init__(self, world: World) -> None:
        self.world = world
        # order index -> (logistics company name, waybill) set by a redelivery_type 2 call
        self.tracking_overrides: dict[int, tuple[str, str]] = {}

    def order_sn(self, index: int) -> str:
        created = datetime.fromtimestamp(self.world.created_ts(index), CHINA)
        return f"{created:%y%m%d}-{481_803_633_000_000 + index:015d}"

    def index_of(self, order_sn: str) -> int | None:
        match = _ORDER_SN.fullmatch(order_sn) if isinstance(order_sn, str) else None
        if match is None:
            return None
        index = int(match.group(2)) - 481_803_633_000_000
        try:
            return index if index >= 0 and self.order_sn(index) == order_sn else None
        except (ValueError, OverflowError, OSError):  # an index whose creation lies past year 9999
            return None

    @staticmethod
    def refunded_in_full(state: OrderState) -> bool:
        return state.cancelled or sum(state.refunded) >= sum(line.quantity for line in state.order.lines)

    @staticmethod
    def order_status(state: OrderState) -> int:
        if state.fulfillment_status != "fulfilled":
            return 1
        return 3 if state.closed else 2

    def waybill(self, state: OrderState) -> tuple[str, str, int | None]:
        """(company name, waybill, shipped at) of the order's parcel; ("", "", None) before it shipped."""
        if self.order_status(state) == 1 or not state.fulfillments:
            return "", "", None
        last = state.fulfillments[-1]
        company, number = self.tracking_overrides.get(
            state.order.index, (last.tracking_company, last.tracking_number)
        )
        return company, number, last.at

    def render(self, state: OrderState, *, malformed: bool = False) -> dict[str, Any]:
        order = state.order
        goods = sum((line.line_total for line in order.lines), ZERO)
        discount = sum((line.discount for line in order.lines), ZERO)
        postage = order.shipping.price
        company, number, shipped_at = self.waybill(state)
        refunded = self.refunded_in_full(state)
        status = self.order_status(state)
        address = order.shipping_address
        street = " ".join(part for part in (address.address1, address.address2) if part)
        items = []
        for line in order.lines:
            listing = line.variant.listing("pinduoduo")
            items.append(
                {
                    "goods_id": listing.product_id,
                    "sku_id": listing.variant_id,
                    "outer_id": listing.sku,
                    "outer_goods_id": line.variant.product_key,
                    "goods_name": line.variant.product_title,
                    "goods_price": _yuan(line.unit_price),
                    "goods_spec": line.variant.variant_title or "",
                    "goods_count": line.quantity,
                    "goods_img": f"https://img.pddpic.com/sandbox/{line.variant.product_key}.jpeg",
                }
            )
        if malformed and items:
            items[0]["goods_count"] = f"{items[0]['goods_count']}件"  # what the connector schema must catch
        created = china_time(order.created_ts)
        return {
            "order_sn": self.order_sn(order.index),
            "confirm_status": 1,
            "group_status": 1,
            "trade_type": 0,
            "order_status": status,
            "refund_status": 4 if refunded else 1,
            "after_sales_status": 10 if refunded else 0,
            "is_lucky_flag": 1,
            "created_time": created,
            "confirm_time": created,
            "pay_time": created,
            "updated_at": china_time(state.updated_ts),
            "shipping_time": china_time(shipped_at),
            "receive_time": china_time(state.closed_ts) if status == 3 else "",
            "last_ship_time": china_time(order.created_ts + 48 * 3600),
            "pay_amount": _yuan(goods - discount + postage),
            "goods_amount": _yuan(goods),
            "discount_amount": _yuan(discount),
            "seller_discount": _yuan(discount),
            "platform_discount": 0.0,
            "capital_free_discount": 0.0,
            "postage": _yuan(postage),
            "pay_type": "WEIXIN",
            "pay_no": f"4200000{order.index:021d}",
            "logistics_id": LOGISTICS_IDS.get(company.upper(), 0) if company else 0,
            "tracking_number": number,
            "country": "中国",
            "province": address.province,
            "city": address.city,
            "town": "",
            "receiver_name": address.name,
            "receiver_phone": _digits(address.phone),
            "receiver_address": street,
            "address": f"{address.province}{address.city}{street}",
            "buyer_memo": order.note or "",
            "remark": "",
            "item_list": items,
        }
