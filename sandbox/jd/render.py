"""World order states -> JD POP ``orderInfo`` objects (the shape ``jingdong.pop.order.search`` lists and
``jingdong.pop.order.get`` answers); orderIds <-> world indices.

How the world becomes JD (facts and sources: platforms/jd/NOTES.md):
- JD lists paid orders only: an online-payment order appears once paid (the world's "authorized" orders are
  paid at checkout); one never paid is never listed, even once cancelled.
- One item per SKU: JD's cart merges a SKU bought twice, so world lines of one variant become one item with
  their units summed. ``skuId``/``wareId`` are the world's JD listing ids, ``outerSkuId`` the code the
  merchant typed on JD (sometimes "").
- Money: yuan strings; ``orderTotalPrice`` = goods, ``sellerDiscount`` = the world's order discount,
  ``orderSellerPrice`` = goods - discount, ``freightPrice`` = shipping, ``orderPayment`` = what the buyer
  paid. The world's sales tax is not rendered (prices include VAT in China).
- Times: naive Beijing wall time; JD writes ``0001-01-01 00:00:00`` for a date not reached (``outBoundDate``).
- ``orderState``: TRADE_CANCELED once cancelled; WAIT_GOODS_RECEIVE_CONFIRM once every unit shipped (JD ships
  a whole order with one waybill: a partly shipped world order is still WAIT_SELLER_STOCK_OUT); FINISHED_L
  once closed after that. ``waybill``/``logisticsId`` are the last parcel's. Refunds are JD's after-sales
  business and not in the order.
"""

from __future__ import annotations

from typing import Any

from sandbox.common import paid_ts
from sandbox.common import two_decimals as yuan
from sandbox.gateway import china_time
from sandbox.world import ZERO, OrderState, World

NEVER = "0001-01-01 00:00:00"
ORDER_BASE = 250_000_000_000  # JD POP order ids are 12 digits (the published order: 249786309732)
VENDER_ID = "10622317"
# JD logiCoprId of each carrier the world or the hub names [U: ids as ISVs quote them, NOTES.md].
LOGISTICS: dict[str, str] = {
    "467": "顺丰快递",
    "463": "圆通快递",
    "1499": "中通速递",
    "470": "申通快递",
    "1327": "韵达快递",
    "465": "邮政EMS",
    "2170": "邮政快递包裹",
    "2087": "京东快递",
    "3046": "德邦快递",
    "599866": "极兔速递",
    "1748": "百世快递",
    "2463": "UPS",
    "2464": "USPS",
    "2465": "FedEx",
}
LOGISTICS_IDS = {name: code for code, name in LOGISTICS.items()}


class JdRenderer:
    def __init__(self, world: World) -> None:
        self.world = world

    # -- ids --

    @staticmethod
    def order_id(index: int) -> str:
        return str(ORDER_BASE + index)

    def index_of(self, order_id: Any) -> int | None:
        text = str(order_id) if isinstance(order_id, int | str) and not isinstance(order_id, bool) else ""
        if not text.isdigit() or int(text) < ORDER_BASE:
            return None
        return int(text) - ORDER_BASE

    paid_ts = staticmethod(paid_ts)

    def visible(self, state: OrderState) -> bool:
        """JD lists an order once it is paid."""
        return self.paid_ts(state) is not None

    @staticmethod
    def order_state(state: OrderState) -> str:
        if state.cancelled:
            return "TRADE_CANCELED"
        if state.fulfillment_status == "fulfilled":
            return "FINISHED_L" if state.closed else "WAIT_GOODS_RECEIVE_CONFIRM"
        return "WAIT_SELLER_STOCK_OUT"

    def items(self, state: OrderState) -> dict[str, list[int]]:
        """skuId -> the world line indices it covers (JD merges a SKU bought twice into one item)."""
        merged: dict[str, list[int]] = {}
        for line in state.order.lines:
            merged.setdefault(str(line.variant.listing("jd").variant_id), []).append(line.index)
        return merged

    # -- the order --

    def render(self, state: OrderState, *, malformed: bool = False) -> dict[str, Any]:
        order, index = state.order, state.order.index
        items = []
        for sku_id, line_indices in self.items(state).items():
            lines = [order.lines[i] for i in line_indices]
            listing = lines[0].variant.listing("jd")
            units = sum(line.quantity for line in lines)
            items.append(
                {
                    "skuId": sku_id,
                    "wareId": str(listing.product_id),
                    "outerSkuId": listing.sku,
                    "skuName": lines[0].variant.title,
                    "jdPrice": yuan(lines[0].unit_price),
                    "itemTotal": f"{units}件" if malformed and not items else str(units),
                    "productNo": lines[0].variant.product_key,
                    "giftPoint": "0",
                    "newStoreId": "0",
                    "invoiceContentId": "",
                }
            )
        goods = sum((line.line_total for line in order.lines), ZERO)
        discount = order.discount.amount if order.discount else ZERO
        freight = order.shipping.price
        status = self.order_state(state)
        shipped = status in ("WAIT_GOODS_RECEIVE_CONFIRM", "FINISHED_L")
        last = state.fulfillments[-1] if state.fulfillments and shipped else None
        address = order.shipping_address
        customer = order.customer
        return {
            "orderId": self.order_id(index),
            "venderId": VENDER_ID,
            "orderType": "22",  # SOP
            "payType": "4-在线支付",
            "orderTotalPrice": yuan(goods),
            "orderSellerPrice": yuan(goods - discount),
            "orderPayment": yuan(goods - discount + freight),
            "freightPrice": yuan(freight),
            "sellerDiscount": yuan(discount),
            "balanceUsed": "0.00",
            "orderState": status,
            "orderStateRemark": {
                "TRADE_CANCELED": "取消",
                "WAIT_GOODS_RECEIVE_CONFIRM": "等待确认收货",
                "FINISHED_L": "完成",
            }.get(status, "等待出库"),
            "orderRemark": order.note or "",
            "orderStartTime": china_time(order.created_ts),
            "orderEndTime": china_time(state.closed_ts) if status == "FINISHED_L" else "",
            "modified": china_time(state.updated_ts),
            "paymentConfirmTime": china_time(self.paid_ts(state)),
            "outBoundDate": china_time(last.at) if last else NEVER,
            "waybill": last.tracking_number if last else "",
            "logisticsId": LOGISTICS_IDS.get(last.tracking_company, "") if last else "",
            "pin": f"jd_{customer.index:08x}sandbox" if customer else "",
            "returnOrder": "0",
            "deliveryType": "任意时间",
            "orderSource": "移动端订单",
            "consigneeInfo": {
                "fullname": address.name,
                "telephone": address.phone or "",
                "mobile": address.phone or "",
                "fullAddress": " ".join(p for p in (address.address1, address.address2) if p),
                "province": address.province,
                "city": address.city,
                "county": "",
                "town": "",
            },
            "couponDetailList": [],
            "itemInfoList": items,
        }
