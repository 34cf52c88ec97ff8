"""The mini program's shipping-info service (发货信息管理, ``wxa/sec/order/*``) over the same orders:
``upload_shipping_info`` and ``get_order`` on WeChat Pay payment orders."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.wechat_channels.render import WeChatChannelsRenderer
from sandbox.wechat_channels.wire import (
    DELIVERY_COMPANIES,
    ERR_MP_INVALID,
    ERR_NOT_PAYER,
    ERR_NOT_SHIPPABLE,
    ERR_NOT_UPDATED,
    ERR_PAYMENT_NOT_FOUND,
    ERR_RESHIPPED,
    MAX_ITEM_DESC,
    MAX_PARCELS,
    MP_ORDER_COMPLETED,
    MP_ORDER_CONFIRMED,
    MP_ORDER_REFUNDED,
    MP_ORDER_SHIPPED,
    MP_ORDER_TO_SHIP,
    SANDBOX_MCHID,
    STATUS_COMPLETED,
    WeChatError,
    _int_field,
    json_body,
    ok,
)
from sandbox.world import OrderState, World


@dataclass(slots=True)
class ShippingRecord:
    """What ``upload_shipping_info`` recorded for one payment order (the last accepted upload)."""

    delivery_mode: int
    logistics_type: int
    finished: bool  # UNIFIED, or SPLIT with is_all_delivered
    shipping_list: list[dict[str, Any]]  # {tracking_no, express_company, item_desc, contact}
    upload_time: datetime  # of the last accepted upload
    finish_count: int  # uploads that finished the shipping: 2 means the one re-shipment is used


@dataclass(frozen=True, slots=True)
class ShippingUpload:
    order_key: dict[str, Any]
    delivery_mode: int
    logistics_type: int
    is_all_delivered: bool | None
    shipping_list: list[dict[str, Any]]
    upload_time: datetime
    openid: str


def _mp_int(body: dict[str, Any], name: str, allowed: tuple[int, ...]) -> int:
    value = _int_field(body, name)  # 47001 for a non-number, like the shop's own calls
    if value is None:
        raise WeChatError(ERR_MP_INVALID, f"参数错误, {name} is required")
    if value not in allowed:
        raise WeChatError(ERR_MP_INVALID, f"参数错误, {name} must be one of {list(allowed)}, got {value}")
    return value


def _parse_shipping_upload(body: dict[str, Any]) -> ShippingUpload:
    """The request of ``upload_shipping_info``, checked as the service checks it (the payment order not yet
    looked up)."""
    order_key = body.get("order_key")
    if not isinstance(order_key, dict):
        raise WeChatError(47001, "data format error: order_key must be an object")
    number_type = _mp_int(order_key, "order_number_type", (1, 2))
    needed = ("mchid", "out_trade_no") if number_type == 1 else ("transaction_id",)
    for name in needed:
        if not isinstance(order_key.get(name), str) or not order_key[name]:
            raise WeChatError(ERR_MP_INVALID, f"参数错误, order_key.{name} is required for {number_type}")
    delivery_mode = _mp_int(body, "delivery_mode", (1, 2))
    logistics_type = _mp_int(body, "logistics_type", (1, 2, 3, 4))
    is_all_delivered = body.get("is_all_delivered")
    if delivery_mode == 2 and not isinstance(is_all_delivered, bool):
        raise WeChatError(ERR_MP_INVALID, "参数错误, is_all_delivered is required for SPLIT_DELIVERY")
    if is_all_delivered is not None and not isinstance(is_all_delivered, bool):
        raise WeChatError(47001, "data format error: is_all_delivered must be a boolean")
    shipping_list = body.get("shipping_list")
    if not isinstance(shipping_list, list) or not all(isinstance(e, dict) for e in shipping_list):
        raise WeChatError(47001, "data format error: shipping_list must be an array of objects")
    if delivery_mode == 1 and len(shipping_list) != 1:
        raise WeChatError(ERR_MP_INVALID, "参数错误, UNIFIED_DELIVERY takes exactly one shipping_list entry")
    if not 1 <= len(shipping_list) <= MAX_PARCELS:
        raise WeChatError(ERR_MP_INVALID, f"参数错误, shipping_list takes 1..{MAX_PARCELS} entries")
    parcels = []
    for n, entry in enumerate(shipping_list):
        where = f"shipping_list[{n}]"
        item_desc = entry.get("item_desc")
        if not isinstance(item_desc, str) or not item_desc.strip():
            raise WeChatError(ERR_MP_INVALID, f"参数错误, {where}.item_desc is required")
        if len(item_desc) > MAX_ITEM_DESC:
            raise WeChatError(ERR_MP_INVALID, f"参数错误, {where}.item_desc over {MAX_ITEM_DESC} characters")
        contact = entry.get("contact") or {}
        if not isinstance(contact, dict):
            raise WeChatError(47001, f"data format error: {where}.contact must be an object")
        parcel = {"item_desc": item_desc, "contact": contact}
        if logistics_type == 1:  # express: the waybill and the carrier code are required
            tracking_no, company = entry.get("tracking_no"), entry.get("express_company")
            if not isinstance(tracking_no, str) or not tracking_no.strip():
                raise WeChatError(ERR_MP_INVALID, f"参数错误, {where}.tracking_no is required for express")
            if company not in DELIVERY_COMPANIES:  # get_delivery_list codes; the shop's list here
                raise WeChatError(ERR_MP_INVALID, f"参数错误, {where}.express_company {company!r} unknown")
            if company == "SF" and not (contact.get("consignor_contact") or contact.get("receiver_contact")):
                # [U] the rule is known, its code and wording are not
                raise WeChatError(ERR_MP_INVALID, f"参数错误, {where}.contact is required for SF")
            parcel |= {"tracking_no": tracking_no.strip(), "express_company": company}
        parcels.append(parcel)
    raw_time = body.get("upload_time")
    try:
        if not isinstance(raw_time, str) or "T" not in raw_time:
            raise ValueError
        upload_time = datetime.fromisoformat(raw_time)
        if upload_time.tzinfo is None:
            raise ValueError
    except ValueError:
        raise WeChatError(47001, "data format error: upload_time must be RFC 3339") from None
    payer = body.get("payer")
    if not isinstance(payer, dict) or not isinstance(payer.get("openid"), str) or not payer["openid"]:
        raise WeChatError(ERR_MP_INVALID, "参数错误, payer.openid is required")
    return ShippingUpload(
        order_key,
        delivery_mode,
        logistics_type,
        is_all_delivered if delivery_mode == 2 else None,
        parcels,
        upload_time,
        payer["openid"],
    )


def add_mini_program_routes(
    app: FastAPI,
    world: World,
    renderer: WeChatChannelsRenderer,
    count: Callable[[str], None],
    error: Callable[[WeChatError], Response],
    shipping: dict[int, ShippingRecord],
    completed_payments: set[str],
    foreign_payments: set[str],
    push_lock: threading.Lock,
) -> None:
    """``upload_shipping_info`` and ``get_order``; ``push_lock`` is the Channels pushes' lock."""

    # ---------------------------------------------------------------- mini-program shipping info
    def payment_state(transaction_id: Any, mchid: Any, trade_no: Any) -> OrderState:
        """The order behind a payment (transaction_id, or this merchant's mchid + trade number)."""
        index = None
        if isinstance(transaction_id, str) and transaction_id:
            index = renderer.index_of_transaction(transaction_id)
        elif mchid == SANDBOX_MCHID and isinstance(trade_no, str):
            index = renderer.index_of(trade_no)
        state = world.state(index, world.now_ts()) if index is not None else None
        if state is None or renderer.paid_ts(state) is None:
            raise WeChatError(ERR_PAYMENT_NOT_FOUND, "支付单不存在")
        if renderer.transaction_id(state.order.seed, state.index) in foreign_payments:
            raise WeChatError(ERR_PAYMENT_NOT_FOUND, "支付单不存在")
        return state

    def payment_order_state(state: OrderState) -> int:
        """1 待发货, 2 已发货, 3 确认收货, 4 交易完成, 5 已退款 ([U] for 3-5 in the contract)."""
        if state.cancelled:
            return MP_ORDER_REFUNDED
        if renderer.transaction_id(state.order.seed, state.index) in completed_payments:
            return MP_ORDER_COMPLETED
        if renderer.status(state) == STATUS_COMPLETED:
            return MP_ORDER_CONFIRMED
        record = shipping.get(state.index)
        return MP_ORDER_SHIPPED if record is not None and record.finished else MP_ORDER_TO_SHIP

    @app.post("/wxa/sec/order/upload_shipping_info")
    async def upload_shipping_info(request: Request) -> Response:
        """Record a payment's shipping info. Each accepted upload replaces the recorded list ([U]: the doc
        says later uploads update the info, with a later upload_time); once the shipping is finished
        (UNIFIED, or SPLIT with is_all_delivered) one more upload is the one re-shipment allowed."""
        try:
            upload = _parse_shipping_upload(await json_body(request))
            key = upload.order_key
            with push_lock:
                by_transaction = key["order_number_type"] == 2
                state = payment_state(
                    key.get("transaction_id") if by_transaction else None,
                    None if by_transaction else key.get("mchid"),
                    None if by_transaction else key.get("out_trade_no"),
                )
                if upload.openid != renderer.payer_openid(state.index, state.order.customer):
                    raise WeChatError(ERR_NOT_PAYER, "该笔支付单不属于 openid 所指定的用户")
                if payment_order_state(state) not in (MP_ORDER_TO_SHIP, MP_ORDER_SHIPPED):
                    raise WeChatError(ERR_NOT_SHIPPABLE, "支付单处于不可发货的状态")
                record = shipping.get(state.index)
                if record is not None and upload.upload_time <= record.upload_time:
                    raise WeChatError(ERR_NOT_UPDATED, "发货信息未更新, upload_time must increase")
                finishes = upload.delivery_mode == 1 or bool(upload.is_all_delivered)
                finish_count = record.finish_count if record is not None else 0
                if record is not None and record.finished:
                    if finish_count >= 2:
                        raise WeChatError(ERR_RESHIPPED, "支付单已使用重新发货机会")
                    finish_count += 1  # the re-shipment
                elif finishes:
                    finish_count = 1
                at = int(upload.upload_time.timestamp())
                before = {
                    e.get("tracking_no"): e["upload_time"] for e in (record.shipping_list if record else [])
                }
                listed = [
                    {**parcel, "upload_time": before.get(parcel.get("tracking_no"), at)}
                    for parcel in upload.shipping_list
                ]
                shipping[state.index] = ShippingRecord(
                    upload.delivery_mode,
                    upload.logistics_type,
                    finishes or (record is not None and record.finished),
                    listed,
                    upload.upload_time,
                    finish_count,
                )
                count("shipping_uploads")
        except WeChatError as err:
            return error(err)
        return ok({})

    @app.post("/wxa/sec/order/get_order")
    async def get_payment_order(request: Request) -> Response:
        """A payment order and its recorded shipping (``shipping`` is absent before the first upload [U])."""
        try:
            body = await json_body(request)
            state = payment_state(
                body.get("transaction_id"), body.get("merchant_id"), body.get("merchant_trade_no")
            )
        except WeChatError as err:
            return error(err)
        rendered = renderer.render(state)
        order: dict[str, Any] = {
            "transaction_id": rendered["order_detail"]["pay_info"]["transaction_id"],
            "merchant_id": SANDBOX_MCHID,
            "merchant_trade_no": rendered["order_id"],
            "description": rendered["order_detail"]["product_infos"][0]["title"]
            if rendered["order_detail"]["product_infos"]
            else "",
            "paid_amount": rendered["order_detail"]["price_info"]["order_price"],
            "openid": renderer.payer_openid(state.index, state.order.customer),  # under the mini program
            "trade_create_time": rendered["create_time"],
            "pay_time": rendered["order_detail"]["pay_info"]["pay_time"],
            "order_state": payment_order_state(state),
            "in_complaint": False,
        }
        record = shipping.get(state.index)
        if record is not None:
            order["shipping"] = {
                "delivery_mode": record.delivery_mode,
                "logistics_type": record.logistics_type,
                "finish_shipping": record.finished,
                "finish_shipping_count": record.finish_count,
                "goods_desc": "; ".join(e["item_desc"] for e in record.shipping_list),  # [U] its content
                "shipping_list": [
                    {k: e[k] for k in ("tracking_no", "express_company", "upload_time") if k in e}
                    for e in record.shipping_list
                ],
            }
        return ok({"order": order})
