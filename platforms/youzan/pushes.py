"""Youzan's pushes on the shared template (``connectors.shipping``): the shipment steps, the carrier codes
(entries of ``connectors.carriers``' one table) and the stock set. Wire facts and sources: connector.py's
docstring and docs/platform-notes.md (Youzan).

Carriers: the table's key -> the name Youzan's express list (``youzan.logistics.express.get``) shows, then
the express id of that name on the live list (a carrier already named as Youzan names it, or given as a
listed id, matches directly). Shipment: the trade is read first (``youzan.trade.get``): ``online.confirm``
takes sub-order ids, not quantities, so each line must carry its sub-order's open units; sub-orders already
in a delivery with this waybill are ``already_done``; a correction changes the package's waybill with
``online.update``. Refusals: every business answer (``success: false``, the 3.x ``error_response``) about
the request is one, in Youzan's words; the gateway's answers (tokens, throttling, permissions) never are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.errors import ApiError
from connectors.http import dig
from connectors.pushes import PushResult, ShipmentLine, ShipmentPush, StockPush
from connectors.shipping import (
    ShipmentRefused,
    ShipmentRules,
    ShipmentState,
    ShipmentSteps,
    push_shipment,
    refusal_words,
)

if TYPE_CHECKING:
    from platforms.youzan.connector import YouzanConnector

ALREADY_SHIPPED = "102570007"
REFUND_SUCCESS = 60

# Carrier key (connectors.carriers) -> the name Youzan's express list uses for it.
CARRIER_CODES: dict[str, str] = {
    "SF": "顺丰速运",
    "YTO": "圆通速递",
    "ZTO": "中通快递",
    "STO": "申通快递",
    "YUNDA": "韵达快递",
    "BEST": "百世快递",
    "EMS": "EMS",
    "CHINA_POST": "邮政快递包裹",
    "JD": "京东快递",
    "DEPPON": "德邦快递",
    "UPS": "UPS",
    "USPS": "USPS",
    "FEDEX": "FedEx",
}


def _business_refusal(error: ApiError) -> bool:
    """A ``success: false`` answer about this request, not the gateway's (token, throttle, permission)."""
    return '"gw_err_resp"' not in error.body


def _words(error: ApiError) -> str:
    return f"Youzan {error.code}: {error.message}" if error.code else f"Youzan: {error.message}"


RULES = ShipmentRules(
    platform="Youzan",
    carrier_codes=CARRIER_CODES,
    # 102570020 nothing shippable, 105000016 no such order, 105000003 bad waybill; Youzan has more (every
    # business answer is a refusal, below), these are the ones its docs name for the logistics calls.
    refusal_codes=frozenset({"102570020", "105000016", "105000003"}),
    already_shipped_codes=frozenset({ALREADY_SHIPPED}),
    refuses=_business_refusal,
    words=_words,
    unknown_carrier=(
        "carrier {carrier!r} has no Youzan express id (not on youzan.logistics.express.get's list; the "
        "carrier table's Youzan names: {known})"
    ),
)


def carrier_key(name: str) -> str:
    """How Youzan's express list is matched: spaces, dashes and underscores folded, upper case."""
    return " ".join(name.replace("_", " ").replace("-", " ").split()).upper()


class YouzanShipment(ShipmentSteps):
    def __init__(self, connector: YouzanConnector) -> None:
        self.connector = connector

    def resolve_carrier(self, name: str, code: str | None) -> str | None:
        """The express id: the table's Youzan name, or the warehouse's own name, on the live list; or a
        listed id given as is."""
        ids = self.connector.express_ids()
        for candidate in (code, name):
            if candidate and carrier_key(candidate) in ids:
                return ids[carrier_key(candidate)]
        key = carrier_key(name)
        return key if key in ids.values() else None

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        if not push.lines:
            raise ShipmentRefused("a Youzan shipment names at least one sub-order (oid)")
        try:
            trade = self.connector.get_order(push.external_order_id)
        except ValueError as error:
            raise ShipmentRefused(str(error)) from None
        shipped = _waybills_of(trade, push.lines)
        return ShipmentState(
            shipped_with=shipped,
            on_platform=shipped,  # Youzan changes a waybill only where every sub-order shipped with it
            cannot_ship=_line_problem(trade, push.lines),
            detail=f"sub-orders already shipped with waybill {push.tracking_number}",
            order=trade,
        )

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        oids = ",".join(dict.fromkeys(line.external_line_id for line in push.lines))
        body = {"tid": push.external_order_id, "out_stype": carrier, "out_sid": push.tracking_number}
        connector = self.connector
        response = connector.client.send(
            connector.build_request("ship", body={**body, "oids": oids, "is_no_express": 0})
        )
        if not _accepted(response.body):
            raise ShipmentRefused(f"youzan.logistics.online.confirm did not confirm: {response.body!r}")
        return PushResult("pushed", f"shipped oids {oids}", extra={"oids": oids, "express_id": carrier})

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        """Give the packages that carry ``replacing`` for the push's sub-orders its carrier and waybill."""
        shipped = _deliveries(state.order)
        dist_ids = list(
            dict.fromkeys(
                str(dist.get("dist_id"))
                for line in push.lines
                for dist in shipped.get(line.external_line_id, [])
                if _waybill(dist) == replacing
            )
        )
        changes = [
            {"dist_id": d, "express_id": carrier, "express_no": push.tracking_number} for d in dist_ids
        ]
        body = {"tid": push.external_order_id, "trade_express_modify": changes}
        connector = self.connector
        try:
            response = connector.client.send(connector.build_request("update_tracking", body=body))
        except ApiError as error:
            words = refusal_words(RULES, error)
            if words is None:
                raise
            raise ShipmentRefused(f"waybill {replacing} not changed: {words}") from None
        if not _accepted(response.body):
            raise ShipmentRefused(f"youzan.logistics.online.update did not confirm: {response.body!r}")
        return PushResult(
            "pushed",
            f"waybill of packages {', '.join(dist_ids)}: {replacing} -> {push.tracking_number}",
            platform_ref=dist_ids[0],
            extra={
                "action": "update_tracking",
                "previous_tracking_number": replacing,
                "dist_ids": ",".join(dist_ids),
                "express_id": carrier,
            },
        )


def push_youzan_shipment(connector: YouzanConnector, push: ShipmentPush) -> PushResult:
    """Ship the push's sub-orders with its waybill (``youzan.logistics.online.confirm``), or, for a
    correction whose previous waybill Youzan shows, change that package's waybill
    (``youzan.logistics.online.update``)."""
    return push_shipment(YouzanShipment(connector), RULES, push)


def set_stock(connector: YouzanConnector, push: StockPush) -> PushResult:
    """Set the sellable quantity of one Youzan item or SKU: a full set, unconditional (Youzan has no
    compare-and-set, so ``expected_current`` is reported as unsupported, not enforced)."""
    item_id = (push.channel_product_id or "").strip()
    if not item_id.isdigit():
        return PushResult(
            "rejected", f"a Youzan stock set needs the numeric item_id (channel_product_id), got {item_id!r}"
        )
    sku_id = (push.channel_variant_id or "").strip()
    sku_id = "" if sku_id in ("", "0") else sku_id  # 0 / none: a single-spec item, sku_id is left out
    if sku_id and not sku_id.isdigit():
        return PushResult("rejected", f"a Youzan sku_id is numeric, got {sku_id!r}")
    body: dict[str, Any] = {"item_id": int(item_id), "quantity": push.quantity, "type": 0}
    if sku_id:
        body["sku_id"] = int(sku_id)
    try:
        response = connector.client.send(connector.build_request("set_stock", body=body))
    except ApiError as error:
        words = refusal_words(RULES, error)
        if words is None:
            raise
        return PushResult("rejected", words)
    if not _accepted(response.body):
        return PushResult("rejected", f"youzan.item.quantity.update did not confirm: {response.body!r}")
    ref = f"{item_id}:{sku_id}" if sku_id else item_id
    detail = f"quantity set to {push.quantity}"
    extra = {}
    if push.expected_current is not None:
        detail += " (unconditionally: Youzan has no compare-and-set)"
        extra["compare_and_set"] = "unsupported"
    return PushResult("pushed", detail, platform_ref=ref, extra=extra)


def _accepted(body: Any) -> bool:
    """``data.is_success`` (>= 4.0 envelope) or ``response.is_success`` (3.x); some answers carry a bare
    ``true`` in either."""
    for path in ("data.is_success", "response.is_success", "data", "response", "isSuccess"):
        value = dig(body, path)
        if isinstance(value, bool):
            return value
    return False


def _waybills_of(trade: dict[str, Any], lines: tuple[ShipmentLine, ...]) -> frozenset[str]:
    """The waybills every line's sub-order shipped with (in a shipped delivery, on one of its packages)."""
    shipped = _deliveries(trade)
    common: set[str] | None = None
    for line in lines:
        numbers = {_waybill(d) for d in shipped.get(line.external_line_id, [])} - {""}
        common = numbers if common is None else common & numbers
    return frozenset(common or ())


def _line_problem(trade: dict[str, Any], lines: tuple[ShipmentLine, ...]) -> str | None:
    """Why Youzan cannot ship these lines as asked (it ships whole sub-orders), or None. Read from the raw
    trade: each sub-order's ``num``, and whether a successful refund names it (Youzan states no refunded
    unit counts, so a refunded sub-order is checked against ``num`` only: Youzan ships what it knows is
    left)."""
    info = trade.get("full_order_info") if isinstance(trade, dict) else None
    order_info = info.get("order_info") if isinstance(info, dict) else None
    items = info.get("orders") if isinstance(info, dict) else None
    if not isinstance(order_info, dict) or not isinstance(items, list):
        return None  # an odd payload: let the platform judge the oids
    if order_info.get("status") == "TRADE_CLOSED":
        return None  # Youzan's own refusal names the closed trade
    nums = {
        str(item["oid"]): item.get("num")
        for item in items
        if isinstance(item, dict) and item.get("oid") is not None
    }
    refunded = _refunded_oids(trade)
    shipped = _deliveries(trade)
    for line in lines:
        oid = line.external_line_id
        if oid not in nums:
            return f"oid {oid} is not a sub-order of trade {order_info.get('tid')}"
        num = nums[oid]
        if oid in shipped or not isinstance(num, int) or isinstance(num, bool):
            continue  # shipped with another waybill (Youzan says so), or an odd num: Youzan judges
        if line.quantity > num:
            return f"oid {oid}: {line.quantity} units to ship but only {num} ordered"
        if line.quantity < num and oid not in refunded:
            return (
                f"oid {oid}: Youzan ships whole sub-orders (online.confirm takes no quantities); this "
                f"shipment has {line.quantity} of its {num} open units"
            )
    return None


def _refunded_oids(trade: dict[str, Any]) -> set[str]:
    """Sub-orders named by a successful refund (``refund_state`` 60)."""
    oids: set[str] = set()
    for refund in trade.get("refund_order") or []:
        if isinstance(refund, dict) and refund.get("refund_state") in (REFUND_SUCCESS, str(REFUND_SUCCESS)):
            oids.update(
                str(entry["oid"])
                for entry in refund.get("oids") or []
                if isinstance(entry, dict) and entry.get("oid") is not None
            )
    return oids


def _deliveries(trade: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """oid -> the packages (dists) of the shipped delivery that holds it."""
    shipped: dict[str, list[dict[str, Any]]] = {}
    for delivery in trade.get("delivery_order") or []:
        if not isinstance(delivery, dict) or delivery.get("express_state") not in (1, "1"):
            continue
        dists = [d for d in delivery.get("dists") or [] if isinstance(d, dict)]
        for entry in delivery.get("oids") or []:
            if isinstance(entry, dict) and entry.get("oid") is not None:
                shipped.setdefault(str(entry["oid"]), []).extend(dists)
    return shipped


def _waybill(dist: dict[str, Any]) -> str:
    info = dist.get("express_info")
    return str(info.get("express_no", "")) if isinstance(info, dict) else ""
