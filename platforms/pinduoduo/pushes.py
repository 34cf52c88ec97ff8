"""What the hub pushes to Pinduoduo: tracking (on the ``connectors.shipping`` template) and stock.

- Carriers: ``pdd.logistics.online.send`` takes a numeric ``logistics_id`` from
  ``pdd.logistics.companies.get`` (``[{id, logistics_company, code}]``). The hub's carriers map to the list's
  ``code`` (``CARRIER_CODES``, keyed by ``connectors.carriers``); the id is read from the live list (once per
  connector), never hard-coded: a carrier the list does not carry is rejected before anything is sent.
- Pinduoduo ships whole orders: the call takes no lines, one waybill per order. A shipment that leaves units
  open is rejected (``completes_order``); the order's ``tracking_number`` says what it shipped with.
  ``redelivery_type`` 1 ships a waiting order, 2 replaces the waybill of a shipped one (a correction).
- Refusals (``error_response``) of code 10000 (a parameter) or 50001 (business) are rejections in
  Pinduoduo's words; 50001 is also read again first, as an "already shipped" that raced another push.
- Stock: ``pdd.goods.quantity.update`` ``{goods_id, sku_id (or outer_id), quantity, update_type: 1}``: a
  full set, so a replay sets the same level. No compare-and-set: ``expected_current`` is reported as
  unsupported, not enforced. ``pdd.goods.detail.get`` reads a level back (``sku_list[{sku_id, quantity}]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.errors import ApiError, AuthError, QuotaExhausted
from connectors.http import dig
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.shipping import ShipmentRules, ShipmentState, ShipmentSteps, push_shipment

if TYPE_CHECKING:
    from platforms.pinduoduo.connector import PinduoduoConnector

REFUSALS = frozenset({"10000", "50001"})
# The hub's carrier key -> the ``code`` of Pinduoduo's company list [S: the sandbox's list; codes U].
CARRIER_CODES = {
    "STO": "STO",
    "BEST": "HT",
    "SF": "SF",
    "YTO": "YTO",
    "ZTO": "ZTO",
    "EMS": "EMS",
    "JD": "JD",
    "YUNDA": "YUNDA",
    "DEPPON": "DEPPON",
    "CHINA_POST": "YZXB",
    "JTEXPRESS": "JTSD",
    "UPS": "UPS",
    "FEDEX": "FEDEX",
    "USPS": "USPS",
}
RULES = ShipmentRules(
    "Pinduoduo", CARRIER_CODES, refusal_codes=REFUSALS, already_shipped_codes=frozenset({"50001"})
)
FIRST_SHIPMENT, CHANGE_SHIPMENT = 1, 2
SHIPPED_STATUSES = (2, 3)
REFUND_SUCCESS = 4


class PinduoduoPushes(ShipmentSteps):
    """Mixed into ``PinduoduoConnector``: the ``ShipmentSteps`` and the stock calls."""

    _logistics_ids: dict[str, str] | None = None

    def logistics_ids(self: PinduoduoConnector) -> dict[str, str]:
        """Pinduoduo's company ``code`` -> its ``logistics_id``, from ``pdd.logistics.companies.get``."""
        if self._logistics_ids is None:
            companies = self.get("logistics_companies")
            if not isinstance(companies, list):
                raise ApiError("pdd.logistics.companies.get answered no list", platform=self.platform)
            self._logistics_ids = {
                str(company["code"]): str(company["id"])
                for company in companies
                if isinstance(company, dict) and company.get("id") is not None and company.get("code")
            }
        return self._logistics_ids

    def push_shipment(self: PinduoduoConnector, push: ShipmentPush) -> PushResult:
        return push_shipment(self, RULES, push)

    def resolve_carrier(self: PinduoduoConnector, name: str, code: str | None) -> str | None:
        return None if code is None else self.logistics_ids().get(code)

    # -- ShipmentSteps ----------------------------------------------------------------------------

    def read_shipment(self: PinduoduoConnector, push: ShipmentPush, carrier: str) -> ShipmentState:
        try:
            order = self.get_order(push.external_order_id)
        except ApiError as error:
            if not _refusal(error):
                raise
            return ShipmentState(cannot_ship=f"{error.code}: {error.message}")
        tracking = str(order.get("tracking_number") or "")
        shipped = order.get("order_status") in SHIPPED_STATUSES and tracking
        waybills = frozenset({tracking}) if shipped else frozenset()
        state = ShipmentState(shipped_with=waybills, on_platform=waybills)
        if order.get("refund_status") == REFUND_SUCCESS:
            return replace_state(state, "refunded in full on Pinduoduo (refund_status 4): nothing to ship")
        if not shipped and not push.completes_order:
            return replace_state(
                state,
                "Pinduoduo ships whole orders (pdd.logistics.online.send takes no lines); this shipment "
                "leaves units of the order open",
            )
        return ShipmentState(shipped_with=waybills, on_platform=waybills, platform_ref=tracking or None)

    def send_shipment(
        self: PinduoduoConnector, push: ShipmentPush, carrier: str, state: ShipmentState
    ) -> PushResult:
        return PushResult("pushed", platform_ref=self._send(push, carrier, FIRST_SHIPMENT))

    def update_tracking(
        self: PinduoduoConnector, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        ref = self._send(push, carrier, CHANGE_SHIPMENT)  # redelivery_type 2: the order's waybill replaced
        return PushResult(
            "pushed", platform_ref=ref, extra={"corrected": "true", "previous_tracking_number": replacing}
        )

    def _send(self: PinduoduoConnector, push: ShipmentPush, carrier: str, redelivery_type: int) -> str:
        params = {
            "order_sn": push.external_order_id,
            "logistics_id": int(carrier),
            "tracking_number": push.tracking_number,
            "redelivery_type": redelivery_type,
        }
        response = self.client.send(self.build_request("ship", params=params))
        if dig(response.body, "logistics_online_send_response.is_success") is not True:
            raise ApiError(
                f"pdd.logistics.online.send did not confirm: {str(response.body)[:200]}",
                platform=self.platform,
            )
        return push.external_order_id

    # -- stock --------------------------------------------------------------------------------------

    def listed_stock(self: PinduoduoConnector, listing: StockPush) -> int | None:
        goods_id = (listing.channel_product_id or "").strip()
        if not goods_id.isdigit():
            raise ApiError(f"a Pinduoduo goods_id is numeric, got {goods_id!r}", platform=self.platform)
        goods = self.get("goods", params={"goods_id": int(goods_id)})
        skus = goods.get("sku_list") if isinstance(goods, dict) else None
        wanted = (listing.channel_variant_id or "").strip()
        for sku in skus if isinstance(skus, list) else []:
            if isinstance(sku, dict) and (
                str(sku.get("sku_id")) == wanted
                or (not wanted and sku.get("outer_id") == listing.merchant_sku)
            ):
                return int(sku["quantity"])
        raise ApiError(
            f"goods {goods_id} lists no SKU {wanted or listing.merchant_sku}", platform=self.platform
        )

    def set_stock(self: PinduoduoConnector, push: StockPush) -> PushResult:
        goods_id = (push.channel_product_id or "").strip()
        sku_id = (push.channel_variant_id or "").strip()
        if not goods_id.isdigit():
            return PushResult(
                "rejected", f"a Pinduoduo stock set needs the numeric goods_id, got {goods_id!r}"
            )
        params: dict[str, Any] = {"goods_id": int(goods_id), "quantity": push.quantity}
        if sku_id.isdigit():
            params["sku_id"] = int(sku_id)
        elif push.merchant_sku:
            params["outer_id"] = push.merchant_sku  # the merchant's SKU code, as Pinduoduo also takes it
        else:
            return PushResult("rejected", "a Pinduoduo stock set names the sku_id or the outer_id")
        try:
            response = self.client.send(self.build_request("set_stock", params=params))
        except ApiError as error:
            if not _refusal(error):
                raise
            return PushResult("rejected", f"{error.code}: {error.message}")
        if dig(response.body, "goods_quantity_update_response.is_success") is not True:
            return PushResult(
                "rejected", f"pdd.goods.quantity.update did not confirm: {str(response.body)[:200]}"
            )
        detail = f"quantity set to {push.quantity}"
        extra = {}
        if push.expected_current is not None:
            detail += " (unconditionally: Pinduoduo has no compare-and-set)"
            extra["compare_and_set"] = "unsupported"
        return PushResult("pushed", detail, platform_ref=f"{goods_id}:{sku_id}", extra=extra)


def replace_state(state: ShipmentState, why: str) -> ShipmentState:
    return ShipmentState(shipped_with=state.shipped_with, on_platform=state.on_platform, cannot_ship=why)


def _refusal(error: ApiError) -> bool:
    """A business or parameter refusal of this request, not a credential or quota problem."""
    return not isinstance(error, AuthError | QuotaExhausted) and str(error.code) in REFUSALS
