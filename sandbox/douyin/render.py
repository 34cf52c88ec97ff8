"""World order states -> Douyin shop orders (``order.searchList``'s items, ``order.orderDetail``'s
``shop_order_detail``: one shape), and Douyin ids <-> world indices.

How the world becomes Douyin (field meanings: platforms/douyin/NOTES.md):
- Money: the world's Decimal amounts as integer fen of CNY (a simulator, not an exchange rate); the world's
  sales tax is not rendered (Chinese retail prices include VAT): ``pay_amount`` = goods - discounts + post.
- Times: epoch seconds; ``pay_time`` 0 until paid. Douyin captures at checkout, so the world's "authorized"
  orders are paid at creation.
- Ids: shop order ``order_id`` and sku order ids are 19-digit strings; ``product_id`` is the 19-digit int
  (with ``product_id_str``), ``sku_id`` the world's Douyin listing id, ``code`` the merchant's code ("" for
  a few).
- After-sales act on whole sku orders: a sku order is rendered refunded (``after_sale_info.refund_status``
  3, ``after_sale_status`` 12) once refunds cover all its units of a paid order. An order whose every sku
  order was refunded before anything shipped is cancelled (status 4), as Douyin closes it.
- Packages: one ``logistics_info`` item per world fulfilment (``product_info[].product_count`` per sku
  order); the hub's ``order.logisticsEdit`` changes what a package shows (``tracking_overrides``).
- Status: 1 unpaid, 2 备货中 (paid, nothing shipped), 101 partly shipped, 3 shipped, 5 completed, 4 cancelled.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from sandbox.common import line_payment, paid_ts
from sandbox.world import ZERO, Fulfillment, OrderLine, OrderState, World

ORDER_BASE = 6_920_000_000_000_000_000
SLOTS = 32  # ids per order: the shop order, then one per sku order
REFUND_SUCCESS = 3
COMPANY_NAMES = {
    "shunfeng": "顺丰速运",
    "yuantong": "圆通速递",
    "zhongtong": "中通快递",
    "shentong": "申通快递",
    "yunda": "韵达快递",
    "huitongkuaidi": "百世快递",
    "ems": "EMS",
    "youzhengguonei": "邮政快递包裹",
    "jd": "京东快递",
    "debangwuliu": "德邦快递",
    "jtexpress": "极兔速递",
}
STATUS_TEXT = {
    1: "待支付",
    105: "已支付",
    2: "备货中",
    101: "部分发货",
    3: "已发货",
    4: "已取消",
    5: "已完成",
}


def fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def digest(*parts: object, length: int = 16) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


class DouyinRenderer:
    def __init__(self, world: World, shop_id: int) -> None:
        self.world = world
        self.shop_id = shop_id
        # (order index, package seq) -> (company code, tracking number) set by order.logisticsEdit
        self.tracking_overrides: dict[tuple[int, int], tuple[str, str]] = {}

    # -- ids ------------------------------------------------------------------------------------------
    @staticmethod
    def order_id(index: int) -> str:
        return str(ORDER_BASE + index * SLOTS)

    @staticmethod
    def sku_order_id(index: int, line: int) -> str:
        return str(ORDER_BASE + index * SLOTS + 1 + line)

    @staticmethod
    def index_of(order_id: Any) -> int | None:
        text = str(order_id)
        if not text.isdigit() or int(text) < ORDER_BASE or (int(text) - ORDER_BASE) % SLOTS:
            return None
        return (int(text) - ORDER_BASE) // SLOTS

    @staticmethod
    def delivery_id(index: int, package: Fulfillment) -> str:
        return f"{package.at}{index % 10**6:06d}{package.seq:03d}"

    def package(self, index: int, package: Fulfillment) -> tuple[str, str]:
        """(company code, tracking number) the package shows."""
        return self.tracking_overrides.get(
            (index, package.seq), (package.tracking_company, package.tracking_number)
        )

    # -- pieces ---------------------------------------------------------------------------------------
    paid_ts = staticmethod(paid_ts)
    line_payment = staticmethod(line_payment)

    def refunded_lines(self, state: OrderState) -> set[int]:
        if self.paid_ts(state) is None:
            return set()  # nothing was paid: the order just closes
        return {line.index for line in state.order.lines if state.refunded[line.index] >= line.quantity}

    def status(self, state: OrderState) -> int:
        refunded = self.refunded_lines(state)
        if state.cancelled:
            return 4
        if self.paid_ts(state) is None:
            return 1
        if len(refunded) == len(state.order.lines):
            return 4  # closed: refunded before shipping, or after (main_status 22 发货后退款完成)
        shipping = state.fulfillment_status
        if shipping == "fulfilled":
            return 5 if state.closed else 3
        return 101 if shipping == "partial" else 2

    def _packages(self, state: OrderState) -> list[dict[str, Any]]:
        order, index = state.order, state.order.index
        packages = []
        for fulfillment in state.fulfillments:
            code, number = self.package(index, fulfillment)
            products = []
            for line_index, quantity in fulfillment.lines:
                line = order.lines[line_index]
                listing = line.variant.listing("douyin")
                products.append(
                    {
                        "sku_order_id": self.sku_order_id(index, line_index),
                        "product_count": quantity,
                        "product_id": listing.product_id,
                        "product_id_str": str(listing.product_id),
                        "sku_id": listing.variant_id,
                        "outer_sku_id": listing.sku,
                        "product_name": line.variant.product_title,
                        "price": fen(line.unit_price),
                        "sku_specs": _spec(line),
                    }
                )
            packages.append(
                {
                    "tracking_no": number,
                    "company": code,
                    "company_name": COMPANY_NAMES.get(code, code),
                    "ship_time": fulfillment.at,
                    "delivery_id": self.delivery_id(index, fulfillment),
                    "product_info": products,
                }
            )
        return packages

    # -- the order ------------------------------------------------------------------------------------
    def render(self, state: OrderState, *, malformed: bool = False) -> dict[str, Any]:
        order, index = state.order, state.order.index
        paid_ts = self.paid_ts(state)
        status = self.status(state)
        refunded = self.refunded_lines(state)
        address = order.shipping_address
        sku_orders = []
        for line in order.lines:
            listing = line.variant.listing("douyin")
            after_sale = (
                {"after_sale_status": 12, "after_sale_type": 2, "refund_status": REFUND_SUCCESS}
                if line.index in refunded
                else {"after_sale_status": 0, "after_sale_type": 0, "refund_status": 0}
            )
            sku_orders.append(
                {
                    "order_id": self.sku_order_id(index, line.index),
                    "parent_order_id": self.order_id(index),
                    "order_level": 3,
                    "order_status": status,
                    "order_status_desc": STATUS_TEXT[status],
                    "product_id": listing.product_id,
                    "product_id_str": str(listing.product_id),
                    "sku_id": listing.variant_id,
                    "code": listing.sku,
                    "out_sku_id": 0,
                    "product_name": line.variant.product_title,
                    "spec": _spec(line),
                    "item_num": line.quantity,
                    "origin_amount": fen(line.unit_price),
                    "sum_amount": fen(line.line_total),
                    "pay_amount": fen(self.line_payment(line)),
                    "post_amount": 0,
                    "after_sale_info": after_sale,
                    "create_time": order.created_ts,
                    "update_time": state.updated_ts,
                    "pay_time": paid_ts or 0,
                    "goods_type": 0,
                    "product_pic": f"https://p3-aio.ecombdimg.com/obj/sandbox/{line.variant.product_key}.jpg",
                }
            )
        if malformed and sku_orders:
            sku_orders[0]["item_num"] = f"{sku_orders[0]['item_num']}件"  # what the schema must catch
        goods = sum((line.line_total for line in order.lines), ZERO)
        paid_goods = sum((self.line_payment(line) for line in order.lines), ZERO)
        discount = goods - paid_goods
        packages = self._packages(state)
        customer_key = f"customer:{order.customer.index}" if order.customer else f"guest:{index}"
        detail = " ".join(p for p in (address.address1, address.address2) if p)
        return {
            "shop_id": self.shop_id,
            "order_id": self.order_id(index),
            "order_level": 2,
            "order_status": status,
            "order_status_desc": STATUS_TEXT[status],
            "main_status": status,
            "main_status_desc": STATUS_TEXT[status],
            "create_time": order.created_ts,
            "update_time": state.updated_ts,
            "pay_time": paid_ts or 0,
            "finish_time": state.closed_ts if status == 5 and state.closed_ts else 0,
            "ship_time": packages[-1]["ship_time"] if packages and status in (3, 5) else 0,
            "order_expire_time": 1800,
            "cancel_reason": (state.cancel_reason or "") if status == 4 else "",
            "buyer_words": order.note or "",
            "seller_words": "",
            "b_type": 2,
            "b_type_desc": "抖音",
            "pay_type": 1 if paid_ts else 0,
            "order_amount": fen(goods + order.shipping.price),
            "pay_amount": fen(paid_goods + order.shipping.price),
            "post_amount": fen(order.shipping.price),
            "promotion_amount": fen(discount),
            "promotion_shop_amount": fen(discount),
            "modify_amount": 0,
            "tax_amount": 0,
            "doudian_open_id": "1@#" + digest(self.world.seed, customer_key, length=40),
            "post_receiver": address.name,
            "post_tel": "".join(ch for ch in address.phone or "" if ch.isdigit()),
            "post_addr": {
                "province": {"name": address.province or "", "id": ""},
                "city": {"name": address.city or "", "id": ""},
                "town": {"name": "", "id": ""},
                "street": {"name": "", "id": ""},
                "detail": detail,
            },
            "logistics_info": packages,
            "sku_order_list": sku_orders,
        }


def _spec(line: OrderLine) -> list[dict[str, str]]:
    return [{"name": "规格", "value": line.variant.variant_title}] if line.variant.variant_title else []


class BusinessError(Exception):
    """A refusal in Douyin's envelope: ``code`` (40004 非法的参数, 50002 业务处理失败, ...), ``sub_code`` and
    ``sub_msg`` (the reason; the sandbox's sub codes for business refusals are [U])."""

    def __init__(self, code: int, sub_code: str, sub_msg: str) -> None:
        super().__init__(f"{code} {sub_code}: {sub_msg}")
        self.code, self.sub_code, self.sub_msg = code, sub_code, sub_msg


def int_param(params: dict[str, Any], name: str, default: int) -> int:
    """A business parameter as an integer: Douyin's SDKs send numbers, older docs digit strings."""
    value = params.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BusinessError(40004, "isv.parameter-invalid", f"{name}参数不合法")  # [U] sub code and text
    return value
