"""WeChat Channels' pushes on the shared template (``connectors.shipping``): the shipment steps, the carrier
codes (entries of ``connectors.carriers``' one table), the mini-program shipping-info upload that follows a
parcel, and the stock set. Wire facts and sources: connector.py's docstring and docs/platform-notes.md.

Carriers: the shop's live company list (``order/deliverycompanylist/new/get``) first, as a listed code or a
listed name; then the table's WeChat code, which must be on the live list (``OTHER`` is taken by
``delivery/send`` whether listed or not). Refusals: every errcode other than the token, quota, throttle and
busy ones (declared on the connector's ErrorPolicy, which raises those as their own classes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from connectors.carriers import carrier_code
from connectors.errors import ApiError
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
    from platforms.wechat_channels.connector import WeChatChannelsConnector

DELIVER_TYPE_EXPRESS = 1  # 自寄快递: the merchant's own courier and waybill
ORDER_NUMBER_TRANSACTION_ID = 2
DELIVERY_MODE_UNIFIED, DELIVERY_MODE_SPLIT = 1, 2
LOGISTICS_EXPRESS = 1
MAX_SHIPPING_PARCELS = 15
MAX_ITEM_DESC = 120  # [U] as commonly quoted for item_desc
CHINA_TIME = timezone(timedelta(hours=8))
DIFF_TYPE_SET = 3
OTHER_CARRIER = "OTHER"

# Carrier key (connectors.carriers) -> WeChat's official delivery_id (the documented company table of
# deliverycompanylist/new/get). A code found here must still be on the shop's live list.
CARRIER_CODES: dict[str, str] = {
    "SF": "SF",
    "YTO": "YTO",
    "ZTO": "ZTO",
    "STO": "STO",
    "YUNDA": "YUNDA",
    "JTEXPRESS": "JTSD",
    "EMS": "EMS",
    "CHINA_POST": "EMS",  # WeChat lists China Post as EMS 中国邮政
    "JD": "JD",
    "DEPPON": "DBKD",
    "CAINIAO": "CNSD",
    "ZJS": "ZJS",
    "OTHER": OTHER_CARRIER,
}


def _words(error: ApiError) -> str:
    return f"errcode {error.code}: {error.message}".strip()


RULES = ShipmentRules(
    platform="WeChat",
    carrier_codes=CARRIER_CODES,
    # 109000 order state or quantity, 109001 already shipped, 606004 bad delivery_id, 606041 too many
    # tracking changes; every other business errcode is a refusal too (below).
    refusal_codes=frozenset({"109000", "109001", "606004", "606041"}),
    refuses=lambda error: True,  # credentials, quota and paging raise before this (connectors.shipping)
    words=_words,
)

_NOT_WORD = re.compile(r"[\W_]+")


def _normalise_carrier(name: str) -> str:
    return _NOT_WORD.sub("", name).casefold()


def delivery_id_for(carrier: str, companies: Mapping[str, str]) -> str | None:
    """The WeChat ``delivery_id`` for the hub's carrier name: a code on the shop's live list (``companies``,
    ``delivery_id -> delivery_name``), found as a listed code, a listed name, or through the carrier table;
    ``OTHER`` when the hub names no carrier but "OTHER". None: not on the list."""
    key = _normalise_carrier(carrier)
    if not key:
        return None
    by_code = {_normalise_carrier(code): code for code in companies}
    by_name = {_normalise_carrier(name): code for code, name in companies.items() if name}
    if key in by_code:
        return by_code[key]
    if key in by_name:
        return by_name[key]
    code = carrier_code(CARRIER_CODES, carrier)
    if code == OTHER_CARRIER:
        return OTHER_CARRIER  # accepted by delivery/send whether the list shows it or not
    return code if code in companies else None


def _line_ids(line: ShipmentLine) -> tuple[str, str]:
    """(product_id, sku_id): the line's channel ids, else its ``"<product_id>:<sku_id>[#n]"`` line id."""
    if line.channel_product_id and line.channel_variant_id:
        return line.channel_product_id, line.channel_variant_id
    product_id, _, sku_id = line.external_line_id.partition("#")[0].partition(":")
    if not (product_id.isdigit() and sku_id.isdigit()):
        raise ValueError(f"line {line.external_line_id!r} names no WeChat product_id and sku_id")
    return product_id, sku_id


def _units(product_infos: Any) -> dict[tuple[str, str], int]:
    """{(product_id, sku_id): count} of a parcel's ``product_infos`` (ids as strings)."""
    units: dict[tuple[str, str], int] = {}
    for product in product_infos if isinstance(product_infos, list) else []:
        if not isinstance(product, dict):
            continue
        key = (str(product.get("product_id")), str(product.get("sku_id")))
        count = product.get("product_cnt")
        units[key] = units.get(key, 0) + (count if isinstance(count, int) else 0)
    return units


def _product_infos(units: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    return [
        {"product_id": product_id, "sku_id": sku_id, "product_cnt": count}
        for (product_id, sku_id), count in units.items()
    ]


def _parcels_of(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    detail = order.get("order_detail")
    delivery = detail.get("delivery_info") if isinstance(detail, dict) else None
    parcels = delivery.get("delivery_product_info") if isinstance(delivery, dict) else None
    return [p for p in parcels if isinstance(p, dict)] if isinstance(parcels, list) else []


class WeChatShipment(ShipmentSteps):
    """One parcel per push (``delivery/send``), recognised when already there, or its tracking corrected
    (``deliveryinfo/update``); then the mini program's shipping info when the channel has one."""

    def __init__(self, connector: WeChatChannelsConnector) -> None:
        self.connector = connector

    def resolve_carrier(self, name: str, code: str | None) -> str | None:
        companies = self.connector.delivery_companies()
        delivery_id = delivery_id_for(name, companies)
        if delivery_id is None:
            raise ShipmentRefused(
                f"carrier {name!r} is not on the shop's WeChat company list ({', '.join(sorted(companies))})"
            )
        return delivery_id

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        wanted: dict[tuple[str, str], int] = {}
        try:
            for line in push.lines:
                if line.quantity <= 0:
                    raise ValueError(f"line {line.external_line_id!r} ships {line.quantity} units")
                key = _line_ids(line)
                wanted[key] = wanted.get(key, 0) + line.quantity
        except ValueError as problem:
            raise ShipmentRefused(str(problem)) from None
        if not wanted:
            raise ShipmentRefused("the shipment lists no lines")
        order = self.connector.read_order(push.external_order_id)
        parcels = _parcels_of(order)
        held = {
            str(p.get("waybill_id"))
            for p in parcels
            if p.get("delivery_id") == carrier
            and all(_units(p.get("product_infos")).get(key, 0) >= count for key, count in wanted.items())
        }
        waybill = push.tracking_number.strip()
        previous = (push.previous_tracking_number or "").strip()
        listed = {str(p.get("waybill_id")) for p in parcels}
        correction = {"action": "update_tracking", "previous_tracking_number": previous} if previous else {}
        return ShipmentState(
            shipped_with=frozenset({push.tracking_number} if waybill in held else ()),
            on_platform=frozenset(listed),
            # The same waybill under another carrier: a correction of the carrier alone.
            replaces=previous if previous and previous == waybill and previous in listed else None,
            platform_ref=waybill,
            detail="a parcel with this waybill holds these units",
            extra=correction,
            order=(order, parcels, wanted),
        )

    def on_already_done(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, result: PushResult
    ) -> PushResult:
        order, parcels, _ = state.order
        return self._with_shipping_info(push, order, parcels, result)

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        order, parcels, wanted = state.order
        parcel = {
            "delivery_id": carrier,
            "waybill_id": push.tracking_number.strip(),
            "deliver_type": DELIVER_TYPE_EXPRESS,
            "product_infos": _product_infos(wanted),
        }
        self.connector.get(
            "send_delivery", body={"order_id": str(push.external_order_id), "delivery_list": [parcel]}
        )
        sent = PushResult(
            "pushed",
            detail="send_delivery",
            platform_ref=parcel["waybill_id"],
            extra={"delivery_id": carrier},
        )
        return self._with_shipping_info(push, order, [*parcels, parcel], sent)

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        """The parcel holding ``replacing`` gets the push's carrier and waybill (``change_infos``: one
        parcel of possibly several); its goods stay as WeChat lists them."""
        order, parcels, _ = state.order
        old = next(p for p in parcels if str(p.get("waybill_id")) == replacing)
        waybill = push.tracking_number.strip()
        goods = _product_infos(_units(old.get("product_infos")))
        was = {"delivery_id": str(old.get("delivery_id", "")), "waybill_id": str(old.get("waybill_id", ""))}
        now = {"delivery_id": carrier, "waybill_id": waybill}
        body = {
            "order_id": str(push.external_order_id),
            "change_infos": [
                {"old": {**was, "product_infos": goods}, "new": {**now, "product_infos": goods}}
            ],
        }
        self.connector.get("update_delivery", body=body)
        changed = PushResult(
            "pushed",
            detail="update_delivery",
            platform_ref=waybill,
            extra={**state.extra, "delivery_id": carrier, "replaced_delivery_id": was["delivery_id"]},
        )
        after = [{**p, **now} if p is old else p for p in parcels]
        return self._with_shipping_info(push, order, after, changed)

    def _with_shipping_info(
        self, push: ShipmentPush, order: Mapping[str, Any], parcels: list[dict[str, Any]], sent: PushResult
    ) -> PushResult:
        """``sent`` once the payment's shipping info is on the mini program's service too (when configured).

        ``parcels`` are the order's parcels now, this push's included."""
        mini = self.connector.mini_program
        if mini is None:
            return sent
        waybill = push.tracking_number.strip()
        done = {
            "send_delivery": "delivery/send succeeded",
            "update_delivery": "deliveryinfo/update succeeded",
        }
        said = f"{done.get(sent.detail, 'the parcel was already on the order')}, but upload_shipping_info"
        detail = order.get("order_detail") if isinstance(order.get("order_detail"), dict) else {}
        pay_info = detail.get("pay_info") if isinstance(detail.get("pay_info"), dict) else {}
        transaction_id = pay_info.get("transaction_id")
        if not transaction_id:
            return replace(
                sent, status="rejected", detail=f"{said} cannot run: the order has no transaction_id"
            )
        try:
            payment = mini.get("payment_order", body={"transaction_id": str(transaction_id)})
        except ApiError as error:
            if (words := refusal_words(RULES, error)) is not None:
                return replace(sent, status="rejected", detail=f"{said} failed: {words}")
            raise
        payment = payment if isinstance(payment, dict) else {}
        payer = payment.get("openid")  # the payer under the mini program's appid, not the shop's
        if not isinstance(payer, str) or not payer:
            return replace(
                sent, status="rejected", detail=f"{said} cannot run: the mini program shows no payer openid"
            )
        shipping = payment.get("shipping")
        recorded = shipping.get("shipping_list") if isinstance(shipping, dict) else None
        recorded = [e for e in recorded if isinstance(e, dict)] if isinstance(recorded, list) else []
        if any(e.get("tracking_no") == waybill for e in recorded):
            return replace(sent, extra={**sent.extra, "shipping_info": "already uploaded"})
        if len(parcels) > MAX_SHIPPING_PARCELS:
            return replace(
                sent,
                status="rejected",
                detail=f"{said} cannot take {len(parcels)} parcels (at most {MAX_SHIPPING_PARCELS})",
            )
        unified = push.completes_order and len(parcels) == 1
        body = _shipping_info(push, detail, parcels, recorded, str(transaction_id), payer, unified)
        try:
            mini.get("upload_shipping_info", body=body)
        except ApiError as error:
            if (words := refusal_words(RULES, error)) is not None:
                return replace(sent, status="rejected", detail=f"{said} was refused: {words}")
            raise
        mode = "unified" if unified else f"split, is_all_delivered={str(push.completes_order).lower()}"
        return replace(sent, extra={**sent.extra, "shipping_info": f"uploaded ({mode})"})


def _shipping_info(
    push: ShipmentPush,
    detail: Mapping[str, Any],
    parcels: list[dict[str, Any]],
    recorded: list[dict[str, Any]],
    transaction_id: str,
    payer: str,
    unified: bool,
) -> dict[str, Any]:
    """``upload_shipping_info``'s body: one ``shipping_list`` entry per parcel of the order; UNIFIED when
    this push completes the order in its only parcel, else SPLIT with ``is_all_delivered``; ``upload_time``
    = ``shipped_at`` in +08:00, moved past the last recorded upload (updates must be later)."""
    titles = {
        (str(p.get("product_id")), str(p.get("sku_id"))): str(p.get("title") or "")
        for p in detail.get("product_infos") or []
        if isinstance(p, dict)
    }
    delivery = detail.get("delivery_info") if isinstance(detail.get("delivery_info"), dict) else {}
    address = delivery.get("address_info") if isinstance(delivery.get("address_info"), dict) else {}
    contact = _masked_phone(address.get("tel_number"))
    shipping_list = [
        {
            "tracking_no": str(p.get("waybill_id", "")),
            "express_company": str(p.get("delivery_id", "")),
            "item_desc": _item_desc(p.get("product_infos"), titles),
            **({"contact": {"receiver_contact": contact}} if contact else {}),
        }
        for p in parcels
    ]
    upload_time = push.shipped_at.astimezone(CHINA_TIME)
    last = max(
        (e.get("upload_time") for e in recorded if isinstance(e.get("upload_time"), int)), default=None
    )
    if last is not None and upload_time.timestamp() <= last:  # updates must be later than the last one
        upload_time = datetime.fromtimestamp(last + 1, CHINA_TIME)
    body: dict[str, Any] = {
        "order_key": {"order_number_type": ORDER_NUMBER_TRANSACTION_ID, "transaction_id": transaction_id},
        "delivery_mode": DELIVERY_MODE_UNIFIED if unified else DELIVERY_MODE_SPLIT,
        "logistics_type": LOGISTICS_EXPRESS,
        "shipping_list": shipping_list,
        "upload_time": upload_time.isoformat(timespec="milliseconds"),
        "payer": {"openid": payer},
    }
    if not unified:
        body["is_all_delivered"] = push.completes_order
    return body


def _item_desc(product_infos: Any, titles: Mapping[tuple[str, str], str]) -> str:
    """ "title*count" per product of a parcel, like the doc's "微信气泡狗集线器*1", capped in length."""
    parts = [
        f"{titles.get(key) or f'{key[0]}:{key[1]}'}*{count}" for key, count in _units(product_infos).items()
    ]
    text = "; ".join(parts) or "商品"
    return text if len(text) <= MAX_ITEM_DESC else text[: MAX_ITEM_DESC - 1] + "…"


def _masked_phone(number: Any) -> str:
    """ "139****2901": the form the shipping-info service takes for a contact."""
    digits = str(number or "")
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 7 else ""


def push_wechat_shipment(connector: WeChatChannelsConnector, push: ShipmentPush) -> PushResult:
    return push_shipment(WeChatShipment(connector), RULES, push)


def set_stock(connector: WeChatChannelsConnector, push: StockPush) -> PushResult:
    """Set the sellable quantity (``diff_type`` 3); per warehouse when ``location_ref`` names one. WeChat has
    no compare-and-set: the set is unconditional and the result says so."""
    if not (push.channel_product_id and push.channel_variant_id):
        return PushResult(
            "rejected",
            detail=f"WeChat stock is set per product_id and sku_id; the listing of {push.merchant_sku!r} "
            "has none in the hub",
        )
    if push.quantity < 0:
        return PushResult("rejected", detail=f"cannot set a negative stock ({push.quantity})")
    body: dict[str, Any] = {
        "product_id": push.channel_product_id,
        "sku_id": push.channel_variant_id,
        "diff_type": DIFF_TYPE_SET,
        "num": push.quantity,
    }
    operation = "set_stock"
    if push.location_ref:
        operation, body["out_warehouse_id"] = "set_warehouse_stock", push.location_ref
    try:
        connector.get(operation, body=body)
    except ApiError as error:
        if (words := refusal_words(RULES, error)) is not None:
            return PushResult("rejected", detail=words)
        raise
    extra = {"num": str(push.quantity)}
    if push.expected_current is not None:
        extra["compare_and_set"] = "unsupported: WeChat has no conditional stock update; set unconditionally"
    return PushResult(
        "pushed",
        detail=operation,
        platform_ref=f"{push.channel_product_id}:{push.channel_variant_id}",
        extra=extra,
    )
