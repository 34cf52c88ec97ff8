"""Channels order JSON from a world order state: ids, buyer and address (Chinese places), products,
deliveries and their changes, after-sale orders."""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sandbox.wechat_channels.wire import (
    _CARRIERS,
    AFTERSALE_ID_BASE,
    AFTERSALE_ID_STRIDE,
    AFTERSALE_REFUNDED,
    AFTERSALE_RETURNED,
    DELIVERY_COMPANIES,
    ORDER_ID_BASE,
    ORDER_ID_STRIDE,
    STATUS_CANCELLED_AFTER_AFTERSALE,
    STATUS_CANCELLED_UNPAID,
    STATUS_COMPLETED,
    STATUS_PARTLY_SHIPPED,
    STATUS_SHIPPED,
    STATUS_TO_SHIP,
    STATUS_UNPAID,
    _fen,
)
from sandbox.world import ZERO, Address, Customer, OrderState, Variant, World


@dataclass(frozen=True, slots=True)
class _ChinesePlace:
    province: str
    city: str
    county: str
    postal_code: str
    national_code: str  # 行政区划代码 (administrative division code), not a country code


_PLACES = (
    _ChinesePlace("广东省", "广州市", "海珠区", "510220", "440105"),
    _ChinesePlace("广东省", "深圳市", "南山区", "518052", "440305"),
    _ChinesePlace("上海市", "上海市", "徐汇区", "200030", "310104"),
    _ChinesePlace("北京市", "北京市", "朝阳区", "100020", "110105"),
    _ChinesePlace("浙江省", "杭州市", "西湖区", "310012", "330106"),
    _ChinesePlace("四川省", "成都市", "武侯区", "610041", "510107"),
    _ChinesePlace("江苏省", "南京市", "鼓楼区", "210008", "320106"),
    _ChinesePlace("湖北省", "武汉市", "洪山区", "430070", "420111"),
)
_STREETS = ("新港中路", "科技园南路", "漕溪北路", "建国路", "文三路", "人民南路", "中山北路", "珞喻路")


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DeliveryChange:
    at: int
    delivery_id: str
    waybill_id: str


@dataclass(frozen=True, slots=True)
class _Product:
    """One ``product_infos`` entry: the world lines of one variant merged."""

    variant: Variant
    line_indices: tuple[int, ...]
    quantity: int
    unit_price: Decimal
    paid: Decimal  # after the order discount allocated to these lines


class WeChatChannelsRenderer:
    """World states -> Channels order JSON; world indices <-> 19-digit order ids."""

    platform = "wechat_channels"

    def __init__(self, world: World) -> None:
        self.world = world
        # deliveryinfo/update: (order index, parcel seq) -> the parcel's carrier/waybill changes, in order
        self.delivery_changes: dict[tuple[int, int], list[_DeliveryChange]] = {}

    # ---------------------------------------------------------------- ids
    def order_id(self, index: int) -> str:
        gap = zlib.crc32(f"{self.world.seed}:wechat:{index}".encode()) % ORDER_ID_STRIDE
        return str(ORDER_ID_BASE + index * ORDER_ID_STRIDE + gap)

    def index_of(self, order_id: str) -> int | None:
        if not order_id.isdigit():
            return None
        number = int(order_id)
        if number < ORDER_ID_BASE:
            return None
        index = (number - ORDER_ID_BASE) // ORDER_ID_STRIDE
        return index if self.order_id(index) == order_id else None

    def openid(self, order_index: int, customer: Customer | None) -> str:
        """The buyer's openid under the shop's appid (what a Channels order shows)."""
        key = f"customer:{customer.index}" if customer is not None else f"guest:{order_index}"
        digest = hashlib.sha256(f"{self.world.seed}:openid:{key}".encode()).digest()
        return "o" + base64.urlsafe_b64encode(digest).decode()[:27]

    def payer_openid(self, order_index: int, customer: Customer | None) -> str:
        """The same buyer's openid under the mini program's appid: an openid is per app, so it differs."""
        key = f"customer:{customer.index}" if customer is not None else f"guest:{order_index}"
        digest = hashlib.sha256(f"{self.world.seed}:mini-program-openid:{key}".encode()).digest()
        return "o" + base64.urlsafe_b64encode(digest).decode()[:27]

    @staticmethod
    def aftersale_id(index: int, refund_seq: int, product: int) -> str:
        return str(AFTERSALE_ID_BASE + index * AFTERSALE_ID_STRIDE + refund_seq * 16 + product)

    @staticmethod
    def aftersale_key(aftersale_id: str) -> tuple[int, int, int] | None:
        """(order index, refund seq, product number) of an after-sale order id, None for anything else."""
        if not aftersale_id.isdigit() or int(aftersale_id) < AFTERSALE_ID_BASE:
            return None
        index, rest = divmod(int(aftersale_id) - AFTERSALE_ID_BASE, AFTERSALE_ID_STRIDE)
        return index, rest // 16, rest % 16

    @staticmethod
    def transaction_id(order_seed: int, index: int) -> str:
        """The WeChat Pay ``transaction_id`` of a paid order (28 digits, as 4200001858202306300646157659)."""
        return f"42000{zlib.crc32(f'{order_seed}:pay:{index}'.encode()):010d}{index:013d}"

    def index_of_transaction(self, transaction_id: str) -> int | None:
        """The world index of a paid order's ``transaction_id``, None for anything else."""
        if len(transaction_id) != 28 or not transaction_id.isdigit():
            return None
        index = int(transaction_id[-13:])
        state = self.world.state(index, self.world.now_ts())
        if state is None or self.paid_ts(state) is None:
            return None  # no payment order (yet): unpaid orders have no transaction
        return index if self.transaction_id(state.order.seed, index) == transaction_id else None

    # ---------------------------------------------------------------- status
    @staticmethod
    def paid_ts(state: OrderState) -> int | None:
        if state.paid_ts is not None:
            return state.paid_ts
        if state.order.initial_financial_status == "authorized":
            return state.order.created_ts  # no separate capture on WeChat: paid at checkout
        return None

    def status(self, state: OrderState) -> int:
        paid = self.paid_ts(state) is not None
        if state.cancelled:
            return STATUS_CANCELLED_AFTER_AFTERSALE if paid else STATUS_CANCELLED_UNPAID
        if not paid:
            return STATUS_UNPAID
        if not any(state.shipped):
            return STATUS_TO_SHIP
        if any(state.fulfillable(i) for i in range(len(state.order.lines))):
            return STATUS_PARTLY_SHIPPED
        return STATUS_COMPLETED if state.closed else STATUS_SHIPPED

    # ---------------------------------------------------------------- pieces
    @staticmethod
    def products(state: OrderState) -> list[_Product]:
        grouped: dict[int, list[int]] = {}
        for line in state.order.lines:
            grouped.setdefault(line.variant.index, []).append(line.index)
        products = []
        for line_indices in grouped.values():
            lines = [state.order.lines[i] for i in line_indices]
            products.append(
                _Product(
                    variant=lines[0].variant,
                    line_indices=tuple(line_indices),
                    quantity=sum(line.quantity for line in lines),
                    unit_price=lines[0].unit_price,
                    paid=sum((line.line_total - line.discount for line in lines), ZERO),
                )
            )
        return products

    def _product_json(self, state: OrderState, product: _Product, paid: bool) -> dict[str, Any]:
        listing = product.variant.listing(self.platform)
        refunded = sum(state.refunded[i] for i in product.line_indices) if paid else 0
        sale_price = _fen(product.unit_price)
        discount = _fen(product.unit_price * product.quantity - product.paid)
        thumb = hashlib.md5(f"{listing.product_id}".encode(), usedforsecurity=False).hexdigest()
        entry: dict[str, Any] = {
            "product_id": str(listing.product_id),
            "sku_id": str(listing.variant_id),
            "thumb_img": f"https://store.mp.video.tencent-cloud.com/161/20304/snscosdownload/SH/reserved/{thumb}",
            "sku_cnt": product.quantity,
            "sale_price": sale_price,
            "title": product.variant.product_title,
            "on_aftersale_sku_cnt": 0,
            "finish_aftersale_sku_cnt": refunded,
            "sku_code": listing.sku,
            "market_price": sale_price,
            "sku_attrs": (
                [{"attr_key": "规格", "attr_value": product.variant.variant_title}]
                if product.variant.variant_title
                else []
            ),
            "real_price": _fen(product.paid),
            "out_product_id": "",
            "out_sku_id": "",
            "is_discounted": discount > 0,
            "estimate_price": _fen(product.paid),
            "is_change_price": False,
            "change_price": 0,
            "out_warehouse_id": "",
            "sku_deliver_info": {"stock_type": 0},
            "extra_service": {"seven_day_return": 1, "freight_insurance": 0},
            "use_deduction": False,
            "deduction_price": 0,
            "merchant_discounted_price": discount,
            "finder_discounted_price": 0,
            "is_free_gift": False,
        }
        if not listing.sku and product.variant.index % 2:
            del entry["sku_code"]  # older orders carry no sku_code key at all when the merchant set none
        return entry

    def _address(self, address: Address) -> dict[str, Any]:
        key = zlib.crc32(f"{address.address1}|{address.city}|{address.zip}".encode())
        place = _PLACES[key % len(_PLACES)]
        mobile = f"1{3 + key % 6}{key % 10**9:09d}"
        house = address.address1.split(" ", 1)[0]
        return {
            "user_name": address.name,
            "postal_code": place.postal_code,
            "province_name": place.province,
            "city_name": place.city,
            "county_name": place.county,
            "detail_info": f"{_STREETS[key % len(_STREETS)]}{house}号",
            "national_code": place.national_code,
            "tel_number": mobile,
            "house_number": address.address2.replace("Apt ", "") if address.address2 else "",
            "virtual_order_tel_number": "",
            "use_tel_number": 0,
            "hash_code": hashlib.md5(f"{key}".encode(), usedforsecurity=False).hexdigest(),
        }

    def _deliveries(self, state: OrderState, products: list[_Product]) -> list[dict[str, Any]]:
        product_of_line = {i: product for product in products for i in product.line_indices}
        parcels = []
        for fulfillment in state.fulfillments:
            units: dict[int, int] = {}
            for line_index, quantity in fulfillment.lines:
                variant_index = product_of_line[line_index].variant.index
                units[variant_index] = units.get(variant_index, 0) + quantity
            if fulfillment.pushed:  # the hub pushed it through delivery/send: its own delivery_id
                delivery_id = fulfillment.tracking_company
                delivery_name = DELIVERY_COMPANIES.get(delivery_id, "其他")
            else:
                delivery_id, delivery_name = _CARRIERS.get(fulfillment.tracking_company, ("OTHER", "其他"))
            waybill_id = fulfillment.tracking_number
            for changed in self.delivery_changes.get((state.index, fulfillment.seq), ()):
                if changed.at <= state.as_of:
                    delivery_id, waybill_id = changed.delivery_id, changed.waybill_id
                    delivery_name = DELIVERY_COMPANIES.get(delivery_id, "其他")
            parcels.append(
                {
                    "waybill_id": waybill_id,
                    "delivery_id": delivery_id,
                    "delivery_name": delivery_name,
                    "delivery_time": fulfillment.at,
                    "deliver_type": 1,
                    "product_infos": [
                        {
                            "product_id": str(
                                self.world.catalog.variants[v].listing(self.platform).product_id
                            ),
                            "sku_id": str(self.world.catalog.variants[v].listing(self.platform).variant_id),
                            "product_cnt": quantity,
                        }
                        for v, quantity in units.items()
                    ],
                }
            )
        return parcels

    def aftersales(self, state: OrderState) -> list[dict[str, Any]]:
        """The after-sale orders of a paid order (``getaftersaleorder``'s ``after_sale_order``), in order.

        WeChat keeps one after-sale order per product: a world refund of several variants is several. A
        refund of every unit with the shipping (a cancel) also returns the freight, carried by its last
        after-sale order [U where WeChat puts it]. Goods that came back (restock "return") make a RETURN
        after-sale order finished as MERCHANT_RETURN_SUCCESS; the rest are REFUND (money only)."""
        if self.paid_ts(state) is None:
            return []
        order = state.order
        variant_of_line = {line.index: line.variant for line in order.lines}
        order_id = self.order_id(state.index)
        openid = self.openid(state.index, order.customer)
        found = []
        for refund in state.refunds:
            by_variant: dict[int, list[Any]] = {}
            for line in refund.lines:
                by_variant.setdefault(variant_of_line[line.line_index].index, []).append(line)
            groups = list(by_variant.values())
            for number, lines in enumerate(groups):
                variant = variant_of_line[lines[0].line_index]
                listing = variant.listing(self.platform)
                amount = _fen(sum((line.subtotal for line in lines), ZERO))
                if number == len(groups) - 1:
                    amount += _fen(refund.shipping)
                returned = any(line.restock_type == "return" for line in lines)
                status, _ = AFTERSALE_RETURNED if returned else AFTERSALE_REFUNDED
                found.append(
                    {
                        "after_sale_order_id": self.aftersale_id(state.index, refund.seq, number),
                        "status": status,
                        "openid": openid,
                        "unionid": "",
                        "product_info": {
                            "product_id": str(listing.product_id),
                            "sku_id": str(listing.variant_id),
                            "count": sum(line.quantity for line in lines),
                        },
                        "details": {
                            "desc": refund.note,
                            "receive_product": returned,
                            "cancel_time": 0,
                            "prove_imgs": [],
                            "tel_number": "",
                        },
                        "refund_info": {"amount": amount},
                        "return_info": {"waybill_id": "", "delivery_id": "", "delivery_name": ""},
                        "merchant_upload_info": {"reject_reason": "", "refund_certificates": []},
                        "create_time": refund.at - 3600,
                        "update_time": refund.at,
                        "reason": "NO_LONGER_WANT",  # [U] the reason codes beyond the doc example
                        "refund_resp": {"code": "", "ret": 0, "message": ""},
                        "type": "RETURN" if returned else "REFUND",
                        "order_id": order_id,
                    }
                )
        return found

    def _aftersale_detail(self, state: OrderState) -> dict[str, Any]:
        numbers = dict((AFTERSALE_REFUNDED, AFTERSALE_RETURNED))
        listed = [
            {"aftersale_order_id": found["after_sale_order_id"], "status": numbers[found["status"]]}
            for found in self.aftersales(state)
        ]
        return {"on_aftersale_order_cnt": 0, "aftersale_order_list": listed}

    # ---------------------------------------------------------------- the order
    def render(self, state: OrderState, *, malformed: bool = False) -> dict[str, Any]:
        order = state.order
        status = self.status(state)
        paid_ts = self.paid_ts(state)
        paid = paid_ts is not None
        products = self.products(state)
        product_infos = [self._product_json(state, product, paid) for product in products]
        if malformed and product_infos:
            product_infos[0]["sku_cnt"] = f"{product_infos[0]['sku_cnt']}件"  # a platform bug, on purpose
        product_price = sum(_fen(p.unit_price) * p.quantity for p in products)
        discounted = _fen(order.total_discount)
        freight = _fen(order.shipping.price)
        original = product_price + freight
        order_price = original - discounted
        transaction_id = self.transaction_id(order.seed, order.index)
        pay_info: dict[str, Any] = {
            "prepay_id": f"wx{order.created_ts}{order.index:010d}",
            "prepay_time": order.created_ts,
        }
        if paid:
            pay_info.update({"pay_time": paid_ts, "transaction_id": transaction_id, "payment_method": 1})
        deliveries = self._deliveries(state, products)
        delivery_info: dict[str, Any] = {
            "address_info": self._address(order.shipping_address),
            "delivery_product_info": deliveries,
            "deliver_method": 0,
            "address_under_review": None,
            "quality_inspect_type": 0,
        }
        if status in (STATUS_SHIPPED, STATUS_COMPLETED) and deliveries:
            delivery_info["ship_done_time"] = max(d["delivery_time"] for d in deliveries)
        delivery_info = {k: v for k, v in delivery_info.items() if v is not None}
        ext_info: dict[str, Any] = {
            "customer_notes": order.note or "",
            "merchant_notes": "",
            "finder_id": "",
            "live_id": "",
            "order_scene": 1,
        }
        if status == STATUS_COMPLETED and state.closed_ts is not None:
            ext_info["confirm_receipt_time"] = state.closed_ts
        return {
            "order_id": self.order_id(order.index),
            "openid": self.openid(order.index, order.customer),
            "unionid": "",
            "create_time": order.created_ts,
            "update_time": state.updated_ts,
            "status": status,
            "order_detail": {
                "product_infos": product_infos,
                "pay_info": pay_info,
                "price_info": {
                    "product_price": product_price,
                    "order_price": order_price,
                    "freight": freight,
                    "discounted_price": discounted,
                    "is_discounted": discounted > 0,
                    "original_order_price": original,
                    "estimate_product_price": product_price - discounted,
                    "change_down_price": 0,
                    "change_freight": 0,
                    "is_change_freight": False,
                    "use_deduction": False,
                    "deduction_price": 0,
                    "merchant_receieve_price": order_price,  # sic: the API's spelling
                    "merchant_discounted_price": discounted,
                    "finder_discounted_price": 0,
                },
                "delivery_info": delivery_info,
                "coupon_info": {"user_coupon_id": f"{order.index}{len(order.discount.code)}"}
                if order.discount
                else {},
                "ext_info": ext_info,
                "settle_info": {"predict_commission_fee": order_price * 5 // 100},
                "sku_sharer_infos": [],
                "commission_infos": [],
            },
            "aftersale_detail": self._aftersale_detail(state),
            "is_present": False,
        }
