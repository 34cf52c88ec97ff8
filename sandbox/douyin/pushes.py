"""What the hub calls on a Douyin shop besides the listing: the order detail, shipping, stock.

- ``order.orderDetail`` ``{shop_order_id}`` -> ``{"shop_order_detail": <the order>}``.
- ``order.logisticsAdd`` ``{order_id, company_code, logistics_code}`` ships every open unit of the order as
  one package, recorded in the world's overlay. Refusals (codes as Douyin's table, sub codes [U]): an unknown
  order 40004, an unknown company code 40004, a waybill that is not 6-32 letters or digits 40004 [U rule],
  an unpaid or cancelled order 50002, an order with nothing left to ship 50002 "订单已发货".
- ``order.logisticsAddSinglePack`` ``{order_id_list: [one order], shipped_order_info: [{shipped_order_id,
  shipped_num}], company_code, logistics_code, request_id}``: one package with those units; more than a sku
  order has open (or a refunded one) 50002; a ``request_id`` already served ships nothing again.
- ``order.logisticsEdit`` ``{order_id, company_code, logistics_code}`` changes the order's package (one
  package only: a split order needs ``order.logisticsEditByPack`` ``{order_id, pack_id, company_code,
  logistics_code}``, 50002 here); the world's fulfilment keeps its tracking and the sandbox overrides what it
  renders, bumping the order's update time.
- ``sku.syncStock`` ``{product_id?, sku_id (or code), stock_num, incremental}``: false sets the level, true
  adds (``idempotent_id`` required then); recorded with ``world.overlay.record_stock_set`` at location 0.
  ``sku.detail`` ``{sku_id}`` -> ``{id, product_id, code, stock_num, ...}``.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.douyin.render import COMPANY_NAMES, BusinessError, DouyinRenderer, int_param
from sandbox.world import Event, OrderState, Variant, World

_WAYBILL = re.compile(r"[A-Za-z0-9]{6,32}")  # [U] Douyin checks waybills per carrier; this is a floor


def _order(world: World, renderer: DouyinRenderer, order_id: Any) -> tuple[int, OrderState]:
    index = renderer.index_of(order_id) if order_id not in (None, "") else None
    state = world.state(index, world.now_ts()) if index is not None else None
    if index is None or state is None:
        raise BusinessError(40004, "isv.business-failed:订单不存在", "订单不存在")  # [U] sub code
    return index, state


def order_detail(world: World, renderer: DouyinRenderer, params: dict[str, Any], malformed: Any) -> dict:
    index, state = _order(world, renderer, params.get("shop_order_id"))
    return {"shop_order_detail": renderer.render(state, malformed=malformed(index))}


def _company(params: dict[str, Any]) -> str:
    code = params.get("company_code")
    if code not in COMPANY_NAMES:
        raise BusinessError(40004, "isv.parameter-invalid", f"物流公司编码{code}不存在")  # [U]
    return str(code)


def _waybill(params: dict[str, Any]) -> str:
    number = params.get("logistics_code")
    if not isinstance(number, str) or not _WAYBILL.fullmatch(number):
        raise BusinessError(40004, "isv.parameter-invalid", "快递单号格式不正确")  # [U]
    return number


def logistics_add(world: World, renderer: DouyinRenderer, params: dict[str, Any]) -> dict:
    index, state = _order(world, renderer, params.get("order_id"))
    company, number = _company(params), _waybill(params)
    status = renderer.status(state)
    if status == 1:
        raise BusinessError(50002, "isv.business-failed:订单未支付", "订单未支付，不能发货")  # [U]
    if status == 4:
        raise BusinessError(50002, "isv.business-failed:订单已取消", "订单已取消，不能发货")  # [U]
    refunded = renderer.refunded_lines(state)
    lines = tuple(
        (line.index, state.fulfillable(line.index))
        for line in state.order.lines
        if line.index not in refunded and state.fulfillable(line.index) > 0
    )
    if not lines:
        raise BusinessError(50002, "isv.business-failed:订单已发货", "订单已发货，请勿重复发货")  # [U]
    world.overlay.record_fulfillment(
        index,
        int(world.now_ts()),
        lines=lines,
        tracking_company=company,
        tracking_number=number,
        tracking_url="",
    )
    return {}


def logistics_add_single_pack(
    world: World, renderer: DouyinRenderer, params: dict[str, Any], done: dict[str, int]
) -> dict:
    """One package with the given units of the given sku orders; a ``request_id`` already served ships
    nothing again (the SDK's comment: the first success is answered again)."""
    orders = params.get("order_id_list")
    if not isinstance(orders, list) or len(orders) != 1:
        raise BusinessError(
            40004, "isv.parameter-invalid", "order_id_list须为一个父订单号"
        )  # [U] one only here
    index, state = _order(world, renderer, orders[0])
    company, number = _company(params), _waybill(params)
    request_id = params.get("request_id")
    if request_id and request_id in done:
        return {}
    status = renderer.status(state)
    if status in (1, 4):
        raise BusinessError(50002, "isv.business-failed:订单状态不可发货", "订单未支付或已取消，不能发货")
    info = params.get("shipped_order_info")
    if not isinstance(info, list) or not info:
        raise BusinessError(40004, "isv.parameter-invalid", "shipped_order_info不能为空")
    refunded, lines = renderer.refunded_lines(state), []
    for entry in info:
        sku_order = str(entry.get("shipped_order_id", "")) if isinstance(entry, dict) else ""
        line = next(
            (i for i in range(len(state.order.lines)) if renderer.sku_order_id(index, i) == sku_order), None
        )
        if line is None:
            raise BusinessError(40004, "isv.parameter-invalid", f"子订单{sku_order}不属于该订单")  # [U]
        count = int_param(entry, "shipped_num", 0)
        if count < 1 or line in refunded or count > state.fulfillable(line):
            raise BusinessError(
                50002, "isv.business-failed:发货数量不合法", f"子订单{sku_order}可发货数量不足"
            )
        lines.append((line, count))
    world.overlay.record_fulfillment(
        index,
        int(world.now_ts()),
        lines=tuple(lines),
        tracking_company=company,
        tracking_number=number,
        tracking_url="",
    )
    if request_id:
        done[request_id] = index
    return {}


def logistics_edit_by_pack(world: World, renderer: DouyinRenderer, params: dict[str, Any]) -> dict:
    """The package ``pack_id`` (its ``delivery_id``) gets the carrier and waybill."""
    index, state = _order(world, renderer, params.get("order_id"))
    company, number = _company(params), _waybill(params)
    packs = {renderer.delivery_id(index, p): p for p in state.fulfillments}
    package = packs.get(str(params.get("pack_id", "")))
    if package is None:
        raise BusinessError(50002, "isv.business-failed:包裹不存在", "包裹不存在")  # [U]
    renderer.tracking_overrides[(index, package.seq)] = (company, number)
    world.overlay.add_order_event(index, Event(int(world.now_ts()), "fulfilled", fulfillment=None))
    return {}


def logistics_edit(world: World, renderer: DouyinRenderer, params: dict[str, Any]) -> dict:
    index, state = _order(world, renderer, params.get("order_id"))
    company, number = _company(params), _waybill(params)
    if not state.fulfillments:
        raise BusinessError(50002, "isv.business-failed:订单未发货", "订单未发货，不能修改物流")  # [U]
    if len(state.fulfillments) > 1:
        raise BusinessError(50002, "isv.business-failed:多包裹", "多包裹订单请使用order.logisticsEditByPack")
    renderer.tracking_overrides[(index, state.fulfillments[0].seq)] = (company, number)
    # An edit with no package moves nothing but the order's update time, as a real edit does.
    world.overlay.add_order_event(index, Event(int(world.now_ts()), "fulfilled", fulfillment=None))
    return {}


def _variant(world: World, params: dict[str, Any]) -> Variant:
    sku_id = int_param(params, "sku_id", 0)
    code = params.get("code")
    for variant in world.catalog.variants:
        listing = variant.listing("douyin")
        if (sku_id and listing.variant_id == sku_id) or (not sku_id and code and listing.sku == code):
            product_id = int_param(params, "product_id", 0)
            if product_id and product_id != listing.product_id:
                break
            return variant
    raise BusinessError(50002, "isv.business-failed:sku不存在", "商品规格不存在")  # [U]


def stock_of(world: World, variant: Variant) -> int:
    return world.overlay.stock_levels.get(("douyin", variant.index, 0), variant.opening_stock)


def sync_stock(world: World, params: dict[str, Any]) -> dict:
    variant = _variant(world, params)
    if params.get("stock_num") is None:
        raise BusinessError(40004, "isv.parameter-invalid", "stock_num不能为空")  # [U]
    quantity = int_param(params, "stock_num", 0)
    incremental = params.get("incremental") in (True, "true")
    if incremental and not params.get("idempotent_id"):
        raise BusinessError(40004, "isv.parameter-invalid", "增量更新时idempotent_id必填")
    level = stock_of(world, variant) + quantity if incremental else quantity
    if level < 0:
        raise BusinessError(40004, "isv.parameter-invalid", "库存不能小于0")  # [U]
    world.overlay.record_stock_set("douyin", variant.index, 0, level, int(world.now_ts()))
    return {}


def sku_detail(world: World, params: dict[str, Any]) -> dict:
    variant = _variant(world, params)
    listing = variant.listing("douyin")
    return {
        "id": listing.variant_id,
        "product_id": listing.product_id,
        "product_id_str": str(listing.product_id),
        "code": listing.sku,
        "price": int(variant.price * 100),
        "sku_type": 0,
        "stock_num": stock_of(world, variant),
        "prehold_stock_num": 0,
        "spec_detail_name1": variant.variant_title or "",
    }
