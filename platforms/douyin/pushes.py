"""What the hub pushes to Douyin: the shipment on the shared template (``connectors.shipping``) and the stock.

- Ship: ``order.orderDetail`` is read first: a package (``logistics_info[]``) holding the push's sku orders
  with this ``tracking_no`` is ``already_done``; more units than a sku order still has open is refused here,
  nothing sent. A push of every open unit goes to ``order.logisticsAdd`` ``{order_id, company_code,
  logistics_code}`` (the whole order, one package); any other to ``order.logisticsAddSinglePack``
  ``{order_id_list, shipped_order_info: [{shipped_order_id, shipped_num}], company_code, logistics_code,
  request_id}``, whose ``request_id`` (the hub's shipment key and tracking) makes a replay ship nothing again.
- A correction (the previous number is on the order) goes to ``order.logisticsEdit`` ``{order_id,
  company_code, logistics_code}``, or, when the order has several packages, ``order.logisticsEditByPack``
  with the ``pack_id`` (``delivery_id``) of the package that carries the previous number.
- Refusals: Douyin states business refusals as code 50002 (业务处理失败) or 40004 (非法的参数), with the
  reason only in ``sub_code``/``sub_msg`` whose values are not published [U]; so a 50002 is read again (a push
  that raced another finds its tracking there: ``already_done``), and any 50002/40004/40002 that remains is
  a rejection with Douyin's words.
- Stock: ``sku.syncStock`` ``{product_id, sku_id, stock_num, incremental: false}`` sets the level outright (no
  compare-and-set on Douyin); ``sku.detail`` ``{sku_id}`` -> ``data.stock_num`` reads it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.errors import ApiError, AuthError
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.shipping import ShipmentRules, ShipmentState, ShipmentSteps, push_shipment

if TYPE_CHECKING:
    from connectors.framework import Endpoint
    from connectors.http import ApiResponse, Request

# Douyin's company codes (order.logisticsCompanyList) by the hub's carrier key (connectors.carriers) [S].
CARRIER_CODES = {
    "SF": "shunfeng",
    "YTO": "yuantong",
    "ZTO": "zhongtong",
    "STO": "shentong",
    "YUNDA": "yunda",
    "BEST": "huitongkuaidi",
    "EMS": "ems",
    "CHINA_POST": "youzhengguonei",
    "JD": "jd",
    "DEPPON": "debangwuliu",
    "JTEXPRESS": "jtexpress",
}
BUSINESS_REFUSALS = frozenset({"40002", "40004", "50002"})
RULES = ShipmentRules(
    platform="Douyin",
    carrier_codes=CARRIER_CODES,
    refusal_codes=BUSINESS_REFUSALS,
    already_shipped_codes=frozenset({"50002"}),
    messages={"40004": "check the order id, carrier and tracking number"},
)
UNPAID, CANCELLED = 1, 4
SHIPPED = frozenset({3, 5})  # 已发货, 已完成
REFUND_SUCCESS = 3  # after_sale_info.refund_status 3: 退款成功


class DouyinPushes(ShipmentSteps):
    """Pushes of the Douyin connector (mixed into ``DouyinConnector``)."""

    if TYPE_CHECKING:

        def get_order(self, order_id: str) -> dict[str, Any]: ...
        def get(self, name: str, *, params: dict[str, Any] | None = None) -> Any: ...
        def build_request(self, name: str, *, params: dict[str, Any] | None = None) -> Request: ...
        def endpoint(self, name: str) -> Endpoint: ...

        client: Any

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        return push_shipment(self, RULES, push)

    # -- the template's steps ----------------------------------------------------------------------

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        try:
            order = self.get_order(push.external_order_id)
        except ApiError as error:
            if isinstance(error, AuthError) or str(error.code) not in BUSINESS_REFUSALS:
                raise
            return ShipmentState(cannot_ship=f"Douyin {error.code}: {error.message}")
        lines = {line.external_line_id for line in push.lines}
        shipped_with = frozenset(str(p.get("tracking_no")) for p in _packages(order, lines))
        status = order.get("order_status")
        if status == CANCELLED:
            problem: str | None = f"order {push.external_order_id} is cancelled"
        elif status == UNPAID:
            problem = f"order {push.external_order_id} is not paid"
        else:
            problem = _plan(order, push)[1]
        # send/update act on what was just read (the template hands ``order`` back to them)
        return ShipmentState(
            shipped_with=shipped_with,
            on_platform=shipped_with,
            cannot_ship=problem,
            platform_ref=push.external_order_id,
            order=order,
        )

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        whole, _ = _plan(state.order or {}, push)
        if whole:  # every open unit of the order: one package for the whole order
            params = {"order_id": push.external_order_id, "company_code": carrier}
            self._send("ship", {**params, "logistics_code": push.tracking_number})
            return PushResult("pushed", platform_ref=push.external_order_id)
        pushed: dict[str, int] = {}
        for line in push.lines:
            pushed[line.external_line_id] = pushed.get(line.external_line_id, 0) + line.quantity
        params = {
            "order_id_list": [push.external_order_id],
            "shipped_order_info": [{"shipped_order_id": k, "shipped_num": n} for k, n in pushed.items()],
            "company_code": carrier,
            "logistics_code": push.tracking_number,
            # Douyin answers a repeated request_id with the first success, shipping nothing again.
            "request_id": f"{push.shipment_key}:{push.tracking_number}",
        }
        self._send("ship_pack", params)
        return PushResult("pushed", platform_ref=push.external_order_id)

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        order = state.order or {}
        params = {"order_id": push.external_order_id, "company_code": carrier}
        params["logistics_code"] = push.tracking_number
        packages = [p for p in order.get("logistics_info") or [] if isinstance(p, dict)]
        if len(packages) > 1:  # logisticsEdit knows one package only: name the one to change
            lines = {line.external_line_id for line in push.lines}
            [pack] = [p for p in _packages(order, lines) if str(p.get("tracking_no")) == replacing][:1]
            self._send("update_pack", {**params, "pack_id": str(pack.get("delivery_id"))})
        else:
            self._send("update_tracking", params)
        return PushResult(
            "pushed",
            platform_ref=push.external_order_id,
            extra={"corrected": "true", "previous_tracking_number": replacing},
        )

    def _send(self, name: str, params: dict[str, Any]) -> ApiResponse:
        response: ApiResponse = self.client.send(self.build_request(name, params=params))
        return response

    # -- stock ---------------------------------------------------------------------------------------

    def set_stock(self, push: StockPush) -> PushResult:
        """Set one SKU's stock outright (Douyin has no compare-and-set: ``expected_current`` is reported as
        unsupported, not enforced)."""
        product_id, sku_id = (push.channel_product_id or "").strip(), (push.channel_variant_id or "").strip()
        if not (product_id.isdigit() and sku_id.isdigit()):
            return PushResult(
                "rejected",
                f"a Douyin stock set needs the numeric product_id and sku_id, got {product_id!r}/{sku_id!r}",
            )
        params = {"product_id": int(product_id), "sku_id": int(sku_id), "stock_num": push.quantity}
        try:
            self._send("set_stock", params)
        except ApiError as error:
            if isinstance(error, AuthError) or str(error.code) not in BUSINESS_REFUSALS:
                raise
            return PushResult("rejected", f"Douyin {error.code}: {error.message}")
        extra = {} if push.expected_current is None else {"compare_and_set": "unsupported"}
        return PushResult("pushed", f"stock_num set to {push.quantity}", f"{product_id}:{sku_id}", extra)

    def listed_stock(self, listing: StockPush) -> int | None:
        """``sku.detail``'s ``stock_num`` for the listing's sku_id."""
        sku_id = (listing.channel_variant_id or "").strip()
        if not sku_id.isdigit():
            raise ApiError(f"a Douyin sku_id is numeric, got {sku_id!r}", platform="douyin")
        detail = self.get("sku", params={"sku_id": int(sku_id)})
        stock = detail.get("stock_num") if isinstance(detail, dict) else None
        if not isinstance(stock, int) or isinstance(stock, bool):
            raise ApiError(f"sku.detail answered no stock_num for sku {sku_id}", platform="douyin")
        return stock


def _packages(order: dict[str, Any], lines: set[str]) -> list[dict[str, Any]]:
    """The order's packages holding any of the sku orders ``lines``."""
    return [
        p
        for p in order.get("logistics_info") or []
        if isinstance(p, dict)
        and lines & {str(i.get("sku_order_id")) for i in p.get("product_info") or [] if isinstance(i, dict)}
    ]


def _plan(order: dict[str, Any], push: ShipmentPush) -> tuple[bool, str | None]:
    """(the push ships every open unit of the order, why Douyin cannot ship it as asked or None)."""
    open_units: dict[str, int] = {}
    shipped: dict[str, int] = {}
    for package in order.get("logistics_info") or []:
        for item in (package or {}).get("product_info") or []:
            key = str(item.get("sku_order_id"))
            shipped[key] = shipped.get(key, 0) + int(item.get("product_count") or 0)
    for sku_order in order.get("sku_order_list") or []:
        refund = (sku_order.get("after_sale_info") or {}).get("refund_status")
        key = str(sku_order.get("order_id"))
        left = int(sku_order.get("item_num") or 0) - shipped.get(key, 0)
        if refund != REFUND_SUCCESS and left > 0:
            open_units[key] = left
    pushed: dict[str, int] = {}
    for line in push.lines:
        pushed[line.external_line_id] = pushed.get(line.external_line_id, 0) + line.quantity
    for key, units in pushed.items():
        if units > open_units.get(key, 0):
            return False, (
                f"sku order {key}: {units} units to ship but Douyin shows {open_units.get(key, 0)} still open"
            )
    return pushed == open_units, None
