"""What the hub pushes to the JD sandbox: shipments and SKU stock, recorded in the world's overlay.

- ``jingdong.pop.order.shipment`` ``{orderId, logiCoprId, logiNo}`` -> ``sopjosshipment_result`` ``{success,
  code, chineseErr, englishErr}``. It ships the whole order (every unit still open) as one parcel. Refusals
  (``success`` false) [U: codes the sandbox's]: 10400001 no such order, 10400002 cancelled or locked, 10400003
  unknown logiCoprId, 10400004 already shipped, 10400005 a waybill that is not 6-32 letters or digits.
- ``jingdong.stock.write.updateSkuStock`` ``{skuId, stockNum}`` sets the SKU's stock outright ->
  ``{"success": true}``; 10500001 no such SKU, 10100001 a bad stockNum. No compare-and-set.
- ``jingdong.sku.read.findSkuById`` ``{skuId, field}`` -> ``sku`` ``{skuId, wareId, outerId, stockNum}``.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.admin import RequestStats
from sandbox.jd.listing import BAD_PARAM, BusinessError
from sandbox.jd.render import LOGISTICS, JdRenderer
from sandbox.world import Variant, World

NO_ORDER, NOT_SHIPPABLE, UNKNOWN_CARRIER, ALREADY_SHIPPED, BAD_WAYBILL = (
    "10400001",
    "10400002",
    "10400003",
    "10400004",
    "10400005",
)
NO_SKU = "10500001"
_WAYBILL = re.compile(r"[A-Za-z0-9]{6,32}")


class Pushes:
    def __init__(self, world: World, renderer: JdRenderer, stats: RequestStats) -> None:
        self.world = world
        self.renderer = renderer
        self.stats = stats

    def shipment(self, params: dict[str, Any]) -> dict[str, Any]:
        index = self.renderer.index_of(params.get("orderId"))
        state = self.world.state(index, self.world.now_ts()) if index is not None else None
        if index is None or state is None or not self.renderer.visible(state):
            raise BusinessError(NO_ORDER, "订单不存在")
        carrier = LOGISTICS.get(str(params.get("logiCoprId", "")))
        if carrier is None:
            raise BusinessError(UNKNOWN_CARRIER, "物流公司不存在")
        number = str(params.get("logiNo", "")).strip()
        if not _WAYBILL.fullmatch(number):
            raise BusinessError(BAD_WAYBILL, "运单号格式不正确")
        status = self.renderer.order_state(state)
        if status == "TRADE_CANCELED":
            raise BusinessError(NOT_SHIPPABLE, "订单已取消，不能出库")
        if status != "WAIT_SELLER_STOCK_OUT":
            raise BusinessError(ALREADY_SHIPPED, "订单已出库，不能重复出库")
        lines = tuple(
            (line.index, state.fulfillable(line.index))
            for line in state.order.lines
            if state.fulfillable(line.index) > 0
        )
        if not lines:
            raise BusinessError(NOT_SHIPPABLE, "订单没有可出库的商品")
        self.world.overlay.record_fulfillment(
            index,
            int(self.world.now_ts()),
            lines=lines,
            tracking_company=carrier,
            tracking_number=number,
            tracking_url="",  # JD keeps no tracking URL: buyers track by carrier + waybill
        )
        self.stats.count("shipments")
        return {"success": True, "code": "0", "chineseErr": "", "englishErr": ""}

    def _variant(self, params: dict[str, Any]) -> Variant:
        sku_id = str(params.get("skuId", ""))
        for variant in self.world.catalog.variants:
            if str(variant.listing("jd").variant_id) == sku_id:
                return variant
        raise BusinessError(NO_SKU, f"sku {sku_id} 不存在")

    def stock_of(self, variant: Variant) -> int:
        return self.world.overlay.stock_levels.get(("jd", variant.index, 0), variant.opening_stock)

    def set_stock(self, params: dict[str, Any]) -> dict[str, Any]:
        variant = self._variant(params)
        value = params.get("stockNum")
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BusinessError(BAD_PARAM, "stockNum必须为非负整数")
        self.world.overlay.record_stock_set("jd", variant.index, 0, value, int(self.world.now_ts()))
        self.stats.count("stock_sets")
        return {"success": True}

    def find_sku(self, params: dict[str, Any]) -> dict[str, Any]:
        variant = self._variant(params)
        listing = variant.listing("jd")
        return {
            "sku": {
                "skuId": listing.variant_id,
                "wareId": listing.product_id,
                "outerId": listing.sku,
                "stockNum": self.stock_of(variant),
            }
        }
