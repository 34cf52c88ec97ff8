"""What the hub pushes to the Channels shop: ``order/delivery/send``, ``order/deliveryinfo/update``, the
delivery company lists, and SKU / regional warehouse stock (``product/stock/*``, ``warehouse/stock/*``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.wechat_channels.render import WeChatChannelsRenderer, _DeliveryChange, _Product
from sandbox.wechat_channels.wire import (
    DELIVER_TYPE_EXPRESS,
    DELIVERY_COMPANIES,
    ERR_ALREADY_SHIPPED,
    ERR_BAD_WAYBILL,
    ERR_DELIVERY_FAILED,
    ERR_INVALID_ARGS,
    ERR_PRODUCT_NOT_FOUND,
    ERR_SPLIT_NO_UPDATE,
    ERR_STATUS_NO_DELIVERY,
    ERR_STOCK_NOT_ENOUGH,
    ERR_UNKNOWN_COMPANY,
    ERR_UPDATE_GOODS,
    ERR_UPDATES_EXHAUSTED,
    ERR_WAREHOUSE_NOT_FOUND,
    ERR_WRONG_PRODUCT,
    MAX_DELIVERY_UPDATES,
    MAX_STOCK_NUM,
    OTHER_CARRIER,
    STATUS_PARTLY_SHIPPED,
    STATUS_SHIPPED,
    STATUS_UNPAID,
    WAREHOUSES,
    WeChatError,
    _int_field,
    json_body,
    ok,
)
from sandbox.world import Event, OrderState, Variant, World

ListingKey = tuple[int, int]  # (product_id, sku_id)


@dataclass(frozen=True, slots=True)
class _Parcel:
    """One ``delivery_list`` entry as the merchant sent it."""

    delivery_id: str
    waybill_id: str
    units: dict[ListingKey, int]  # in the order listed


def _positive_id(value: Any, name: str, where: str) -> int:
    """A product/sku id: the doc types it number, its examples send digit strings; both are accepted."""
    number = 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    if number <= 0:  # the wording of a real answer (forum thread on delivery/send)
        shown = 0 if value in (None, "") else value
        raise WeChatError(ERR_INVALID_ARGS, f"invalid args, {name}: expecting {where} > 0, actually {shown}")
    return number


def _parse_delivery_list(body: dict[str, Any]) -> list[_Parcel]:
    deliveries = body.get("delivery_list")
    if not isinstance(deliveries, list) or not deliveries:
        raise WeChatError(ERR_INVALID_ARGS, "invalid args, delivery_list: expecting a non-empty array")
    parcels = []
    for d_index, delivery in enumerate(deliveries):
        where = f"delivery_list[{d_index}]"
        if not isinstance(delivery, dict):
            raise WeChatError(47001, f"data format error: {where} must be an object")
        deliver_type = _int_field(delivery, "deliver_type")
        if deliver_type == 3:  # [U] wording: virtual delivery needs a deliver_method=1 (virtual) order
            raise WeChatError(
                ERR_INVALID_ARGS, f"invalid args, {where}.deliver_type: 3 needs deliver_method=1"
            )
        if deliver_type in (2, 4):  # [U] the online e-waybill flow creates its own parcels
            raise WeChatError(ERR_INVALID_ARGS, f"invalid args, {where}.deliver_type: use the ewaybill API")
        if deliver_type != DELIVER_TYPE_EXPRESS:
            raise WeChatError(ERR_INVALID_ARGS, f"invalid args, deliver_type: expecting {where}.deliver_type")
        delivery_id, waybill_id = delivery.get("delivery_id"), delivery.get("waybill_id")
        if not isinstance(delivery_id, str) or not delivery_id:
            raise WeChatError(ERR_INVALID_ARGS, f"invalid args, delivery_id: expecting {where}.delivery_id")
        if not isinstance(waybill_id, str) or not waybill_id.strip():
            raise WeChatError(ERR_INVALID_ARGS, f"invalid args, waybill_id: expecting {where}.waybill_id")
        units = _units_of(delivery.get("product_infos"), where)
        parcels.append(_Parcel(delivery_id, waybill_id.strip(), units))
    return parcels


def _units_of(products: Any, where: str) -> dict[ListingKey, int]:
    """{(product_id, sku_id): count} of a request's ``product_infos`` (ids as numbers or digit strings)."""
    if not isinstance(products, list) or not products:
        raise WeChatError(ERR_INVALID_ARGS, f"invalid args, product_infos: expecting {where}.product_infos")
    units: dict[ListingKey, int] = {}
    for n, product in enumerate(products):
        item = f"{where}.product_infos[{n}]"
        if not isinstance(product, dict):
            raise WeChatError(47001, f"data format error: {item} must be an object")
        key = (
            _positive_id(product.get("product_id"), "product_id", f"{item}.product_id"),
            _positive_id(product.get("sku_id"), "sku_id", f"{item}.sku_id"),
        )
        count = product.get("product_cnt")
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            shown = 0 if count is None else count
            raise WeChatError(
                ERR_INVALID_ARGS,
                f"invalid args, product_cnt: expecting {item}.product_cnt > 0, actually {shown}",
            )
        units[key] = units.get(key, 0) + count
    return units


def _parcel_units(parcel: dict[str, Any]) -> dict[ListingKey, int]:
    """{(product_id, sku_id): count} of a parcel as ``order/get`` renders it."""
    units: dict[ListingKey, int] = {}
    for product in parcel["product_infos"]:
        key = (int(product["product_id"]), int(product["sku_id"]))
        units[key] = units.get(key, 0) + product["product_cnt"]
    return units


def _check_company(delivery_id: str) -> None:
    if delivery_id not in DELIVERY_COMPANIES and delivery_id != OTHER_CARRIER:
        raise WeChatError(ERR_UNKNOWN_COMPANY, "delivery_id不合法,请使用获取快递公司列表接口获取delivery_id")


def _check_companies(parcels: list[_Parcel]) -> None:
    for parcel in parcels:
        _check_company(parcel.delivery_id)


def add_push_routes(
    app: FastAPI,
    world: World,
    renderer: WeChatChannelsRenderer,
    count: Callable[[str], None],
    error: Callable[[WeChatError], Response],
    delivery_updates: list[dict[str, Any]],
    push_lock: threading.Lock,
) -> None:
    """Deliveries and stock; ``push_lock`` makes a check and the record it allows one step (shared with the
    mini program's shipping-info service)."""

    def order_state(body: dict[str, Any]) -> OrderState:
        raw_id = body.get("order_id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
            raise WeChatError(ERR_INVALID_ARGS, "invalid args, order_id")
        index = renderer.index_of(str(raw_id))
        state = world.state(index, world.now_ts()) if index is not None else None
        if state is None:
            raise WeChatError(100002, "order not exist")  # [U] as order/get
        return state

    def listing_products(state: OrderState) -> dict[ListingKey, _Product]:
        keyed = {}
        for product in renderer.products(state):
            listing = product.variant.listing(renderer.platform)
            keyed[(listing.product_id, listing.variant_id)] = product
        return keyed

    def allocate(state: OrderState, parcels: list[_Parcel]) -> list[tuple[tuple[int, int], ...]]:
        """World (line index, quantity) pairs per parcel, or the platform's refusal."""
        products = listing_products(state)
        for parcel in parcels:
            if any(key not in products for key in parcel.units):
                raise WeChatError(ERR_WRONG_PRODUCT, ", 发货请求里product_id或sku_id填写不正确")
        status = renderer.status(state)
        if status == STATUS_UNPAID:
            raise WeChatError(ERR_DELIVERY_FAILED, "发货失败, 订单未支付, 不能发货")
        if state.cancelled:
            raise WeChatError(ERR_DELIVERY_FAILED, "发货失败, 订单已取消, 不能发货")
        open_units = {i: state.fulfillable(i) for i in range(len(state.order.lines))}
        requested: dict[ListingKey, int] = {}
        for parcel in parcels:
            for key, count in parcel.units.items():
                requested[key] = requested.get(key, 0) + count
        remaining = {key: sum(open_units[i] for i in products[key].line_indices) for key in requested}
        shipped = {key: sum(state.shipped[i] for i in products[key].line_indices) for key in requested}
        if all(remaining[key] == 0 and shipped[key] > 0 for key in requested):
            raise WeChatError(ERR_ALREADY_SHIPPED, "已经发货")
        for key, count in requested.items():
            if count > remaining[key]:
                raise WeChatError(
                    ERR_DELIVERY_FAILED,
                    f"发货失败, 商品发货数量超过待发货数量 product_id={key[0]} sku_id={key[1]} "
                    f"product_cnt={count} 待发货={remaining[key]}",
                )
        allocations = []
        for parcel in parcels:
            lines: list[tuple[int, int]] = []
            for key, count in parcel.units.items():
                for line_index in products[key].line_indices:  # one SKU on two lines: fill them in order
                    take = min(count, open_units[line_index])
                    if take > 0:
                        lines.append((line_index, take))
                        open_units[line_index] -= take
                        count -= take
            allocations.append(tuple(lines))
        return allocations

    def company_list() -> Response:
        return ok(
            {
                "company_list": [
                    {"delivery_id": delivery_id, "delivery_name": name}
                    for delivery_id, name in DELIVERY_COMPANIES.items()
                ]
            }
        )

    @app.post("/channels/ec/order/deliverycompanylist/new/get")
    async def delivery_companies(request: Request) -> Response:
        """The current list: ``ewaybill_only`` (boolean) is required."""
        try:
            body = await json_body(request)
            if not isinstance(body.get("ewaybill_only"), bool):
                raise WeChatError(ERR_INVALID_ARGS, "invalid args, ewaybill_only: expecting a boolean")
        except WeChatError as err:
            return error(err)
        return company_list()

    @app.post("/channels/ec/order/deliverycompanylist/get")
    async def delivery_companies_old(request: Request) -> Response:
        """The old list (旧 in the docs), an empty JSON body: the same table here."""
        try:
            await json_body(request)
        except WeChatError as err:
            return error(err)
        return company_list()

    @app.post("/channels/ec/order/delivery/send")
    async def send_delivery(request: Request) -> Response:
        try:
            body = await json_body(request)
            with push_lock:
                state = order_state(body)
                parcels = _parse_delivery_list(body)
                _check_companies(parcels)
                allocations = allocate(state, parcels)
                at = int(world.now_ts())
                for parcel, lines in zip(parcels, allocations, strict=True):
                    world.overlay.record_fulfillment(
                        state.index,
                        at,
                        lines=lines,
                        tracking_company=parcel.delivery_id,
                        tracking_number=parcel.waybill_id,
                        tracking_url="",
                    )
                count("deliveries")
        except WeChatError as err:
            return error(err)
        return ok({})

    @app.post("/channels/ec/order/deliveryinfo/update")
    async def update_delivery(request: Request) -> Response:
        """Change parcels' carrier/waybill (current doc): ``change_infos [{old, new}]`` one parcel at a time
        (split parcels too), or ``delivery_list`` for an order shipped in one parcel; at most three changes
        while the order is not completed; the goods of a parcel do not change."""
        try:
            body = await json_body(request)
            with push_lock:
                state = order_state(body)
                status = renderer.status(state)
                if status not in (STATUS_PARTLY_SHIPPED, STATUS_SHIPPED):
                    raise WeChatError(ERR_STATUS_NO_DELIVERY, "当前订单状态不允许发货,请检查订单状态")
                current = {
                    parcel["waybill_id"]: (parcel, fulfillment)
                    for parcel, fulfillment in zip(
                        renderer.render(state)["order_detail"]["delivery_info"]["delivery_product_info"],
                        state.fulfillments,
                        strict=True,
                    )
                }
                changes = _parse_delivery_changes(body, current, state)
                done = sum(
                    len(c) for (index, _), c in renderer.delivery_changes.items() if index == state.index
                )
                if done + len(changes) > MAX_DELIVERY_UPDATES:
                    raise WeChatError(ERR_UPDATES_EXHAUSTED, "修改物流次数已达上限")
                at = int(world.now_ts())
                for seq, old, new in changes:
                    renderer.delivery_changes.setdefault((state.index, seq), []).append(
                        _DeliveryChange(at, new[0], new[1])
                    )
                    delivery_updates.append(
                        {"order_id": renderer.order_id(state.index), "old": old, "new": new, "at": at}
                    )
                # An event without a parcel: the fold ignores it but the order's update_time moves.
                world.overlay.add_order_event(state.index, Event(at, "fulfilled"))
                count("delivery_updates")
        except WeChatError as err:
            return error(err)
        return ok({})

    def _parse_delivery_changes(
        body: dict[str, Any], current: dict[str, tuple[dict[str, Any], Any]], state: OrderState
    ) -> list[tuple[int, tuple[str, str], tuple[str, str]]]:
        """(parcel seq, (old delivery_id, waybill), (new delivery_id, waybill)) per requested change."""
        change_infos, whole = body.get("change_infos"), body.get("delivery_list")
        if change_infos is None and whole is not None:  # the whole order in one parcel
            if len(current) != 1:
                raise WeChatError(ERR_SPLIT_NO_UPDATE, "拆单发货暂不支持修改物流")
            [(old_parcel, fulfillment)] = current.values()
            parcels = _parse_delivery_list(body)
            if len(parcels) != 1:
                raise WeChatError(ERR_SPLIT_NO_UPDATE, "拆单发货暂不支持修改物流")
            parcel = parcels[0]
            if parcel.units != _parcel_units(old_parcel):
                raise WeChatError(ERR_UPDATE_GOODS, "商品信息有误,请检查商品id,商品数量是否正确")
            _check_company(parcel.delivery_id)
            old = (old_parcel["delivery_id"], old_parcel["waybill_id"])
            return [(fulfillment.seq, old, (parcel.delivery_id, parcel.waybill_id))]
        if not isinstance(change_infos, list) or not change_infos:
            raise WeChatError(ERR_INVALID_ARGS, "invalid args, change_infos: expecting a non-empty array")
        changes = []
        for n, change in enumerate(change_infos):
            where = f"change_infos[{n}]"
            if not isinstance(change, dict) or not all(
                isinstance(change.get(k), dict) for k in ("old", "new")
            ):
                raise WeChatError(47001, f"data format error: {where} needs objects old and new")
            old, new = change["old"], change["new"]
            found = current.get(old.get("waybill_id")) if isinstance(old.get("waybill_id"), str) else None
            if found is None or found[0]["delivery_id"] != old.get("delivery_id"):
                raise WeChatError(ERR_INVALID_ARGS, f"invalid args, {where}.old: no such parcel on the order")
            old_parcel, fulfillment = found
            goods = _parcel_units(old_parcel)
            if (
                _units_of(old.get("product_infos"), f"{where}.old") != goods
                or _units_of(new.get("product_infos"), f"{where}.new") != goods
            ):
                raise WeChatError(ERR_UPDATE_GOODS, "商品信息有误,请检查商品id,商品数量是否正确")
            delivery_id, waybill_id = new.get("delivery_id"), new.get("waybill_id")
            if not isinstance(delivery_id, str) or not delivery_id:
                raise WeChatError(
                    ERR_INVALID_ARGS, f"invalid args, delivery_id: expecting {where}.new.delivery_id"
                )
            _check_company(delivery_id)
            if not isinstance(waybill_id, str) or not waybill_id.strip():
                raise WeChatError(ERR_BAD_WAYBILL, "waybill_id不合法,请检查waybill_id是否填写有误")
            changes.append(
                (fulfillment.seq, (old["delivery_id"], old["waybill_id"]), (delivery_id, waybill_id.strip()))
            )
        return changes

    def stock_variant(body: dict[str, Any]) -> Variant:
        product_id = _positive_id(body.get("product_id"), "product_id", "product_id")
        sku_id = _positive_id(body.get("sku_id"), "sku_id", "sku_id")
        variant = world.catalog.by_channel_variant(renderer.platform, sku_id)
        if variant is None or variant.listing(renderer.platform).product_id != product_id:
            raise WeChatError(
                ERR_PRODUCT_NOT_FOUND, f"product not exist product_id={product_id} sku_id={sku_id}"
            )
        return variant

    def stock_level(variant: Variant, location_id: int) -> int:
        default = variant.opening_stock if location_id == 0 else 0
        return world.overlay.stock_levels.get((renderer.platform, variant.index, location_id), default)

    async def update_stock(request: Request, *, regional: bool) -> Response:
        try:
            body = await json_body(request)
            with push_lock:
                variant = stock_variant(body)
                location_id = 0
                if regional:
                    warehouse = body.get("out_warehouse_id")
                    if not isinstance(warehouse, str) or not warehouse:
                        raise WeChatError(ERR_INVALID_ARGS, "invalid args, out_warehouse_id")
                    if warehouse not in WAREHOUSES:
                        raise WeChatError(
                            ERR_WAREHOUSE_NOT_FOUND, f"warehouse not exist out_warehouse_id={warehouse}"
                        )
                    location_id = WAREHOUSES[warehouse]
                diff_type, num = _int_field(body, "diff_type"), _int_field(body, "num")
                if diff_type not in (1, 2, 3):
                    raise WeChatError(ERR_INVALID_ARGS, "invalid args, diff_type: expecting 1, 2 or 3")
                if num is None or not 0 <= num <= MAX_STOCK_NUM:
                    raise WeChatError(ERR_INVALID_ARGS, f"invalid args, num: expecting 0..{MAX_STOCK_NUM}")
                current = stock_level(variant, location_id)
                level = {1: current + num, 2: current - num, 3: num}[diff_type]
                if level < 0:
                    raise WeChatError(ERR_STOCK_NOT_ENOUGH, f"stock not enough: {current} < {num}")
                if level > MAX_STOCK_NUM:
                    raise WeChatError(ERR_INVALID_ARGS, f"invalid args, num: stock over {MAX_STOCK_NUM}")
                world.overlay.record_stock_set(
                    renderer.platform, variant.index, location_id, level, int(world.now_ts())
                )
                count("stock_updates")
        except WeChatError as err:
            return error(err)
        return ok({})

    @app.post("/channels/ec/product/stock/update")
    async def product_stock_update(request: Request) -> Response:
        return await update_stock(request, regional=False)

    @app.post("/channels/ec/warehouse/stock/update")
    async def warehouse_stock_update(request: Request) -> Response:
        return await update_stock(request, regional=True)

    @app.post("/channels/ec/product/stock/get")
    async def product_stock_get(request: Request) -> Response:
        try:
            variant = stock_variant(await json_body(request))
        except WeChatError as err:
            return error(err)
        normal = stock_level(variant, 0)
        regional = [
            {"out_warehouse_id": warehouse, "num": stock_level(variant, location_id)}
            for warehouse, location_id in WAREHOUSES.items()
            if (renderer.platform, variant.index, location_id) in world.overlay.stock_levels
        ]
        return ok(
            {
                "data": {
                    "normal_stock_num": normal,
                    "limited_discount_stock_num": 0,
                    "warehouse_stocks": regional,
                    "total_stock_num": normal + sum(w["num"] for w in regional),
                }
            }
        )
