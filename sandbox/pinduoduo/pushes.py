"""What the hub can push to the Pinduoduo sandbox, recorded in the world's overlay like every sandbox.

- ``pdd.logistics.companies.get`` -> ``logistics_companies_get_response.logistics_companies[{id,
  logistics_company, code}]`` (the sandbox's list, ``render.LOGISTICS_COMPANIES``).
- ``pdd.logistics.online.send`` ``{order_sn, logistics_id, tracking_number, redelivery_type}`` ->
  ``logistics_online_send_response.is_success``. Type 1 (the default) ships every open unit of a waiting
  order as one parcel; type 2 replaces the waybill of a shipped order (it "overwrites the original
  shipment") [C: SDK field doc]. Refusals are 50001 with a ``sub_code`` [U: codes and wording]: an unknown
  order, a refunded one, type 1 on a shipped order, type 2 on a waiting one, an unknown logistics_id; and
  10000 for a waybill that is not 6-32 letters, digits or dashes [U rule].
- ``pdd.goods.quantity.update`` ``{goods_id, sku_id | outer_id, quantity, update_type}``: type 1 sets the
  level, 2 adds to it; recorded with ``world.overlay.record_stock_set`` at location 0.
  ``pdd.goods.detail.get`` ``{goods_id}`` -> ``goods_detail_get_response{goods_id, goods_name,
  sku_list[{sku_id, outer_id, quantity, spec}]}`` reads levels back [U: response shape].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.admin import RequestStats
from sandbox.pinduoduo.listing import BUSINESS_REFUSAL, INVALID_PARAMETER, PddError, int_param
from sandbox.pinduoduo.render import LOGISTICS_COMPANIES, LOGISTICS_NAMES, PinduoduoRenderer
from sandbox.world import Event, Variant, World

_WAYBILL = re.compile(r"[A-Za-z0-9-]{6,32}")
PLATFORM = "pinduoduo"


def push_handlers(
    world: World, renderer: PinduoduoRenderer, stats: RequestStats
) -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
    def companies_get(params: Mapping[str, Any]) -> dict[str, Any]:
        companies = [
            {"id": i, "logistics_company": name, "code": code} for i, name, code in LOGISTICS_COMPANIES
        ]
        return {"logistics_companies_get_response": {"logistics_companies": companies}}

    def online_send(params: Mapping[str, Any]) -> dict[str, Any]:
        order_sn = params.get("order_sn")
        index = renderer.index_of(order_sn) if isinstance(order_sn, str) else None
        state = world.state(index, world.now_ts()) if index is not None else None
        if index is None or state is None:
            raise PddError(BUSINESS_REFUSAL, "订单不存在", "isv.order-not-exist")
        company = LOGISTICS_NAMES.get(int_param(params, "logistics_id"))
        if company is None:
            raise PddError(BUSINESS_REFUSAL, "快递公司不存在", "isv.logistics-not-exist")
        number = params.get("tracking_number")
        if not isinstance(number, str) or not _WAYBILL.fullmatch(number):
            raise PddError(
                INVALID_PARAMETER, "参数错误:tracking_number", "isv.invalid-parameter:tracking_number"
            )
        redelivery = int_param(params, "redelivery_type", 1)
        if renderer.refunded_in_full(state):
            raise PddError(BUSINESS_REFUSAL, "订单已退款成功，不能发货", "isv.order-refunded")
        waiting = renderer.order_status(state) == 1
        if redelivery == 1:
            if not waiting:
                raise PddError(BUSINESS_REFUSAL, "订单已发货，请勿重复发货", "isv.order-already-shipped")
            open_lines = tuple(
                (line.index, state.fulfillable(line.index))
                for line in state.order.lines
                if state.fulfillable(line.index) > 0
            )
            world.overlay.record_fulfillment(
                index, int(world.now_ts()), open_lines, company, number, tracking_url=""
            )
            renderer.tracking_overrides.pop(index, None)
            stats.count("shipments")
        elif redelivery == 2:
            if waiting:
                raise PddError(BUSINESS_REFUSAL, "订单未发货，不能修改发货", "isv.order-not-shipped")
            renderer.tracking_overrides[index] = (company, number)
            # The edit moves the order's update time, as a real one does, and ships nothing.
            world.overlay.add_order_event(index, Event(int(world.now_ts()), "fulfilled", fulfillment=None))
            stats.count("tracking_updates")
        else:
            raise PddError(
                INVALID_PARAMETER, "参数错误:redelivery_type", "isv.invalid-parameter:redelivery_type"
            )
        return {"logistics_online_send_response": {"is_success": True}}

    def goods_variants(params: Mapping[str, Any]) -> tuple[int, list[Variant]]:
        goods_id = int_param(params, "goods_id")
        variants = [v for v in world.catalog.variants if v.listing(PLATFORM).product_id == goods_id]
        if not variants:
            raise PddError(BUSINESS_REFUSAL, "商品不存在", "isv.goods-not-exist")
        return goods_id, variants

    def stock_of(variant: Variant) -> int:
        return world.overlay.stock_levels.get((PLATFORM, variant.index, 0), variant.opening_stock)

    def quantity_update(params: Mapping[str, Any]) -> dict[str, Any]:
        _, variants = goods_variants(params)
        if params.get("sku_id") not in (None, ""):
            sku_id = int_param(params, "sku_id")
            found = [v for v in variants if v.listing(PLATFORM).variant_id == sku_id]
        elif params.get("outer_id") not in (None, ""):
            found = [v for v in variants if v.listing(PLATFORM).sku == params.get("outer_id")]
        else:
            raise PddError(
                INVALID_PARAMETER, "参数错误:sku_id和outer_id不能同时为空", "isv.invalid-parameter:sku_id"
            )
        if not found:
            raise PddError(BUSINESS_REFUSAL, "sku不存在", "isv.sku-not-exist")
        quantity = int_param(params, "quantity")
        kind = int_param(params, "update_type", 1)
        if kind not in (1, 2):
            raise PddError(INVALID_PARAMETER, "参数错误:update_type", "isv.invalid-parameter:update_type")
        level = quantity if kind == 1 else stock_of(found[0]) + quantity
        if level < 0:
            raise PddError(BUSINESS_REFUSAL, "库存不能小于0", "isv.quantity-invalid")
        world.overlay.record_stock_set(PLATFORM, found[0].index, 0, level, int(world.now_ts()))
        stats.count("stock_sets")
        return {"goods_quantity_update_response": {"is_success": True}}

    def goods_detail(params: Mapping[str, Any]) -> dict[str, Any]:
        goods_id, variants = goods_variants(params)
        skus = [
            {
                "sku_id": v.listing(PLATFORM).variant_id,
                "outer_id": v.listing(PLATFORM).sku,
                "quantity": stock_of(v),
                "spec": v.variant_title or "",
            }
            for v in variants
        ]
        return {
            "goods_detail_get_response": {
                "goods_id": goods_id,
                "goods_name": variants[0].product_title,
                "outer_goods_id": variants[0].product_key,
                "sku_list": skus,
            }
        }

    return {
        "pdd.logistics.companies.get": companies_get,
        "pdd.logistics.online.send": online_send,
        "pdd.goods.quantity.update": quantity_update,
        "pdd.goods.detail.get": goods_detail,
    }
