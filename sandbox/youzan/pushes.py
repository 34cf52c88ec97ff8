"""Youzan's shipment and stock calls over the world's overlay."""

from __future__ import annotations

import json
import re
from typing import Any

from sandbox.admin import RequestStats
from sandbox.world import Event, OrderState, Variant, World
from sandbox.youzan.listing import BusinessError, YouzanListing, _int_param
from sandbox.youzan.render import EXPRESS_COMPANIES, EXPRESS_IDS, EXPRESS_NAMES, YouzanRenderer, _hash

CONFIRM_VERSIONS = frozenset({"3.0.0"})
UPDATE_VERSIONS = frozenset({"3.0.0"})
EXPRESS_GET_VERSIONS = frozenset({"3.0.0"})
QUANTITY_UPDATE_VERSIONS = frozenset({"3.0.0"})
ITEM_GET_VERSIONS = frozenset({"3.0.0"})
ORDER_NOT_FOUND = 105000016
ALREADY_SHIPPED = 102570007
NOTHING_TO_SHIP = 102570020
BAD_WAYBILL = 105000003
UNKNOWN_EXPRESS_CODE = 102570011  # [U] Youzan documents no code for an unknown out_stype
UNKNOWN_DIST_CODE = 102570021  # [U] online.update naming a package the trade does not have
NOT_ALL_SHIPPED = (
    102570022  # [U] online.update before the whole order shipped (the refusal is [S], its code not)
)
ITEM_NOT_FOUND = 141500101  # [U] item APIs' codes are not in the contract
SKU_NOT_FOUND = 141500102  # [U]
SKU_REQUIRED = 141500103  # [U]
_WAYBILL = re.compile(r"[A-Za-z0-9-]{6,32}")  # [U] Youzan checks waybills per carrier; this is a floor


class YouzanPushes:
    """The write calls: logistics.online.confirm / online.update (shipments, re-labelled packages),
    logistics.express.get, item.quantity.update and item.get (stock)."""

    def __init__(
        self,
        world: World,
        renderer: YouzanRenderer,
        listing: YouzanListing,
        stats: RequestStats,
        tracking_updates: list[dict[str, Any]],
    ) -> None:
        self.world = world
        self.renderer = renderer
        self.listing = listing
        self.stats = stats
        self.tracking_updates = tracking_updates

    # ------------------------------------------------------------------ shipments
    def order_for_push(self, body: dict[str, Any]) -> tuple[int, OrderState]:
        tid = body.get("tid")
        index = self.renderer.index_of(tid) if isinstance(tid, str) else None
        state = self.world.state(index, self.world.now_ts()) if index is not None else None
        if index is None or state is None:
            raise BusinessError(ORDER_NOT_FOUND, "订单不存在")  # [U] message
        return index, state

    def express_company(self, value: Any, name: str) -> str:
        express_id = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.strip().isdigit():
            express_id = int(value)
        if express_id not in EXPRESS_NAMES:
            raise BusinessError(UNKNOWN_EXPRESS_CODE, f"{name}对应的物流公司不存在")  # [U]
        return EXPRESS_NAMES[express_id]

    def waybill(self, value: Any) -> str:
        if not isinstance(value, str) or not _WAYBILL.fullmatch(value.strip()):
            raise BusinessError(BAD_WAYBILL, "运单号格式不正确")  # [U] message
        return value.strip()

    def logistics_confirm(self, body: dict[str, Any]) -> dict[str, Any]:
        index, state = self.order_for_push(body)
        no_express = _int_param(body, "is_no_express", 0)
        if no_express not in (0, 1):
            raise BusinessError(5000, "is_no_express只能为0或1")  # [U]
        company, number = "", ""
        if no_express == 0:
            company = self.express_company(body.get("out_stype"), "out_stype")
            number = self.waybill(body.get("out_sid"))
        status = self.listing.status_of(index)
        if status == "WAIT_BUYER_PAY":
            raise BusinessError(NOTHING_TO_SHIP, "订单未支付，没有可发货的商品")  # [U] message
        if status == "TRADE_CLOSED":
            raise BusinessError(NOTHING_TO_SHIP, "订单已关闭，没有可发货的商品")  # [U] message
        raw_oids = body.get("oids")
        lines = len(state.order.lines)
        if raw_oids in (None, ""):
            chosen = [i for i in range(lines) if state.fulfillable(i) > 0]
            if not chosen:
                if any(state.shipped):
                    raise BusinessError(ALREADY_SHIPPED, "订单已发货，请勿重复发货")  # [U] message
                raise BusinessError(NOTHING_TO_SHIP, "没有可发货的商品")
        else:
            if not isinstance(raw_oids, str):
                raise BusinessError(5000, "oids格式错误，多个子订单号用英文逗号分隔")  # [U]
            chosen = []
            for oid in (part.strip() for part in raw_oids.split(",")):
                line = self.renderer.line_of(index, oid)
                if line is None:
                    raise BusinessError(NOTHING_TO_SHIP, f"子订单{oid}不属于该订单，没有可发货的商品")  # [U]
                if state.fulfillable(line) == 0:
                    if state.shipped[line] > 0:
                        raise BusinessError(ALREADY_SHIPPED, f"子订单{oid}已发货，请勿重复发货")  # [U]
                    raise BusinessError(NOTHING_TO_SHIP, f"子订单{oid}没有可发货的商品")  # [U]
                if line not in chosen:
                    chosen.append(line)
        self.world.overlay.record_fulfillment(
            index,
            int(self.world.now_ts()),
            lines=tuple((line, state.fulfillable(line)) for line in chosen),
            tracking_company=company,
            tracking_number=number,
            tracking_url="",  # Youzan keeps no tracking URL; buyers track by carrier + waybill
        )
        self.stats.count("shipments")
        return {"is_success": True}

    def logistics_update(self, body: dict[str, Any]) -> dict[str, Any]:
        index, state = self.order_for_push(body)
        changes = body.get("trade_express_modify")
        if isinstance(changes, str):  # the Java SDK sends the list as a JSON string
            try:
                changes = json.loads(changes)
            except ValueError:
                changes = None
        if isinstance(changes, dict):
            changes = [changes]
        if not isinstance(changes, list) or not changes or not all(isinstance(c, dict) for c in changes):
            raise BusinessError(5000, "trade_express_modify格式错误")  # [U]
        packages = {self.renderer.dist_id(index, p): p for p in state.fulfillments}
        updates = []
        for change in changes:
            package = packages.get(str(change.get("dist_id", "")))
            if package is None:
                raise BusinessError(UNKNOWN_DIST_CODE, "包裹不存在")  # [U]
            updates.append(
                (
                    package.seq,
                    self.express_company(change.get("express_id"), "express_id"),
                    self.waybill(change.get("express_no")),
                )
            )
        # Youzan changes a waybill only once the whole order shipped, i.e. WAIT_BUYER_CONFIRM_GOODS [S: the
        # API page's description]; the code and message are the sandbox's [U].
        if self.listing.status_of(index) != "WAIT_BUYER_CONFIRM_GOODS":
            raise BusinessError(NOT_ALL_SHIPPED, "订单未全部发货，不能修改物流信息")
        now = int(self.world.now_ts())
        tid = body.get("tid")
        for seq, company, number in updates:
            package = next(p for p in state.fulfillments if p.seq == seq)
            before = self.renderer.express_info(index, package)
            self.renderer.tracking_overrides[(index, seq)] = (company, number)
            self.tracking_updates.append(
                {
                    "tid": tid,
                    "dist_id": self.renderer.dist_id(index, package),
                    "previous_express_no": before["express_no"],
                    "express_id": EXPRESS_IDS[company],
                    "express_no": number,
                }
            )
            self.stats.count("tracking_updates")
        # A shipment event with no package moves nothing but the trade's update time, as a real edit does.
        self.world.overlay.add_order_event(index, Event(now, "fulfilled", fulfillment=None))
        return {"is_success": True}

    def express_get(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"allExpress": [{"id": i, "name": name, "display": 1} for i, name in EXPRESS_COMPANIES]}

    # ------------------------------------------------------------------ stock
    def item_variants(self, body: dict[str, Any]) -> tuple[int, list[Variant]]:
        item_id = _int_param(body, "item_id", 0)
        variants = [v for v in self.world.catalog.variants if v.listing("youzan").product_id == item_id]
        if not variants:
            raise BusinessError(ITEM_NOT_FOUND, "商品不存在或已删除")  # [U]
        return item_id, variants

    def stock_of(self, variant: Variant) -> int:
        return self.world.overlay.stock_levels.get(("youzan", variant.index, 0), variant.opening_stock)

    def quantity_update(self, body: dict[str, Any]) -> dict[str, Any]:
        _, variants = self.item_variants(body)
        sku_id = _int_param(body, "sku_id", 0) if body.get("sku_id") not in (None, "") else 0
        if sku_id == 0:
            if len(variants) > 1:
                raise BusinessError(SKU_REQUIRED, "多规格商品必须指定sku_id")  # [U]
            variant = variants[0]
        else:
            found = [v for v in variants if v.listing("youzan").variant_id == sku_id]
            if not found:
                raise BusinessError(SKU_NOT_FOUND, f"商品规格{sku_id}不存在")  # [U]
            variant = found[0]
        if body.get("quantity") in (None, ""):
            raise BusinessError(5000, "quantity不能为空")  # [U]
        quantity = _int_param(body, "quantity", 0)
        kind = _int_param(body, "type", 0)
        if kind not in (0, 1):
            raise BusinessError(5000, "type只能为0(全量)或1(增量)")  # [U]
        level = quantity if kind == 0 else self.stock_of(variant) + quantity
        if level < 0:
            raise BusinessError(5000, "库存不能小于0")  # [U]
        self.world.overlay.record_stock_set("youzan", variant.index, 0, level, int(self.world.now_ts()))
        self.stats.count("stock_sets")
        return {"is_success": True}

    def item_get(self, body: dict[str, Any]) -> dict[str, Any]:
        item_id, variants = self.item_variants(body)
        single = len(variants) == 1 and variants[0].variant_title is None
        skus = [
            {
                "sku_id": v.listing("youzan").variant_id,
                "item_no": v.listing("youzan").sku,
                "quantity": self.stock_of(v),
                "properties_name_json": json.dumps([{"k": "规格", "v": v.variant_title}], ensure_ascii=False),
            }
            for v in variants
        ]
        return {
            "item": {
                "item_id": item_id,
                "alias": _hash(item_id, length=13),
                "title": variants[0].product_title,
                "item_no": variants[0].product_key,
                "quantity": sum(self.stock_of(v) for v in variants),
                "skus": [] if single else skus,
            }
        }
