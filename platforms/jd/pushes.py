"""What the hub pushes to JD: the shipment (on ``connectors.shipping``'s template) and a SKU's stock.

- Shipment: ``jingdong.pop.order.shipment`` ``{orderId, logiCoprId, logiNo}`` ships a whole POP order with
  one waybill; it takes no lines. So the push reads the order first (``jingdong.pop.order.get``): shipped
  already (``WAIT_GOODS_RECEIVE_CONFIRM``/``FINISHED_L``) with this ``waybill`` -> ``already_done``;
  cancelled -> rejected (a locked order: JD's own refusal); a push that does not carry every unit of every
  item -> rejected (JD would ship the rest too). JD's business refusals (``sopjosshipment_result.success``
  false) are rejections by their declared codes; an "already shipped" one is read again first (a push that
  raced another). A tracking correction has no JOS call we could confirm (NOTES.md): it is rejected, never
  shipped a second time.
- Stock: ``jingdong.stock.write.updateSkuStock`` ``{skuId, stockNum}`` sets a SKU's stock outright (a full
  set, so a replay is safe); JD has no compare-and-set. ``jingdong.sku.read.findSkuById`` reads it back.

Carrier codes are JD's ``logiCoprId`` values [U: see NOTES.md], keyed by ``connectors.carriers``' keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connectors.errors import ApiError
from connectors.http import dig
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.shipping import ShipmentRules, ShipmentState, ShipmentSteps, push_shipment

if TYPE_CHECKING:
    from connectors.framework import Endpoint
    from connectors.http import ApiResponse, HttpClient, Request

# connectors.carriers key -> JD logiCoprId [U: the values of JD's delivery company list as ISVs quote them]
CARRIER_CODES: dict[str, str] = {
    "SF": "467",
    "YTO": "463",
    "ZTO": "1499",
    "STO": "470",
    "YUNDA": "1327",
    "EMS": "465",
    "CHINA_POST": "2170",
    "JD": "2087",
    "DEPPON": "3046",
    "JTEXPRESS": "599866",
    "BEST": "1748",
}
SHIPPED_STATES = frozenset({"WAIT_GOODS_RECEIVE_CONFIRM", "FINISHED_L"})
# The sandbox's business codes [U]: JD documents none publicly; retrying cannot fix any of them.
ALREADY_SHIPPED = "10400004"
# jingdong.pop.order.get's "no such order" [U: the sandbox's code, NOTES.md]: JD has no order by that id for
# this shop (never created, never paid, or another shop's), so there is nothing to ship: a rejection.
NO_SUCH_ORDER = "10100002"
RULES = ShipmentRules(
    platform="JD",
    carrier_codes=CARRIER_CODES,
    refusal_codes=frozenset({"10400001", "10400002", "10400003", "10400005"}),
    already_shipped_codes=frozenset({ALREADY_SHIPPED}),
    messages={
        "10400002": "the order is cancelled or locked on JD",
        "10400003": "JD does not know this logiCoprId",
        "10400005": "JD refused the waybill number",
        ALREADY_SHIPPED: "the order already left with another waybill; JD changes no waybill through JOS",
    },
)


class JdPushes(ShipmentSteps):
    """Mixed into ``JdConnector``: needs its ``client``, ``build_request``, ``get`` and ``get_order``."""

    # Declared only: defining them here would shadow the connector's own methods (this class comes first).
    client: HttpClient
    platform: str
    build_request: Callable[..., Request]
    get: Callable[..., Any]
    get_order: Callable[[str], dict[str, Any]]
    endpoint: Callable[[str], Endpoint]

    # -- shipment steps (connectors.shipping) --

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        return push_shipment(self, RULES, push)

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        try:
            order = self.get_order(push.external_order_id)
        except ValueError as error:
            return ShipmentState(cannot_ship=str(error))
        except ApiError as error:
            if error.code in RULES.refusal_codes or error.code == NO_SUCH_ORDER:
                return ShipmentState(cannot_ship=f"{error.code}: {error.message}")
            raise
        state = order.get("orderState")
        waybill = str(order.get("waybill") or "")
        if state in SHIPPED_STATES:
            # Another waybill: the template then corrects (refused: no JOS call) or sends, which JD refuses
            # as already shipped, in its own words.
            waybills = frozenset({waybill}) if waybill else frozenset()
            return ShipmentState(shipped_with=waybills, on_platform=waybills, platform_ref=waybill or None)
        if state == "TRADE_CANCELED":
            return ShipmentState(cannot_ship=f"order {push.external_order_id} is cancelled on JD")
        return ShipmentState(cannot_ship=_whole_order_problem(order, push))

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        body = {"orderId": push.external_order_id, "logiCoprId": carrier, "logiNo": push.tracking_number}
        self._send("ship", body)
        return PushResult("pushed", platform_ref=push.tracking_number)

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        raise NotImplementedError("no confirmed JOS call changes a POP order's waybill (NOTES.md)")

    # -- stock --

    def listed_stock(self, listing: StockPush) -> int | None:
        sku_id = (listing.channel_variant_id or "").strip()
        if not sku_id.isdigit():
            raise ApiError(f"a JD skuId is numeric, got {sku_id!r}", platform=self.platform)
        sku = self.get("sku", params={"skuId": sku_id})
        value = sku.get("stockNum") if isinstance(sku, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise ApiError(f"findSkuById answered no stockNum for sku {sku_id}", platform=self.platform)
        return int(value)

    def set_stock(self, push: StockPush) -> PushResult:
        sku_id = (push.channel_variant_id or "").strip()
        if not sku_id.isdigit():
            return PushResult("rejected", f"a JD stock set needs the numeric skuId, got {sku_id!r}")
        try:
            self._send("set_stock", {"skuId": sku_id, "stockNum": push.quantity})
        except ApiError as error:
            if error.code in RULES.refusal_codes or error.code in {"10500001"}:
                return PushResult("rejected", f"JD {error.code}: {error.message}")
            raise
        extra = {"compare_and_set": "unsupported"} if push.expected_current is not None else {}
        return PushResult("pushed", f"stockNum set to {push.quantity}", platform_ref=sku_id, extra=extra)

    def _send(self, name: str, params: dict[str, Any]) -> ApiResponse:
        """One write; a ``success`` of false without a code is still a refusal."""
        response = self.client.send(self.build_request(name, params=params))
        result = dig(response.body, self.endpoint(name).records_path)
        if not isinstance(result, dict) or result.get("success") is not True:
            # Neither a refusal code nor a confirmation: raised (not a rejection), so the next attempt reads
            # the order again before deciding.
            raise ApiError(f"{name}: JD did not confirm: {result!r}", platform=self.platform)
        return response


def _whole_order_problem(order: dict[str, Any], push: ShipmentPush) -> str | None:
    """Why this push cannot be JD's one shipment of the order (it must carry every unit), or None."""
    ordered: dict[str, int] = {}
    for item in order.get("itemInfoList") or []:
        if isinstance(item, dict) and str(item.get("itemTotal", "")).isdigit():
            sku = str(item.get("skuId"))
            ordered[sku] = ordered.get(sku, 0) + int(item["itemTotal"])
    pushed: dict[str, int] = {}
    for line in push.lines:
        pushed[line.external_line_id] = pushed.get(line.external_line_id, 0) + line.quantity
    if unknown := sorted(set(pushed) - set(ordered)):
        return f"skuId {', '.join(unknown)} is not in JD order {push.external_order_id}"
    if pushed != ordered:
        return (
            "JD ships a whole order with one waybill (jingdong.pop.order.shipment takes no lines): this "
            f"shipment has {sum(pushed.values())} of the order's {sum(ordered.values())} units"
        )
    return None
