"""What the hub pushes to the Taobao sandbox, recorded in the world's overlay like every sandbox does.

- ``taobao.logistics.offline.send`` ``{tid, out_sid, company_code, is_split, sub_tid}``: ships whole
  sub-orders (every open unit of each), all open ones unless ``is_split=1`` names them in ``sub_tid``; only a
  paid trade waiting to ship (``WAIT_SELLER_SEND_GOODS``, ``SELLER_CONSIGNED_PART``). Answers
  ``{"shipping": {"is_success": true}}``. Refusals (code 15 and the sub codes below [S]): B04 already
  shipped or closed, B02 not shippable (unpaid, refunded), B57 a company code it does not know, B60 a
  waybill that is not 6-32 letters, digits or dashes [U rule].
- ``taobao.logistics.consign.resend``: the same parameters for sub-orders that shipped (CD19 otherwise),
  within 24 hours of their shipping (P06 after) [C: the API's doc]; their waybill and company change (the
  world keeps its parcel; the renderer shows the new waybill) and the trade's modified time moves on.
- ``taobao.item.quantity.update`` ``{num_iid, sku_id | outer_id, quantity, type}``: type 1 (default) sets,
  2 adds; answers ``{"item": {num_iid, num, modified, skus?}}``. ``taobao.item.seller.get`` reads it back.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.gateway import china_time
from sandbox.taobao.listing import find_trade, integer, invalid, missing, refusal
from sandbox.taobao.render import TaobaoRenderer
from sandbox.world import Event, OrderState, Variant, World

# taobao.logistics.companies.get codes the sandbox knows (a real shop's list has many more).
COMPANIES = ("SF", "YTO", "ZTO", "STO", "YUNDA", "HTKY", "EMS", "POSTB", "JD", "DBKD", "JTSD")
SHIPPABLE = ("WAIT_SELLER_SEND_GOODS", "SELLER_CONSIGNED_PART")
# Sub codes as an ERP's table of TOP's logistics errors has them [S]:
ALREADY_SHIPPED = "isv.logistics-offline-service-error:B04"  # "订单状态不对" (shipped, or closed)
NOT_SHIPPABLE = "isv.logistics-offline-service-error:B02"
BAD_WAYBILL = "isv.logistics-offline-service-error:B60"
BAD_COMPANY = "isv.logistics-offline-service-error:B57"
NOT_RESENDABLE = "isv.logistics-update-company-or-mailno-error:CD19"  # "订单未发货"
RESEND_TOO_LATE = "isv.logistics-update-company-or-mailno-error:P06"  # "当前订单状态不支持修改"
RESEND_WINDOW_SECONDS = 86400  # self-arranged shipments change within 24 hours of shipping [C: API doc]
_WAYBILL = re.compile(r"[A-Za-z0-9-]{6,32}")


class Pushes:
    def __init__(self, world: World, renderer: TaobaoRenderer, stats: Any) -> None:
        self.world, self.renderer, self.stats = world, renderer, stats
        self.tracking_updates: list[dict[str, Any]] = []

    def _trade(self, params: dict[str, str]) -> tuple[int, OrderState]:
        return find_trade(self.world, self.renderer, params)

    def _parcel(self, params: dict[str, str]) -> tuple[str, str]:
        company = params.get("company_code") or ""
        if company not in COMPANIES:
            raise refusal(BAD_COMPANY, f"物流公司编码{company}不存在或未开通")
        waybill = (params.get("out_sid") or "").strip()
        if not _WAYBILL.fullmatch(waybill):
            raise refusal(BAD_WAYBILL, "运单号不符合规则")
        return company, waybill

    def _lines(self, params: dict[str, str], index: int, state: Any) -> list[int]:
        every = list(range(len(state.order.lines)))
        if params.get("is_split") != "1":
            return every
        raw = params.get("sub_tid") or ""
        if not raw:
            raise missing("sub_tid")
        chosen = []
        for oid in (part.strip() for part in raw.split(",")):
            line = self.renderer.line_of(index, oid)
            if line is None:
                raise invalid("sub_tid", f"子订单{oid}不属于交易{params.get('tid')}")
            chosen.append(line)
        return chosen

    def offline_send(self, params: dict[str, str]) -> dict[str, Any]:
        index, state = self._trade(params)
        company, waybill = self._parcel(params)
        status = self.renderer.status(state)
        chosen = self._lines(params, index, state)
        if any(self.renderer.waybill(state, line) for line in chosen) and params.get("is_split") == "1":
            raise refusal(ALREADY_SHIPPED, "订单状态不对，该物流订单已经发货或者已关闭，不能重复发货")
        if status not in SHIPPABLE:
            if status in ("WAIT_BUYER_CONFIRM_GOODS", "TRADE_FINISHED"):
                raise refusal(ALREADY_SHIPPED, "订单状态不对，该物流订单已经发货或者已关闭，不能重复发货")
            raise refusal(
                ALREADY_SHIPPED if status.startswith("TRADE_CLOSED") else NOT_SHIPPABLE, "订单状态不对"
            )
        lines = [line for line in chosen if state.fulfillable(line) > 0]
        if not lines:
            raise refusal(NOT_SHIPPABLE, "没有可发货的子订单")
        if params.get("is_split") == "1" and len(lines) < len(chosen):
            raise refusal(NOT_SHIPPABLE, "子订单已退款或已关闭，不能发货")
        self.world.overlay.record_fulfillment(
            index,
            int(self.world.now_ts()),
            lines=tuple((line, state.fulfillable(line)) for line in lines),
            tracking_company=company,
            tracking_number=waybill,
            tracking_url="",
        )
        self.stats.count("shipments")
        return {"shipping": {"is_success": True}}

    def consign_resend(self, params: dict[str, str]) -> dict[str, Any]:
        index, state = self._trade(params)
        company, waybill = self._parcel(params)
        lines = self._lines(params, index, state)
        if not all(self.renderer.waybill(state, line) for line in lines):
            raise refusal(NOT_RESENDABLE, "订单未发货")
        now = self.world.now_ts()
        parcels = [self.renderer.parcel(state, line) for line in lines]
        if any(p is not None and now - p.at > RESEND_WINDOW_SECONDS for p in parcels):
            raise refusal(RESEND_TOO_LATE, "当前订单状态不支持修改")
        for line in lines:
            before = self.renderer.waybill(state, line)
            self.renderer.resent[(index, line)] = (company, waybill)
            self.tracking_updates.append(
                {"tid": params.get("tid"), "line": line, "previous": before, "now": (company, waybill)}
            )
            self.stats.count("tracking_updates")
        # A change with no parcel moves nothing but the trade's modified time, as a real edit does.
        self.world.overlay.add_order_event(
            index, Event(int(self.world.now_ts()), "fulfilled", fulfillment=None)
        )
        return {"shipping": {"is_success": True}}

    # -------------------------------------------------------------------------------- stock
    def _variants(self, params: dict[str, str]) -> tuple[int, list[Variant]]:
        num_iid = integer(params, "num_iid")
        variants = [v for v in self.world.catalog.variants if v.listing("taobao").product_id == num_iid]
        if not variants:
            raise refusal("isv.item-not-exist", f"商品{num_iid}不存在")
        return num_iid, variants

    def stock_of(self, variant: Variant) -> int:
        return self.world.overlay.stock_levels.get(("taobao", variant.index, 0), variant.opening_stock)

    def quantity_update(self, params: dict[str, str]) -> dict[str, Any]:
        num_iid, variants = self._variants(params)
        quantity = integer(params, "quantity")
        kind = integer(params, "type", 1)
        if kind not in (1, 2):
            raise invalid("type", "type只能为1(全量)或2(增量)")
        sku_id, outer_id = params.get("sku_id"), params.get("outer_id")
        if sku_id:
            found = [v for v in variants if str(v.listing("taobao").variant_id) == sku_id]
        elif outer_id:
            found = [v for v in variants if v.listing("taobao").sku == outer_id]
        else:
            found = variants if len(variants) == 1 else []
        if len(found) != 1:
            why = "sku不存在" if sku_id or outer_id else "多sku商品必须指定sku_id或outer_id"
            raise refusal("isv.item-quantity-item-update-service-error:SKU_NOT_EXIST", why)
        level = quantity if kind == 1 else self.stock_of(found[0]) + quantity
        if level < 0:
            raise invalid("quantity", "库存不能小于0")
        now = int(self.world.now_ts())
        self.world.overlay.record_stock_set("taobao", found[0].index, 0, level, now)
        self.stats.count("stock_sets")
        item = self._item(num_iid, variants)
        return {"item": {"num_iid": num_iid, "num": item["num"], "modified": china_time(now)}}

    def _item(self, num_iid: int, variants: list[Variant]) -> dict[str, Any]:
        skus = [
            {
                "sku_id": v.listing("taobao").variant_id,
                "outer_id": v.listing("taobao").sku,
                "quantity": self.stock_of(v),
                "properties_name": v.variant_title or "",
            }
            for v in variants
        ]
        return {
            "num_iid": num_iid,
            "title": variants[0].product_title,
            "outer_id": variants[0].product_key,
            "num": sum(sku["quantity"] for sku in skus),
            "skus": {"sku": skus},
        }

    def item_seller_get(self, params: dict[str, str]) -> dict[str, Any]:
        num_iid, variants = self._variants(params)
        return {"item": self._item(num_iid, variants)}
