"""Youzan ``full_order_info`` from a world order state: tids, oids, packages, refunds, buyer."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.common import line_payment, paid_ts, two_decimals
from sandbox.gateway import CHINA, china_time
from sandbox.world import ZERO, Fulfillment, OrderState, World, money

STATUS_TEXT = {
    "WAIT_BUYER_PAY": "待付款",
    "WAIT_SELLER_SEND_GOODS": "待发货",
    "WAIT_BUYER_CONFIRM_GOODS": "已发货",
    "TRADE_SUCCESS": "已完成",
    "TRADE_CLOSED": "已关闭",
}
# youzan.logistics.express.get: (id, name). [U] the real list has hundreds; these ids are the sandbox's own.
EXPRESS_COMPANIES: tuple[tuple[int, str], ...] = (
    (1, "申通快递"),
    (2, "圆通速递"),
    (3, "中通快递"),
    (4, "韵达快递"),
    (6, "百世快递"),
    (7, "顺丰速运"),
    (8, "邮政快递包裹"),
    (9, "EMS"),
    (11, "京东快递"),
    (12, "德邦快递"),
    (44, "UPS"),
    (45, "USPS"),
    (46, "FedEx"),
)
EXPRESS_NAMES = dict(EXPRESS_COMPANIES)
EXPRESS_IDS = {name: express_id for express_id, name in EXPRESS_COMPANIES}
OID_BASE = 1_507_387_350_000_000_000


def _digits(phone: str | None) -> str:
    return "".join(ch for ch in phone or "" if ch.isdigit())


def _hash(*parts: object, length: int = 16) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


class YouzanRenderer:
    """World order states -> Youzan ``full_order_info`` items; tids <-> world indices."""

    def __init__(self, world: World) -> None:
        self.world = world
        # (order index, package seq) -> (carrier name, waybill) set through youzan.logistics.online.update
        self.tracking_overrides: dict[tuple[int, int], tuple[str, str]] = {}

    # ---------------------------------------------------------------- ids
    def tid(self, index: int) -> str:
        created = datetime.fromtimestamp(self.world.created_ts(index), CHINA).strftime("%Y%m%d%H%M%S")
        return f"E{created}{index:09d}"

    def index_of(self, tid: str) -> int | None:
        if not re.fullmatch(r"E\d{23}", tid):
            return None
        index = int(tid[-9:])
        try:
            return index if self.tid(index) == tid else None
        except (ValueError, OverflowError, OSError):  # an index whose creation lies past year 9999
            return None

    def oid(self, index: int, line: int) -> str:
        return str(OID_BASE + index * 16 + line)

    def line_of(self, index: int, oid: str) -> int | None:
        """The world line index of sub-order ``oid`` of order ``index``; None when it is not one."""
        if not oid.isdigit():
            return None
        line = int(oid) - OID_BASE - index * 16
        return line if 0 <= line < len(self.world.get(index).lines) else None

    @staticmethod
    def dist_id(index: int, package: Fulfillment) -> str:
        return f"{datetime.fromtimestamp(package.at, CHINA):%Y%m%d%H%M%S}{index % 10**6:06d}{package.seq:04d}"

    def express_info(self, index: int, package: Fulfillment) -> dict[str, Any]:
        company, number = self.tracking_overrides.get(
            (index, package.seq), (package.tracking_company, package.tracking_number)
        )
        return {"express_id": EXPRESS_IDS.get(company, 0), "express_no": number}

    # ---------------------------------------------------------------- pieces
    paid_ts = staticmethod(paid_ts)
    line_payment = staticmethod(line_payment)

    def _refunds(self, state: OrderState) -> list[dict[str, Any]]:
        order, index = state.order, state.order.index
        paid_ts = self.paid_ts(state)
        rendered = []
        for refund in state.refunds:
            if paid_ts is None or paid_ts > refund.at:
                continue  # nothing was paid: the order just closes, no money moves
            fee = refund.shipping
            oids: list[dict[str, str]] = []
            for refund_line in refund.lines:
                line = order.lines[refund_line.line_index]
                fee += money(self.line_payment(line) * refund_line.quantity / line.quantity)
                oid = self.oid(index, line.index)
                if {"oid": oid} not in oids:
                    oids.append({"oid": oid})
            created = datetime.fromtimestamp(refund.at, CHINA).strftime("%Y%m%d%H%M%S")
            rendered.append(
                {
                    "refund_id": f"{created}{index % 10**6:06d}{refund.seq:04d}",
                    # 1 buyer applied, 2 seller refunded (cancellations, out of stock), 3 one-click
                    "refund_type": 1 if refund.note == "Customer return" else 2,
                    "refund_fee": two_decimals(fee),
                    "refund_state": 60,
                    "oids": oids,
                }
            )
        return rendered

    def _deliveries(self, state: OrderState) -> tuple[list[dict[str, Any]], int | None]:
        """Delivery orders (lines listed once all their units shipped) and the time the last one left."""
        order, index = state.order, state.order.index
        complete = {
            line.index
            for line in order.lines
            if state.shipped[line.index] > 0 and state.fulfillable(line.index) == 0
        }
        cumulative = [0] * len(order.lines)
        groups: list[tuple[Fulfillment, list[int]]] = []
        for fulfillment in state.fulfillments:
            finished = []
            for line_index, qty in fulfillment.lines:
                cumulative[line_index] += qty
                if line_index in complete and cumulative[line_index] == state.shipped[line_index]:
                    finished.append(line_index)
            if finished:
                groups.append((fulfillment, finished))
        deliveries = []
        for fulfillment, lines in groups:
            packages = [
                f
                for f in state.fulfillments
                if f.at <= fulfillment.at and any(i in lines for i, _ in f.lines)
            ]
            deliveries.append(
                {
                    "pk_id": 1_507_387_369_000_000_000 + index * 16 + fulfillment.seq,
                    "express_state": 1,
                    "express_type": 1 if fulfillment.pushed else 0,
                    "oids": [{"oid": self.oid(index, i)} for i in lines],
                    "dists": [
                        {
                            "dist_id": self.dist_id(index, p),
                            "create_time": china_time(p.at),
                            "express_info": self.express_info(index, p),
                        }
                        for p in packages
                    ],
                }
            )
        last = max((f.at for f, _ in groups), default=None)
        return deliveries, last

    def _buyer(self, state: OrderState) -> dict[str, Any]:
        order = state.order
        customer = order.customer
        if customer is None:  # every Youzan buyer has an open id, even without a member record
            key = f"guest:{order.index}"
            return {
                "yz_open_id": _hash(self.world.seed, key, length=32),
                "buyer_phone": "",
                "outer_user_id": "",
                "fans_type": 0,
                "fans_id": 0,
                "fans_nickname": "",
                "buyer_id": 0,
            }
        key = f"customer:{customer.index}"
        return {
            "yz_open_id": _hash(self.world.seed, key, length=32),
            "buyer_phone": _digits(customer.phone),
            "outer_user_id": "o" + _hash(self.world.seed, key, "openid", length=27),
            "fans_type": 1,
            "fans_id": 4_851_000_000 + customer.index,
            "fans_nickname": customer.name,
            "buyer_id": 695_000_000 + customer.index,
        }

    # ---------------------------------------------------------------- the order
    def render(self, state: OrderState, *, malformed: bool = False) -> dict[str, Any]:
        """One item of ``full_order_info_list`` (the same shape as ``youzan.trade.get``'s ``data``)."""
        order, index = state.order, state.order.index
        paid_ts = self.paid_ts(state)
        refunds = self._refunds(state)
        deliveries, consign_ts = self._deliveries(state)

        orders = []
        for line in order.lines:
            listing = line.variant.listing("youzan")
            orders.append(
                {
                    "oid": self.oid(index, line.index),
                    "item_id": listing.product_id,
                    "sku_id": listing.variant_id,
                    "outer_item_id": line.variant.product_key,
                    "outer_sku_id": listing.sku,
                    "sku_unique_code": "",
                    "sku_properties_name": json.dumps(
                        [{"k": "规格", "v": line.variant.variant_title}]
                        if line.variant.variant_title
                        else [],
                        ensure_ascii=False,
                    ),
                    "title": line.variant.product_title,
                    "num": line.quantity,
                    "price": two_decimals(line.unit_price),
                    "discount_price": two_decimals(line.unit_price),
                    "total_fee": two_decimals(line.line_total),
                    "payment": two_decimals(self.line_payment(line)),
                    "item_type": 0,
                    "is_present": False,
                    "buyer_messages": "",
                    "pic_path": f"https://img.yzcdn.cn/upload_files/sandbox/{line.variant.product_key}.jpg",
                    "goods_url": f"https://h5.youzan.com/v2/showcase/goods?alias={_hash(listing.product_id)}",
                    "alias": _hash(listing.product_id, length=13),
                    "points_price": "0",
                    "fenxiao_price": "0.00",
                    "fenxiao_payment": "0.00",
                    "is_pre_sale": "null",
                    "pre_sale_type": "null",
                }
            )
        if malformed and orders:
            orders[0]["num"] = f"{orders[0]['num']}件"  # the kind of bug the connector schema must catch

        goods_total = sum((line.line_total for line in order.lines), ZERO)
        paid_goods = sum((self.line_payment(line) for line in order.lines), ZERO)
        payment = paid_goods + order.shipping.price
        refunded = sum((Decimal(r["refund_fee"]) for r in refunds), ZERO)

        if state.cancelled:
            status = "TRADE_CLOSED"
        elif paid_ts is None:
            status = "WAIT_BUYER_PAY"
        elif refunded >= payment:
            status = "TRADE_CLOSED"
        elif state.fulfillment_status == "fulfilled":
            status = "TRADE_SUCCESS" if state.closed else "WAIT_BUYER_CONFIRM_GOODS"
        else:
            status = "WAIT_SELLER_SEND_GOODS"
        if status != "TRADE_CLOSED":
            close_type = 0
        elif paid_ts is not None:
            close_type = 2  # closed by refund
        else:
            close_type = {"customer": 4, "declined": 1}.get(state.cancel_reason or "", 5)
        refund_state = 0 if refunded == 0 else (12 if refunded >= payment else 2)
        all_shipped = state.fulfillment_status == "fulfilled"
        address = order.shipping_address
        customer = order.customer
        discount = order.discount

        order_info = {
            "tid": self.tid(index),
            "created": china_time(order.created_ts),
            "update_time": china_time(state.updated_ts),
            "pay_time": china_time(paid_ts),
            "consign_time": china_time(consign_ts) if all_shipped else "",
            "confirm_time": china_time(state.closed_ts) if status == "TRADE_SUCCESS" else "",
            "success_time": china_time(state.closed_ts) if status == "TRADE_SUCCESS" else "",
            "expired_time": china_time(order.created_ts + 3600),
            "status": status,
            "status_str": STATUS_TEXT[status],
            "type": 0,
            "pay_type": 10 if paid_ts is not None else 0,
            "pay_type_str": "WEIXIN_DAIXIAO" if paid_ts is not None else "",
            "refund_state": refund_state,
            "close_type": close_type,
            "express_type": 0,
            "team_type": 0,
            "activity_type": 1,
            "is_retail_order": False,
            "offline_id": 57_694_718,
            "order_tags": {
                "is_virtual": False,
                "is_payed": paid_ts is not None,
                "is_refund": bool(refunds),
                "is_feedback": bool(refunds),
                "is_secured_transactions": True,
                "is_postage_free": order.shipping.price == 0,
                "is_member": customer is not None,
                "is_multi_store": False,
            },
            "order_extra": {
                "buyer_name": customer.name if customer else "",
                "is_from_cart": "true",
                "is_member": "true" if customer else "false",
                "is_points_order": "0",
            },
        }
        full_order_info = {
            "order_info": order_info,
            "source_info": {
                "is_offline_order": order.source_name == "pos",
                "book_key": _hash(self.world.seed, "book", index, length=32),
                "biz_source": "",
                "source": {"platform": "wx", "wx_entrance": "direct_buy"},
                "order_mark": None,
            },
            "buyer_info": self._buyer(state),
            "address_info": {
                "receiver_name": address.name,
                "receiver_tel": _digits(address.phone),
                "delivery_province": address.province,
                "delivery_city": address.city,
                "delivery_district": "",
                "delivery_address": " ".join(p for p in (address.address1, address.address2) if p),
                "delivery_postal_code": address.zip,
                "address_extra": json.dumps(
                    {"areaCode": address.zip, "lon": address.longitude, "lat": address.latitude}
                ),
                "self_fetch_info": "",
                "delivery_start_time": None,
                "delivery_end_time": None,
            },
            "remark_info": {"buyer_message": order.note or "", "trade_memo": "", "star": 0},
            "pay_info": {
                "total_fee": two_decimals(goods_total),
                "post_fee": two_decimals(order.shipping.price),
                "payment": two_decimals(payment),
                "deduction_pay": 0,  # fen
                "deduction_real_pay": 0,  # fen
                "transaction": [f"{index:018d}"[-18:]] if paid_ts is not None else [],
                "outer_transactions": [f"4200000{_hash(self.world.seed, 'wx', index, length=21)}"]
                if paid_ts is not None
                else [],
                "phase_payments": [],
            },
            "orders": orders,
        }
        promotion: dict[str, Any] = {
            "item": [],
            "order": [],
            "item_discount_fee": "0.00",
            "order_discount_fee": two_decimals(discount.amount if discount else ZERO),
            "adjust_fee": "0.00",
        }
        if discount is not None:
            promotion["order"].append(
                {
                    "promotion_type": "coupon",
                    "promotion_title": discount.code,
                    "promotion_type_name": "优惠券",
                    "promotion_id": 4_295_457_000 + len(discount.code),
                    "coupon_id": discount.code,
                    "discount_fee": two_decimals(discount.amount),
                }
            )
        return {
            "full_order_info": full_order_info,
            "refund_order": refunds,
            "delivery_order": deliveries,
            "order_promotion": promotion,
        }
