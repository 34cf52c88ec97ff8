"""What the hub pushes to Taobao: shipments on the ``connectors.shipping`` template, and stock.

- Shipment: ``taobao.logistics.offline.send`` (自己联系物流: the seller already holds the waybill), not
  ``online.send``, which confirms a logistics order created beforehand through Taobao's own logistics
  (``online.order``) that a warehouse shipping with its own carrier account never has. It takes ``tid``,
  ``out_sid`` (the waybill), ``company_code`` (Taobao's carrier code, ``CARRIER_CODES``) and, to ship only
  some sub-orders, ``is_split=1`` with ``sub_tid`` (their oids). Taobao ships whole sub-orders: there is no
  unit count, so a line must carry every open unit of its sub-order. Read first
  (``taobao.trade.fullinfo.get``): each sub-order's ``invoice_no`` is the waybill it shipped with, so a
  replay finds its own shipment.
- Correction: ``taobao.logistics.consign.resend`` (修改物流公司和运单号) with the same parameters changes the
  waybill of sub-orders already shipped.
- Stock: ``taobao.item.quantity.update`` ``{num_iid, sku_id (omitted for an item without SKUs), quantity,
  type: 1}`` (1 sets the level, 2 would add to it), read back with ``taobao.item.seller.get``. Taobao has no
  compare-and-set: the set is unconditional and says so.

Refusals are ``isv.*`` sub codes with code 15 (``REFUSALS``, from an ERP's table of them [S]): each is a
rejection with Taobao's words; B04 (shipped already, or closed) is read again first.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from connectors.errors import ApiError
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.shipping import ShipmentRules, ShipmentState, ShipmentSteps, push_shipment

if TYPE_CHECKING:
    from connectors.framework import Connector

    _Base = Connector
else:
    _Base = object

# Sub codes [S: an ERP's table of TOP's logistics sub codes, NOTES.md]; fullinfo's unknown tid is [U].
TRADE_NOT_EXIST = "isv.trade-not-exist"
SEND = "isv.logistics-offline-service-error:"
RESEND = "isv.logistics-update-company-or-mailno-error:"
ALREADY_SHIPPED = SEND + "B04"  # "订单状态不对": shipped already, or closed
REFUSALS = frozenset(
    {
        SEND + "B01",  # no such trade
        SEND + "B02",  # wrong trade status
        SEND + "B56",  # no company
        SEND + "B57",  # the company does not take self-arranged (offline) shipments
        SEND + "B59",  # no waybill
        SEND + "B60",  # a waybill that breaks the carrier's rule or is used already
        SEND + "P38",  # the split (sub_tid) failed Taobao's check
        SEND + "CD29",  # is_split on a trade that cannot be split
        RESEND + "CD19",  # not shipped yet: nothing to correct
        RESEND + "P03",  # no such company
        RESEND + "P06",  # the trade's status (or the 24 hours after shipping) no longer allows it
        RESEND + "P08",  # this trade's shipment cannot be changed
        RESEND + "B60",
        TRADE_NOT_EXIST,
        "isv.invalid-parameter",
    }
)

# connectors.carriers keys -> Taobao company codes (taobao.logistics.companies.get) [S: NOTES.md].
CARRIER_CODES: dict[str, str] = {
    "SF": "SF",
    "YTO": "YTO",
    "ZTO": "ZTO",
    "STO": "STO",
    "YUNDA": "YUNDA",
    "BEST": "HTKY",
    "EMS": "EMS",
    "CHINA_POST": "POSTB",
    "JD": "JD",
    "DEPPON": "DBKD",
    "JTEXPRESS": "JTSD",
}
RULES = ShipmentRules(
    platform="Taobao",
    carrier_codes=CARRIER_CODES,
    refusal_codes=REFUSALS,
    already_shipped_codes=frozenset({ALREADY_SHIPPED}),
    messages={
        SEND + "B57": "Taobao does not take this carrier for self-arranged shipments",
        RESEND + "P06": "Taobao changes a self-arranged waybill only within 24 hours of shipping",
    },
)
UNPAID = frozenset({"TRADE_NO_CREATE_PAY", "WAIT_BUYER_PAY", "PAY_PENDING", "WAIT_PRE_AUTH_CONFIRM"})
CLOSED = frozenset({"TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO"})
REFUNDED = "SUCCESS"


def sub_orders(trade: Any) -> list[dict[str, Any]]:
    """``orders.order[]`` of a trade (TOP's non-simplified JSON wraps every list in an object)."""
    orders = trade.get("orders") if isinstance(trade, dict) else None
    items = orders.get("order") if isinstance(orders, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _oid(order: dict[str, Any]) -> str:
    return str(order.get("oid_str") or order.get("oid") or "")


class TaobaoPushes(ShipmentSteps, _Base):
    """The pushes of ``TaobaoConnector`` (its endpoints ``ship``, ``resend``, ``set_stock``, ``item``)."""

    def get_order(self, order_id: str) -> dict[str, Any]:  # the connector's
        raise NotImplementedError

    # -- shipments: the steps connectors.shipping runs ------------------------------------------------

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        if not push.lines:
            return PushResult("rejected", "a Taobao shipment names at least one sub-order (oid)")
        return push_shipment(self, RULES, push)

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        try:
            trade = self.get_order(push.external_order_id)
        except ValueError as error:
            return ShipmentState(cannot_ship=str(error))
        except ApiError as error:
            if error.code == TRADE_NOT_EXIST:
                return ShipmentState(cannot_ship=f"{error.code}: {error.message}")
            raise
        by_oid = {_oid(order): order for order in sub_orders(trade)}
        waybills: set[str] | None = None
        on_platform: set[str] = set()
        for line in push.lines:
            order = by_oid.get(line.external_line_id)
            if order is None:
                return ShipmentState(
                    cannot_ship=f"oid {line.external_line_id} is not a sub-order of this trade"
                )
            shipped = {str(order["invoice_no"])} if order.get("invoice_no") else set()
            waybills = shipped if waybills is None else waybills & shipped
            on_platform |= shipped
        shipped_with = frozenset(waybills or ())
        status = trade.get("status")
        problem = None
        if status in UNPAID:
            problem = f"trade {push.external_order_id} is not paid ({status})"
        elif status in CLOSED:
            problem = f"trade {push.external_order_id} is closed ({status})"
        else:
            problem = self._line_problem(push, by_oid)
        return ShipmentState(
            shipped_with=shipped_with,
            on_platform=frozenset(on_platform),
            cannot_ship=problem,
            platform_ref=push.tracking_number if shipped_with else None,
        )

    @staticmethod
    def _line_problem(push: ShipmentPush, by_oid: dict[str, dict[str, Any]]) -> str | None:
        for line in push.lines:
            order = by_oid[line.external_line_id]
            if order.get("invoice_no"):
                continue  # shipped already (a correction, or Taobao's own refusal says so)
            if order.get("refund_status") == REFUNDED:
                return f"oid {line.external_line_id} was refunded: nothing to ship"
            num = order.get("num")
            if isinstance(num, int) and line.quantity != num:
                return (
                    f"oid {line.external_line_id}: Taobao ships whole sub-orders (offline.send takes no "
                    f"quantities); this shipment has {line.quantity} of its {num} units"
                )
        return None

    def _split(self, push: ShipmentPush, carrier: str) -> dict[str, Any]:
        """The send's parameters: the whole trade, or ``is_split`` with the sub-orders when others stay."""
        oids = list(dict.fromkeys(line.external_line_id for line in push.lines))
        trade = self.get_order(push.external_order_id)
        open_oids = {
            _oid(order)
            for order in sub_orders(trade)
            if not order.get("invoice_no") and order.get("refund_status") != REFUNDED
        }
        params: dict[str, Any] = {
            "tid": push.external_order_id,
            "out_sid": push.tracking_number,
            "company_code": carrier,
        }
        if set(oids) != open_oids:
            params.update(is_split=1, sub_tid=",".join(oids))
        return params

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        self._confirmed("ship", self._split(push, carrier), "taobao.logistics.offline.send")
        return PushResult("pushed", platform_ref=push.tracking_number)

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        oids = ",".join(dict.fromkeys(line.external_line_id for line in push.lines))
        params = {
            "tid": push.external_order_id,
            "out_sid": push.tracking_number,
            "company_code": carrier,
            "is_split": 1,
            "sub_tid": oids,
        }
        self._confirmed("resend", params, "taobao.logistics.consign.resend")
        return PushResult(
            "pushed",
            platform_ref=push.tracking_number,
            extra={"corrected": "true", "previous_tracking_number": replacing},
        )

    def _confirmed(self, endpoint: str, params: dict[str, Any], name: str) -> None:
        shipping = self.get(endpoint, params=params)
        if not (isinstance(shipping, dict) and shipping.get("is_success") is True):
            raise ApiError(f"{name} did not confirm: {json.dumps(shipping)[:200]}", platform="taobao")

    # -- stock ------------------------------------------------------------------------------------

    @staticmethod
    def _ids(listing: StockPush) -> tuple[str, str | None]:
        num_iid = (listing.channel_product_id or "").strip()
        sku_id = (listing.channel_variant_id or "").strip()
        return num_iid, (sku_id if sku_id not in ("", "0") else None)

    def listed_stock(self, listing: StockPush) -> int | None:
        num_iid, sku_id = self._ids(listing)
        if not num_iid.isdigit():
            raise ApiError(f"a Taobao num_iid is numeric, got {num_iid!r}", platform="taobao")
        item = self.get("item", params={"num_iid": num_iid})
        if sku_id is None:
            return int(item["num"])
        skus = item.get("skus", {}).get("sku", []) if isinstance(item.get("skus"), dict) else []
        for sku in skus:
            if str(sku.get("sku_id")) == sku_id:
                return int(sku["quantity"])
        raise ApiError(f"item {num_iid} has no SKU {sku_id}", platform="taobao")

    def set_stock(self, push: StockPush) -> PushResult:
        num_iid, sku_id = self._ids(push)
        if not num_iid.isdigit() or (sku_id is not None and not sku_id.isdigit()):
            return PushResult("rejected", f"Taobao ids are numeric: num_iid {num_iid!r}, sku_id {sku_id!r}")
        params: dict[str, Any] = {"num_iid": num_iid, "quantity": push.quantity, "type": 1}
        if sku_id is not None:
            params["sku_id"] = sku_id
        try:
            self.get("set_stock", params=params)
        except ApiError as error:
            if not str(error.code).startswith("isv."):
                raise
            return PushResult("rejected", f"Taobao {error.code}: {error.message}")
        extra = {"compare_and_set": "unsupported"} if push.expected_current is not None else {}
        ref = f"{num_iid}:{sku_id}" if sku_id else num_iid
        return PushResult("pushed", f"quantity set to {push.quantity}", platform_ref=ref, extra=extra)
