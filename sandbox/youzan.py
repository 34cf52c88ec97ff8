"""A Youzan 有赞云 Open API simulator over the shared sandbox world (sources: docs/platform-notes.md, Youzan).

What it reproduces, quirks included:
- ``POST /auth/token`` with JSON ``{client_id, client_secret, authorize_type: "silent", grant_id: <kdt_id>,
  refresh}`` -> ``{"success":true,"code":200,"data":{"access_token","expires": <epoch ms>,"scope",
  "authority_id"},"message":null}``. A self-use app has one live token per shop: ``refresh: false`` (or
  absent) hands it back while it is valid, unchanged, and issues a new one only once it expired;
  ``refresh: true`` issues a new one and the old one is refused from then on (Youzan's pages say at once or
  within the hour; the sandbox takes the stricter). Tokens live 7 days of real time (the connector plans
  with the real clock; ``app.state.token_lifetime`` shortens the ones issued next). Refusals are HTTP 200
  ``{"success":false,"code","data":null,"message"}``: a body that is not JSON 1000, an unknown client_id
  1103 "Client 不存在", a wrong secret 1000 "应用信息错误", an ``authorize_type`` other than silent 1105,
  a shop that granted nothing (or withdrew its grant) 1103 "授权关系不存在". ``stats``: ``token_requests``
  counts every call, ``tokens_issued`` the new tokens.
- Business calls ``POST /api/{method}/{version}?access_token=...`` with a JSON body. The gateway answers
  HTTP 200 ``{"gw_err_resp":{"trace_id","err_msg","err_code"}}``: a path without a version 4001, an unknown
  method or version 4005 (both before the token is looked at), a content type it does not take 4007, no
  token in the query string (a header or a body field does not count) 4201 "非法的请求凭证", a token it
  never issued or that was replaced 4203 "Token 不存在", an expired one 4202 "请求凭证过期", throttling
  ``throttle_code`` (4101 "请求太频繁" by default). ``POST /_sandbox/youzan/expire_tokens`` expires every
  issued token, ``/_sandbox/youzan/revoke_tokens`` forgets them.
- The >= 4.0 envelope ``{"success","code","message","data","trace_id"}``; business errors are HTTP 200
  with ``success: false`` *and* a ``data`` holding an empty list: a client reading only the list is fooled.
  With ``app.state.legacy_envelope`` the 3.0.0 methods answer in the 3.x envelope instead,
  ``{"response": {...}}`` and ``{"error_response": {"code", "msg"}}``.
- ``youzan.trades.sold.get`` 4.0.0-4.0.4: ``start_update``/``end_update`` (and ``start_created``/
  ``end_created``) as ``"yyyy-MM-dd HH:mm:ss"`` Beijing time, both bounds inclusive; an incomplete pair is
  ignored, as documented; start after end, a span over 3 months or an end more than 7 days ahead are errors.
  ``page_no`` from 1 up to 100, ``page_size`` default 20 and at most 100
  (over: code 5000 "每页最多显示100条数据").
  Results sorted by update time, newest first. ``app.state.list_shape`` says how the answer states its
  paging: ``total_results`` (the whole window's count, 4.0.0's model), ``paginator`` (``{page, page_size,
  total_count}``) or ``has_next`` (``paginator: {page, page_size, has_next}``, no count).
- ``youzan.trade.get`` 4.0.0: ``{"tid"}`` -> ``data`` = ``{full_order_info, refund_order, delivery_order,
  order_promotion}``. Each item of the sold.get list has the same shape (refunds and deliveries included),
  so one mapping reads both.
- Throttling: ``qps_limit`` (per token, off by default) and ``Faults.rate_limit_storm`` answer the gateway's
  ``throttle_code``; ``server_error_rate`` gives 500/502/503 (HTML from the gateway),
  ``truncated_body_rate`` cut bodies, ``malformed_order_rate`` a line ``num`` of "2件".
  ``token_expiry_rate`` expires every issued token before answering (4202; a token's first call is spared);
  ``credentials_revoked`` is a withdrawn grant: ``/auth/token`` answers 1103 "授权关系不存在" and every call
  4201; a duplicated page is the page it served last for the ``page_no`` asked for now.

How the world becomes Youzan:
- Money: the world's Decimal amounts rendered as CNY yuan strings (a simulator, not an exchange rate);
  ``deduction_pay``/``deduction_real_pay`` are integer fen. The world's sales tax is not rendered: Chinese
  retail prices include VAT and Youzan has no tax field, so ``pay_info.payment`` = goods - discounts + post.
- Times: world UTC seconds as naive GMT+8 strings; "" when unset.
- Lines: ``item_id``/``sku_id`` are the world's Youzan listing ids, ``outer_sku_id`` the SKU the merchant
  typed on Youzan (sometimes ""). Every variant is rendered with its own ``sku_id``; real single-spec
  items carry ``sku_id`` 0, which the mapping also handles.
- Payment: Youzan captures at checkout, so the world's "authorized" orders are paid at creation here.
- Refunds: one ``refund_order`` per world refund of a paid order, ``refund_state`` 60 (success), ``oids`` of
  the refunded lines and ``refund_fee`` = their apportioned payment (+ shipping for a cancellation).
  Refunds of unpaid orders move no money and are not rendered (the order is just closed).
- Deliveries: Youzan ships whole sub-orders. A line appears in a ``delivery_order`` (``express_state`` 1) once
  all its units are out, in the package that completed it; earlier partial packages of the same lines are
  extra ``dists``. Hub-pushed shipments are ``express_type`` 1 (API), the world's own ones 0 (manual).

What the hub can push:
- ``youzan.logistics.express.get`` 3.0.0 -> ``data.allExpress[{id, name, display}]``: the carriers
  ``out_stype`` takes. The ids below are the sandbox's [U]; a connector must read them from this call,
  never hard-code them.
- ``youzan.logistics.online.confirm`` 3.0.0 ``{tid, out_stype, out_sid, oids: "oid1,oid2", is_no_express}``
  -> ``data.is_success``. It ships whole sub-orders (every unit still open on each oid; no oids: every open
  sub-order) and records one package in the world. The whole call is refused when any named oid cannot
  ship: ``105000016`` order not found, ``102570007`` a sub-order already shipped, ``102570020`` nothing
  shippable (unpaid, closed or cancelled trade, a refunded or foreign oid), ``105000003`` a waybill that is
  not 6-32 letters, digits or dashes [U rule], ``UNKNOWN_EXPRESS_CODE`` an ``out_stype`` not in the list [U].
- ``youzan.logistics.online.update`` 3.0.0 ``{tid, trade_express_modify: [{dist_id, express_id,
  express_no}]}`` (a list, or the JSON string of one as the Java SDK sends it) re-labels a shipped
  package [C: SDK names and typings; errors U], only once the whole order shipped (status
  WAIT_BUYER_CONFIRM_GOODS [S]; else ``NOT_ALL_SHIPPED``). The world's fulfilment keeps its original
  tracking; the sandbox overrides what it renders, bumps the trade's update time and records each change
  in ``app.state.tracking_updates`` (``stats`` ``tracking_updates``).
- ``youzan.item.quantity.update`` 3.0.0 ``{item_id, sku_id (omit for single-spec items), quantity, type}``:
  type 0 sets the quantity (default), 1 adds to it; recorded with ``world.overlay.record_stock_set`` at
  location 0 (Youzan has no locations here). There is no compare-and-set. ``youzan.item.get`` 3.0.0
  ``{item_id}`` -> ``data.item{item_id, title, item_no, quantity, skus[{sku_id, item_no, quantity,
  properties_name_json}]}`` reads stock back (``skus`` is empty for a single-spec item) [U: response shape].
- ``POST /_sandbox/youzan/fail_next {"method", "count", "after_commit"}``: the next ``count`` calls of
  ``method`` answer a gateway 502, before acting or (``after_commit``) after acting, as a lost answer would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import RequestStats, add_admin_routes, hold_back_answers, json_response
from sandbox.faults import Faults, ServedPages
from sandbox.world import ZERO, Event, Fulfillment, OrderLine, OrderQuery, OrderState, Variant, World, money

SANDBOX_LOGIN = "yz_sandbox_client_0001"  # the client_id (public); the client secret is the checked token
SANDBOX_KDT_ID = 91_234_567  # the shop (kdt_id) the sandbox app is authorised for
SANDBOX_EXTRA = {"kdt_id": str(SANDBOX_KDT_ID)}  # what the channel's Airflow connection extra must hold
TOKEN_LIFETIME = timedelta(days=7)
DEFAULT_THROTTLE_CODE = 4101  # "请求太频繁", Youzan's gateway code table [S]; callers may pick another
CHINA = timezone(timedelta(hours=8))
TIME_PATTERN = "%Y-%m-%d %H:%M:%S"
_TIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
MAX_PAGE_NO = 100
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_SPAN_DAYS = 92  # "3 months"; the calendar check below is the real rule, this only bounds the work
SOLD_GET_VERSIONS = frozenset({"4.0.0", "4.0.1", "4.0.2", "4.0.3", "4.0.4"})
TRADE_GET_VERSIONS = frozenset({"4.0.0", "4.0.2"})

# The gateway's refusals, ``{"gw_err_resp": {"trace_id", "err_msg", "err_code"}}`` with HTTP 200: the
# messages of 4001, 4005, 4007, 4201 and 4203 as a public probe of open.youzanyun.com saw them [C: probe];
# 4101, 4202 from Youzan's gateway code table [S].
BAD_ADDRESS = (4001, "非法请求地址")
NO_SUCH_API = (4005, "非法的API")
BAD_CONTENT_TYPE = 4007  # "非法的请求姿势，httpMethod:POST, contentType:<type>"
ILLEGAL_CREDENTIAL = (4201, "非法的请求凭证")  # no token in the query; or the shop withdrew the grant [S]
TOKEN_EXPIRED = (4202, "请求凭证过期")
TOKEN_UNKNOWN = (4203, "Token 不存在")  # never issued, or replaced by a newer one [U: which code that gets]
LIST_SHAPES = ("total_results", "paginator", "has_next")
STATUS_TEXT = {
    "WAIT_BUYER_PAY": "待付款",
    "WAIT_SELLER_SEND_GOODS": "待发货",
    "WAIT_BUYER_CONFIRM_GOODS": "已发货",
    "TRADE_SUCCESS": "已完成",
    "TRADE_CLOSED": "已关闭",
}
# youzan.logistics.express.get: (id, name). [U] the real list has hundreds; these ids are the sandbox's own.
EXPRESS_COMPANIES: tuple[tuple[int, str], ...] = (
    (1, "申通快递"),
    (2, "圆通速递"),
    (3, "中通快递"),
    (4, "韵达快递"),
    (6, "百世快递"),
    (7, "顺丰速运"),
    (8, "邮政快递包裹"),
    (9, "EMS"),
    (11, "京东快递"),
    (12, "德邦快递"),
    (44, "UPS"),
    (45, "USPS"),
    (46, "FedEx"),
)
EXPRESS_NAMES = dict(EXPRESS_COMPANIES)
EXPRESS_IDS = {name: express_id for express_id, name in EXPRESS_COMPANIES}
OID_BASE = 1_507_387_350_000_000_000
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


class BusinessError(Exception):
    """A ``success: false`` answer of the >= 4.0 envelope."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def china_time(ts: int | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, CHINA).strftime(TIME_PATTERN)


def parse_china_time(name: str, value: Any) -> float:
    if not isinstance(value, str) or not _TIME_TEXT.fullmatch(value):
        raise BusinessError(5000, f"{name}格式错误，应为yyyy-MM-dd HH:mm:ss")  # [U] message
    try:
        return datetime.strptime(value, TIME_PATTERN).replace(tzinfo=CHINA).timestamp()
    except ValueError:
        raise BusinessError(5000, f"{name}格式错误，应为yyyy-MM-dd HH:mm:ss") from None


def _yuan(value: Decimal) -> str:
    return f"{value:.2f}"


def _digits(phone: str | None) -> str:
    return "".join(ch for ch in phone or "" if ch.isdigit())


def _hash(*parts: object, length: int = 16) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


def _months_later(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


class YouzanRenderer:
    """World order states -> Youzan ``full_order_info`` items; tids <-> world indices."""

    def __init__(self, world: World) -> None:
        self.world = world
        # (order index, package seq) -> (carrier name, waybill) set through youzan.logistics.online.update
        self.tracking_overrides: dict[tuple[int, int], tuple[str, str]] = {}

    # ---------------------------------------------------------------- ids
    def tid(self, index: int) -> str:
        created = datetime.fromtimestamp(self.world.created_ts(index), CHINA).strftime("%Y%m%d%H%M%S")
        return f"E{created}{index:09d}"

    def index_of(self, tid: str) -> int | None:
        if not re.fullmatch(r"E\d{23}", tid):
            return None
        index = int(tid[-9:])
        try:
            return index if self.tid(index) == tid else None
        except (ValueError, OverflowError, OSError):  # an index whose creation lies past year 9999
            return None

    def oid(self, index: int, line: int) -> str:
        return str(OID_BASE + index * 16 + line)

    def line_of(self, index: int, oid: str) -> int | None:
        """The world line index of sub-order ``oid`` of order ``index``; None when it is not one."""
        if not oid.isdigit():
            return None
        line = int(oid) - OID_BASE - index * 16
        return line if 0 <= line < len(self.world.get(index).lines) else None

    @staticmethod
    def dist_id(index: int, package: Fulfillment) -> str:
        return f"{datetime.fromtimestamp(package.at, CHINA):%Y%m%d%H%M%S}{index % 10**6:06d}{package.seq:04d}"

    def express_info(self, index: int, package: Fulfillment) -> dict[str, Any]:
        company, number = self.tracking_overrides.get(
            (index, package.seq), (package.tracking_company, package.tracking_number)
        )
        return {"express_id": EXPRESS_IDS.get(company, 0), "express_no": number}

    # ---------------------------------------------------------------- pieces
    @staticmethod
    def paid_ts(state: OrderState) -> int | None:
        """When Youzan took the money: at checkout, or when a pending (manual) payment arrived."""
        if state.order.initial_financial_status in ("paid", "authorized"):
            return state.order.created_ts
        return state.paid_ts

    @staticmethod
    def line_payment(line: OrderLine) -> Decimal:
        return line.line_total - line.discount

    def _refunds(self, state: OrderState) -> list[dict[str, Any]]:
        order, index = state.order, state.order.index
        paid_ts = self.paid_ts(state)
        rendered = []
        for refund in state.refunds:
            if paid_ts is None or paid_ts > refund.at:
                continue  # nothing was paid: the order just closes, no money moves
            fee = refund.shipping
            oids: list[dict[str, str]] = []
            for refund_line in refund.lines:
                line = order.lines[refund_line.line_index]
                fee += money(self.line_payment(line) * refund_line.quantity / line.quantity)
                oid = self.oid(index, line.index)
                if {"oid": oid} not in oids:
                    oids.append({"oid": oid})
            created = datetime.fromtimestamp(refund.at, CHINA).strftime("%Y%m%d%H%M%S")
            rendered.append(
                {
                    "refund_id": f"{created}{index % 10**6:06d}{refund.seq:04d}",
                    # 1 buyer applied, 2 seller refunded (cancellations, out of stock), 3 one-click
                    "refund_type": 1 if refund.note == "Customer return" else 2,
                    "refund_fee": _yuan(fee),
                    "refund_state": 60,
                    "oids": oids,
                }
            )
        return rendered

    def _deliveries(self, state: OrderState) -> tuple[list[dict[str, Any]], int | None]:
        """Delivery orders (lines listed once all their units shipped) and the time the last one left."""
        order, index = state.order, state.order.index
        complete = {
            line.index
            for line in order.lines
            if state.shipped[line.index] > 0 and state.fulfillable(line.index) == 0
        }
        cumulative = [0] * len(order.lines)
        groups: list[tuple[Fulfillment, list[int]]] = []
        for fulfillment in state.fulfillments:
            finished = []
            for line_index, qty in fulfillment.lines:
                cumulative[line_index] += qty
                if line_index in complete and cumulative[line_index] == state.shipped[line_index]:
                    finished.append(line_index)
            if finished:
                groups.append((fulfillment, finished))
        deliveries = []
        for fulfillment, lines in groups:
            packages = [
                f
                for f in state.fulfillments
                if f.at <= fulfillment.at and any(i in lines for i, _ in f.lines)
            ]
            deliveries.append(
                {
                    "pk_id": 1_507_387_369_000_000_000 + index * 16 + fulfillment.seq,
                    "express_state": 1,
                    "express_type": 1 if fulfillment.pushed else 0,
                    "oids": [{"oid": self.oid(index, i)} for i in lines],
                    "dists": [
                        {
                            "dist_id": self.dist_id(index, p),
                            "create_time": china_time(p.at),
                            "express_info": self.express_info(index, p),
                        }
                        for p in packages
                    ],
                }
            )
        last = max((f.at for f, _ in groups), default=None)
        return deliveries, last

    def _buyer(self, state: OrderState) -> dict[str, Any]:
        order = state.order
        customer = order.customer
        if customer is None:  # every Youzan buyer has an open id, even without a member record
            key = f"guest:{order.index}"
            return {
                "yz_open_id": _hash(self.world.seed, key, length=32),
                "buyer_phone": "",
                "outer_user_id": "",
                "fans_type": 0,
                "fans_id": 0,
                "fans_nickname": "",
                "buyer_id": 0,
            }
        key = f"customer:{customer.index}"
        return {
            "yz_open_id": _hash(self.world.seed, key, length=32),
            "buyer_phone": _digits(customer.phone),
            "outer_user_id": "o" + _hash(self.world.seed, key, "openid", length=27),
            "fans_type": 1,
            "fans_id": 4_851_000_000 + customer.index,
            "fans_nickname": customer.name,
            "buyer_id": 695_000_000 + customer.index,
        }

    # ---------------------------------------------------------------- the order
    def render(self, state: OrderState, *, malformed: bool = False) -> dict[str, Any]:
        """One item of ``full_order_info_list`` (the same shape as ``youzan.trade.get``'s ``data``)."""
        order, index = state.order, state.order.index
        paid_ts = self.paid_ts(state)
        refunds = self._refunds(state)
        deliveries, consign_ts = self._deliveries(state)

        orders = []
        for line in order.lines:
            listing = line.variant.listing("youzan")
            orders.append(
                {
                    "oid": self.oid(index, line.index),
                    "item_id": listing.product_id,
                    "sku_id": listing.variant_id,
                    "outer_item_id": line.variant.product_key,
                    "outer_sku_id": listing.sku,
                    "sku_unique_code": "",
                    "sku_properties_name": json.dumps(
                        [{"k": "规格", "v": line.variant.variant_title}]
                        if line.variant.variant_title
                        else [],
                        ensure_ascii=False,
                    ),
                    "title": line.variant.product_title,
                    "num": line.quantity,
                    "price": _yuan(line.unit_price),
                    "discount_price": _yuan(line.unit_price),
                    "total_fee": _yuan(line.line_total),
                    "payment": _yuan(self.line_payment(line)),
                    "item_type": 0,
                    "is_present": False,
                    "buyer_messages": "",
                    "pic_path": f"https://img.yzcdn.cn/upload_files/sandbox/{line.variant.product_key}.jpg",
                    "goods_url": f"https://h5.youzan.com/v2/showcase/goods?alias={_hash(listing.product_id)}",
                    "alias": _hash(listing.product_id, length=13),
                    "points_price": "0",
                    "fenxiao_price": "0.00",
                    "fenxiao_payment": "0.00",
                    "is_pre_sale": "null",
                    "pre_sale_type": "null",
                }
            )
        if malformed and orders:
            orders[0]["num"] = f"{orders[0]['num']}件"  # the kind of bug the connector schema must catch

        goods_total = sum((line.line_total for line in order.lines), ZERO)
        paid_goods = sum((self.line_payment(line) for line in order.lines), ZERO)
        payment = paid_goods + order.shipping.price
        refunded = sum((Decimal(r["refund_fee"]) for r in refunds), ZERO)

        if state.cancelled:
            status = "TRADE_CLOSED"
        elif paid_ts is None:
            status = "WAIT_BUYER_PAY"
        elif refunded >= payment:
            status = "TRADE_CLOSED"
        elif state.fulfillment_status == "fulfilled":
            status = "TRADE_SUCCESS" if state.closed else "WAIT_BUYER_CONFIRM_GOODS"
        else:
            status = "WAIT_SELLER_SEND_GOODS"
        if status != "TRADE_CLOSED":
            close_type = 0
        elif paid_ts is not None:
            close_type = 2  # closed by refund
        else:
            close_type = {"customer": 4, "declined": 1}.get(state.cancel_reason or "", 5)
        refund_state = 0 if refunded == 0 else (12 if refunded >= payment else 2)
        all_shipped = state.fulfillment_status == "fulfilled"
        address = order.shipping_address
        customer = order.customer
        discount = order.discount

        order_info = {
            "tid": self.tid(index),
            "created": china_time(order.created_ts),
            "update_time": china_time(state.updated_ts),
            "pay_time": china_time(paid_ts),
            "consign_time": china_time(consign_ts) if all_shipped else "",
            "confirm_time": china_time(state.closed_ts) if status == "TRADE_SUCCESS" else "",
            "success_time": china_time(state.closed_ts) if status == "TRADE_SUCCESS" else "",
            "expired_time": china_time(order.created_ts + 3600),
            "status": status,
            "status_str": STATUS_TEXT[status],
            "type": 0,
            "pay_type": 10 if paid_ts is not None else 0,
            "pay_type_str": "WEIXIN_DAIXIAO" if paid_ts is not None else "",
            "refund_state": refund_state,
            "close_type": close_type,
            "express_type": 0,
            "team_type": 0,
            "activity_type": 1,
            "is_retail_order": False,
            "offline_id": 57_694_718,
            "order_tags": {
                "is_virtual": False,
                "is_payed": paid_ts is not None,
                "is_refund": bool(refunds),
                "is_feedback": bool(refunds),
                "is_secured_transactions": True,
                "is_postage_free": order.shipping.price == 0,
                "is_member": customer is not None,
                "is_multi_store": False,
            },
            "order_extra": {
                "buyer_name": customer.name if customer else "",
                "is_from_cart": "true",
                "is_member": "true" if customer else "false",
                "is_points_order": "0",
            },
        }
        full_order_info = {
            "order_info": order_info,
            "source_info": {
                "is_offline_order": order.source_name == "pos",
                "book_key": _hash(self.world.seed, "book", index, length=32),
                "biz_source": "",
                "source": {"platform": "wx", "wx_entrance": "direct_buy"},
                "order_mark": None,
            },
            "buyer_info": self._buyer(state),
            "address_info": {
                "receiver_name": address.name,
                "receiver_tel": _digits(address.phone),
                "delivery_province": address.province,
                "delivery_city": address.city,
                "delivery_district": "",
                "delivery_address": " ".join(p for p in (address.address1, address.address2) if p),
                "delivery_postal_code": address.zip,
                "address_extra": json.dumps(
                    {"areaCode": address.zip, "lon": address.longitude, "lat": address.latitude}
                ),
                "self_fetch_info": "",
                "delivery_start_time": None,
                "delivery_end_time": None,
            },
            "remark_info": {"buyer_message": order.note or "", "trade_memo": "", "star": 0},
            "pay_info": {
                "total_fee": _yuan(goods_total),
                "post_fee": _yuan(order.shipping.price),
                "payment": _yuan(payment),
                "deduction_pay": 0,  # fen
                "deduction_real_pay": 0,  # fen
                "transaction": [f"{index:018d}"[-18:]] if paid_ts is not None else [],
                "outer_transactions": [f"4200000{_hash(self.world.seed, 'wx', index, length=21)}"]
                if paid_ts is not None
                else [],
                "phase_payments": [],
            },
            "orders": orders,
        }
        promotion: dict[str, Any] = {
            "item": [],
            "order": [],
            "item_discount_fee": "0.00",
            "order_discount_fee": _yuan(discount.amount if discount else ZERO),
            "adjust_fee": "0.00",
        }
        if discount is not None:
            promotion["order"].append(
                {
                    "promotion_type": "coupon",
                    "promotion_title": discount.code,
                    "promotion_type_name": "优惠券",
                    "promotion_id": 4_295_457_000 + len(discount.code),
                    "coupon_id": discount.code,
                    "discount_fee": _yuan(discount.amount),
                }
            )
        return {
            "full_order_info": full_order_info,
            "refund_order": refunds,
            "delivery_order": deliveries,
            "order_promotion": promotion,
        }


class QpsLimiter:
    """At most ``limit`` calls per key in any one-second window (Youzan limits QPS per capability pack)."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self._calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        if not self.limit:
            return True
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._calls.get(key, []) if now - t < 1.0]
            allowed = len(recent) < self.limit
            if allowed:
                recent.append(now)
            self._calls[key] = recent
            return allowed


def _gateway_page(status: int) -> Response:
    """What Youzan's Tengine gateway answers when the backend fails: an HTML page, not JSON."""
    title = "502 Bad Gateway" if status == 502 else "503 Service Temporarily Unavailable"
    page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
    return Response(page + "<hr><center>Tengine</center></body></html>", status, media_type="text/html")


def _trace_id() -> str:
    return f"yz7-0a{uuid.uuid4().hex[:10]}-{int(time.time() * 1000)}"


def _gateway_error(code: int, message: str) -> Response:
    return json_response({"gw_err_resp": {"trace_id": _trace_id(), "err_msg": message, "err_code": code}})


def _token_refusal(code: int, message: str) -> Response:
    """/auth/token's refusal, ``{"success": false, "code", "data": null, "message"}``, HTTP 200 [C: probe]."""
    return json_response({"success": False, "code": code, "data": None, "message": message})


def _envelope(data: Any) -> dict[str, Any]:
    return {
        "success": True,
        "code": 200,
        "message": "successful",
        "data": data,
        "trace_id": _trace_id(),
    }


def _failure(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {
        "success": False,
        "code": code,
        "message": message,
        "data": data,
        "trace_id": _trace_id(),
    }


def _int_param(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BusinessError(5000, f"{name}必须为整数")  # [U] message
    return value


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    throttle_code: int = DEFAULT_THROTTLE_CODE,
    qps_limit: float | None = None,
    kdt_id: int = SANDBOX_KDT_ID,
    client_id: str = SANDBOX_LOGIN,
    list_shape: str = "total_results",
    legacy_envelope: bool = False,
) -> FastAPI:
    """The Youzan simulator over ``world``; ``access_token`` is the client secret it checks.

    ``list_shape`` (``LIST_SHAPES``) and ``legacy_envelope`` choose how sold.get states its paging and how
    the 3.0.0 methods wrap their answers; both can be changed at runtime on ``app.state``."""
    if not access_token:
        raise ValueError("access_token (the client secret) must not be empty")
    if list_shape not in LIST_SHAPES:
        raise ValueError(f"list_shape must be one of {LIST_SHAPES}, got {list_shape!r}")
    renderer = YouzanRenderer(world)
    limiter = QpsLimiter(qps_limit)
    # Issued tokens -> expiry (real epoch seconds). An expired one stays (it answers 4202); a replaced or
    # revoked one is forgotten (4203, as a token never issued). ``current`` is the shop's one live token.
    tokens: dict[str, float] = {}
    current: dict[str, str] = {}  # "token" -> the token /auth/token hands back while it is valid
    presented: set[str] = set()  # tokens that came with a call already (an expiry spares a first call)
    tokens_lock = threading.Lock()
    stats = RequestStats(
        "api_requests",
        "token_requests",
        "tokens_issued",
        "throttled",
        "unauthorized",
        "injected_errors",
        "shipments",
        "tracking_updates",
        "stock_sets",
    )
    fail_next: dict[str, tuple[int, bool]] = {}  # method -> (calls left to fail, after acting)
    fail_lock = threading.Lock()
    calls: dict[str, int] = {}  # method -> calls that reached the method (tests count pushes)
    tracking_updates: list[dict[str, Any]] = []  # every package re-labelled by online.update, in order

    app = FastAPI(title="ChannelHub Youzan sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer
    app.state.tokens = tokens
    app.state.limiter = limiter  # tests and humans may change ``limit`` at runtime
    app.state.throttle_code = throttle_code
    app.state.token_lifetime = TOKEN_LIFETIME.total_seconds()  # of tokens issued from now on
    app.state.list_shape = list_shape
    app.state.legacy_envelope = legacy_envelope
    app.state.fail_next = fail_next
    app.state.calls = calls
    app.state.tracking_updates = tracking_updates
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)

    def take_failure(method: str) -> bool | None:
        """None: answer normally; False: fail before acting; True: fail after acting."""
        with fail_lock:
            left, after_commit = fail_next.get(method, (0, False))
            if left <= 0:
                return None
            fail_next[method] = (left - 1, after_commit)
            return after_commit

    def revoke_tokens() -> int:
        """Forget every issued token (calls with one answer 4203), as a reset secret would."""
        with tokens_lock:
            count = len(tokens)
            tokens.clear()
            current.clear()
        return count

    def expire_tokens() -> int:
        """Every issued token reaches its expiry now (calls with one answer 4202)."""
        with tokens_lock:
            now = time.time()
            live = [token for token, expiry in tokens.items() if expiry > now]
            for token in live:
                tokens[token] = now
        return len(live)

    app.state.revoke_tokens = revoke_tokens
    app.state.expire_tokens = expire_tokens

    def issue_or_reuse(refresh: bool) -> tuple[str, float]:
        """What /auth/token answers a self-use app [S: doc]: the live token while it is valid, unless
        ``refresh`` asks for a new one; a new token replaces the old at once (Youzan's pages say at once
        or an hour later: the sandbox takes the stricter)."""
        with tokens_lock:
            now = time.time()
            live = current.get("token")
            if live is not None and tokens.get(live, 0.0) > now and not refresh:
                return live, tokens[live]
            if live is not None and tokens.get(live, 0.0) > now:
                del tokens[live]  # replaced: refused from now on
            token = secrets.token_hex(16)
            tokens[token] = now + app.state.token_lifetime
            current["token"] = token
        stats.count("tokens_issued")
        return token, tokens[token]

    def presented_before(token: str) -> bool:
        with tokens_lock:
            seen = token in presented
            presented.add(token)
        return seen

    def token_refusal(token: str) -> tuple[int, str] | None:
        """Why the gateway refuses ``token`` (code, message), or None."""
        if not token:
            return ILLEGAL_CREDENTIAL
        with tokens_lock:
            expiry = tokens.get(token)
        if expiry is None:
            return TOKEN_UNKNOWN
        return TOKEN_EXPIRED if time.time() >= expiry else None

    @app.middleware("http")
    async def youzan_gateway(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if not request.url.path.startswith(("/api/", "/auth/")):
            return await call_next(request)
        stats.count("api_requests")
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if request.url.path.startswith("/api/"):
            # Address, API and content type are checked before the token [C: probe].
            parts = request.url.path.split("/")
            if len(parts) != 4 or not parts[2] or not parts[3]:
                return _gateway_error(*BAD_ADDRESS)
            known = methods.get(parts[2])
            if known is None or parts[3] not in known[0]:
                return _gateway_error(*NO_SUCH_API)
            content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
            if content_type not in (
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                return _gateway_error(
                    BAD_CONTENT_TYPE,
                    f"非法的请求姿势，httpMethod:{request.method}, contentType:{content_type}",
                )
            token = request.query_params.get("access_token", "")
            if (
                not faults.credentials_revoked
                and presented_before(token)
                and faults.roll(faults.token_expiry_rate)
            ):
                expire_tokens()
            # A withdrawn grant refuses every call as an illegal credential [S: gateway code table].
            refusal = ILLEGAL_CREDENTIAL if faults.credentials_revoked else token_refusal(token)
            if refusal is not None:
                stats.count("unauthorized")
                return _gateway_error(*refusal)
            if faults.roll(faults.rate_limit_storm) or not limiter.allow(_hash(token)):
                stats.count("throttled")
                return _gateway_error(app.state.throttle_code, "请求太频繁")
        if faults.roll(faults.server_error_rate):
            stats.count("injected_errors")
            status = faults.choose((500, 502, 503))
            if status == 500:
                return json_response(_failure(500, "系统错误"), 500)
            return _gateway_page(status)
        method = request.url.path.split("/")[2] if request.url.path.startswith("/api/") else ""
        failure = take_failure(method) if method else None
        if failure is False:
            stats.count("injected_errors")
            return _gateway_page(502)
        response = await call_next(request)
        if failure is True:  # the platform acted, the answer was lost on the way back
            stats.count("injected_errors")
            return _gateway_page(502)
        if response.status_code == 200 and faults.roll(faults.truncated_body_rate):
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            kept = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            return Response(body[: max(1, len(body) // 2)], 200, headers=kept)
        return response

    hold_back_answers(app, faults, ("/api/", "/auth/"))

    async def json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @app.post("/auth/token")
    async def issue_token(request: Request) -> Response:
        stats.count("token_requests")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/json":  # [C: probe, once]: the token endpoint takes JSON only
            return _token_refusal(
                1000,
                f"Content type '{content_type};charset=UTF-8' not supported,"
                "Please use 'application/json;charset=UTF-8'",
            )
        body = await json_body(request)
        if body is None:
            return _token_refusal(1000, "请求参数格式错误")  # [U] message
        # Codes and messages [S: doc's token error table], 1103 "Client 不存在" [C: probe].
        if body.get("client_id") != client_id:
            stats.count("unauthorized")
            return _token_refusal(1103, "Client 不存在")
        if body.get("authorize_type") != "silent":
            # Tool apps use authorization_code / refresh_token; this sandbox is a self-use (自用型) app.
            return _token_refusal(1105, "不支持的应用类型")
        secret = str(body.get("client_secret", ""))
        if not hmac.compare_digest(secret.encode(), access_token.encode()):
            stats.count("unauthorized")
            return _token_refusal(1000, "应用信息错误")
        if faults.credentials_revoked or str(body.get("grant_id", "")) != str(kdt_id):
            stats.count("unauthorized")
            return _token_refusal(1103, "授权关系不存在")  # the shop never granted, or withdrew the grant
        token, expires = issue_or_reuse(body.get("refresh") is True)
        data = {
            "access_token": token,
            "expires": int(expires * 1000),
            "scope": "trade item logistics",
            "authority_id": str(kdt_id),
        }
        return json_response({"success": True, "code": 200, "data": data, "message": None})

    def sold_get(body: dict[str, Any]) -> dict[str, Any]:
        faults.step_clock(world.clock)
        page_no = _int_param(body, "page_no", 1)
        page_size = _int_param(body, "page_size", DEFAULT_PAGE_SIZE)
        if page_size > MAX_PAGE_SIZE:
            raise BusinessError(5000, "每页最多显示100条数据")
        if page_size < 1:
            raise BusinessError(5000, "page_size必须大于0")  # [U]
        if page_no < 1 or page_no > MAX_PAGE_NO:
            raise BusinessError(5000, "page_no最大为100")  # [U] message
        # A lagging cache: the page it served last for this query, for the page number asked for now.
        listing = ServedPages.key({k: v for k, v in body.items() if k != "page_no"})
        if (replayed := served.replay(listing, page_no, first=page_no == 1)) is not None:
            return replayed
        now_ts = world.now_ts()
        bounds: dict[str, tuple[float, float]] = {}
        for kind in ("update", "created"):
            start, end = body.get(f"start_{kind}"), body.get(f"end_{kind}")
            if start in (None, "") or end in (None, ""):
                continue  # an incomplete pair is ignored, as Youzan documents
            low, high = parse_china_time(f"start_{kind}", start), parse_china_time(f"end_{kind}", end)
            if low > high:
                raise BusinessError(5000, "开始时间不能大于结束时间")
            low_dt = datetime.fromtimestamp(low, UTC)
            if datetime.fromtimestamp(high, UTC) > _months_later(low_dt, 3):
                raise BusinessError(5000, "查询时间跨度不能超过3个月")  # [U] message
            if high > now_ts + 7 * 86400:
                raise BusinessError(106000003, "结束时间不能超过当前时间7天")  # [S]
            bounds[kind] = (low, high)
        if not bounds:
            # No usable window: Youzan then lists recent orders; bound the work to the last 3 months.
            bounds["update"] = (now_ts - MAX_SPAN_DAYS * 86400, now_ts)
        updated = bounds.get("update")
        created = bounds.get("created")
        query = OrderQuery(
            updated_min=updated[0] if updated else None,
            updated_max=updated[1] if updated else None,
            created_min=created[0] if created else None,
            created_max=created[1] if created else None,
        )
        status = body.get("status")
        tid = body.get("tid")
        matches: list[tuple[int, int]] = []
        for index in world.scan(query, now_ts):
            if tid and renderer.tid(index) != tid:
                continue
            updated_ts = world.timeline(index).updated_ts_at(now_ts)
            if updated_ts is not None:
                matches.append((updated_ts, index))
        matches.sort(reverse=True)  # newest update first
        if status:
            matches = [m for m in matches if _status_of(m[1]) == status]
        chosen = matches[(page_no - 1) * page_size : page_no * page_size]
        items = []
        for _, index in faults.shuffled(chosen):
            state = world.state(index, now_ts)
            if state is not None:
                items.append(renderer.render(state, malformed=faults.order_is_malformed(index)))
        answer = list_answer(items, len(matches), page_no, page_size)
        served.remember(listing, page_no, answer)
        return answer

    def list_answer(items: list[Any], total: int, page_no: int, page_size: int) -> dict[str, Any]:
        """sold.get's ``data`` in the shape ``app.state.list_shape`` names: 4.0.0's ``total_results``
        [C: SDK model], or a ``paginator`` with a total or only ``has_next`` (4.0.4, [U]: both are seen in
        client code)."""
        shape = app.state.list_shape
        if shape == "total_results":
            return {"total_results": total, "full_order_info_list": items}
        paginator: dict[str, Any] = {"page": page_no, "page_size": page_size}
        if shape == "paginator":
            paginator["total_count"] = total
        elif shape == "has_next":
            paginator["has_next"] = page_no * page_size < total
        else:
            raise ValueError(f"list_shape must be one of {LIST_SHAPES}, got {shape!r}")
        return {"full_order_info_list": items, "paginator": paginator}

    def _status_of(index: int) -> str:
        state = world.state(index, world.now_ts())
        return "" if state is None else renderer.render(state)["full_order_info"]["order_info"]["status"]

    def trade_get(body: dict[str, Any]) -> dict[str, Any]:
        tid = body.get("tid")
        index = renderer.index_of(tid) if isinstance(tid, str) else None
        state = world.state(index, world.now_ts()) if index is not None else None
        if state is None:
            raise BusinessError(106100110, "非法的订单号")  # [S] 106100110 illegal tid
        return renderer.render(state, malformed=faults.order_is_malformed(index))

    # ------------------------------------------------------------------ shipments
    def order_for_push(body: dict[str, Any]) -> tuple[int, OrderState]:
        tid = body.get("tid")
        index = renderer.index_of(tid) if isinstance(tid, str) else None
        state = world.state(index, world.now_ts()) if index is not None else None
        if index is None or state is None:
            raise BusinessError(ORDER_NOT_FOUND, "订单不存在")  # [U] message
        return index, state

    def express_company(value: Any, name: str) -> str:
        express_id = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.strip().isdigit():
            express_id = int(value)
        if express_id not in EXPRESS_NAMES:
            raise BusinessError(UNKNOWN_EXPRESS_CODE, f"{name}对应的物流公司不存在")  # [U]
        return EXPRESS_NAMES[express_id]

    def waybill(value: Any) -> str:
        if not isinstance(value, str) or not _WAYBILL.fullmatch(value.strip()):
            raise BusinessError(BAD_WAYBILL, "运单号格式不正确")  # [U] message
        return value.strip()

    def logistics_confirm(body: dict[str, Any]) -> dict[str, Any]:
        index, state = order_for_push(body)
        no_express = _int_param(body, "is_no_express", 0)
        if no_express not in (0, 1):
            raise BusinessError(5000, "is_no_express只能为0或1")  # [U]
        company, number = "", ""
        if no_express == 0:
            company = express_company(body.get("out_stype"), "out_stype")
            number = waybill(body.get("out_sid"))
        status = _status_of(index)
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
                line = renderer.line_of(index, oid)
                if line is None:
                    raise BusinessError(NOTHING_TO_SHIP, f"子订单{oid}不属于该订单，没有可发货的商品")  # [U]
                if state.fulfillable(line) == 0:
                    if state.shipped[line] > 0:
                        raise BusinessError(ALREADY_SHIPPED, f"子订单{oid}已发货，请勿重复发货")  # [U]
                    raise BusinessError(NOTHING_TO_SHIP, f"子订单{oid}没有可发货的商品")  # [U]
                if line not in chosen:
                    chosen.append(line)
        world.overlay.record_fulfillment(
            index,
            int(world.now_ts()),
            lines=tuple((line, state.fulfillable(line)) for line in chosen),
            tracking_company=company,
            tracking_number=number,
            tracking_url="",  # Youzan keeps no tracking URL; buyers track by carrier + waybill
        )
        stats.count("shipments")
        return {"is_success": True}

    def logistics_update(body: dict[str, Any]) -> dict[str, Any]:
        index, state = order_for_push(body)
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
        packages = {renderer.dist_id(index, p): p for p in state.fulfillments}
        updates = []
        for change in changes:
            package = packages.get(str(change.get("dist_id", "")))
            if package is None:
                raise BusinessError(UNKNOWN_DIST_CODE, "包裹不存在")  # [U]
            updates.append(
                (
                    package.seq,
                    express_company(change.get("express_id"), "express_id"),
                    waybill(change.get("express_no")),
                )
            )
        # Youzan changes a waybill only once the whole order shipped, i.e. WAIT_BUYER_CONFIRM_GOODS [S: the
        # API page's description]; the code and message are the sandbox's [U].
        if _status_of(index) != "WAIT_BUYER_CONFIRM_GOODS":
            raise BusinessError(NOT_ALL_SHIPPED, "订单未全部发货，不能修改物流信息")
        now = int(world.now_ts())
        tid = body.get("tid")
        for seq, company, number in updates:
            package = next(p for p in state.fulfillments if p.seq == seq)
            before = renderer.express_info(index, package)
            renderer.tracking_overrides[(index, seq)] = (company, number)
            tracking_updates.append(
                {
                    "tid": tid,
                    "dist_id": renderer.dist_id(index, package),
                    "previous_express_no": before["express_no"],
                    "express_id": EXPRESS_IDS[company],
                    "express_no": number,
                }
            )
            stats.count("tracking_updates")
        # A shipment event with no package moves nothing but the trade's update time, as a real edit does.
        world.overlay.add_order_event(index, Event(now, "fulfilled", fulfillment=None))
        return {"is_success": True}

    def express_get(body: dict[str, Any]) -> dict[str, Any]:
        return {"allExpress": [{"id": i, "name": name, "display": 1} for i, name in EXPRESS_COMPANIES]}

    # ------------------------------------------------------------------ stock
    def item_variants(body: dict[str, Any]) -> tuple[int, list[Variant]]:
        item_id = _int_param(body, "item_id", 0)
        variants = [v for v in world.catalog.variants if v.listing("youzan").product_id == item_id]
        if not variants:
            raise BusinessError(ITEM_NOT_FOUND, "商品不存在或已删除")  # [U]
        return item_id, variants

    def stock_of(variant: Variant) -> int:
        return world.overlay.stock_levels.get(("youzan", variant.index, 0), variant.opening_stock)

    def quantity_update(body: dict[str, Any]) -> dict[str, Any]:
        _, variants = item_variants(body)
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
        level = quantity if kind == 0 else stock_of(variant) + quantity
        if level < 0:
            raise BusinessError(5000, "库存不能小于0")  # [U]
        world.overlay.record_stock_set("youzan", variant.index, 0, level, int(world.now_ts()))
        stats.count("stock_sets")
        return {"is_success": True}

    def item_get(body: dict[str, Any]) -> dict[str, Any]:
        item_id, variants = item_variants(body)
        single = len(variants) == 1 and variants[0].variant_title is None
        skus = [
            {
                "sku_id": v.listing("youzan").variant_id,
                "item_no": v.listing("youzan").sku,
                "quantity": stock_of(v),
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
                "quantity": sum(stock_of(v) for v in variants),
                "skus": [] if single else skus,
            }
        }

    methods: dict[str, tuple[frozenset[str], Callable[[dict[str, Any]], dict[str, Any]]]] = {
        "youzan.trades.sold.get": (SOLD_GET_VERSIONS, sold_get),
        "youzan.trade.get": (TRADE_GET_VERSIONS, trade_get),
        "youzan.logistics.express.get": (EXPRESS_GET_VERSIONS, express_get),
        "youzan.logistics.online.confirm": (CONFIRM_VERSIONS, logistics_confirm),
        "youzan.logistics.online.update": (UPDATE_VERSIONS, logistics_update),
        "youzan.item.quantity.update": (QUANTITY_UPDATE_VERSIONS, quantity_update),
        "youzan.item.get": (ITEM_GET_VERSIONS, item_get),
    }

    @app.post("/api/{method}/{version}")
    async def call_api(method: str, version: str, request: Request) -> Response:
        handler = methods[method][1]  # the gateway refused unknown methods and versions already
        body = await json_body(request)
        if body is None:
            body = {}
        if "access_token" in body:
            body = {k: v for k, v in body.items() if k != "access_token"}
        calls[method] = calls.get(method, 0) + 1
        # The 3.x envelope, {"response": ...} / {"error_response": {code, msg}}, for the 3.0.0 methods when
        # the knob asks: Youzan's docs show both envelopes on 3.0.0 routes [U: which each answers today].
        legacy = app.state.legacy_envelope and version.startswith("3.")
        try:
            data = handler(body)
        except BusinessError as error:
            if legacy:
                return json_response({"error_response": {"code": error.code, "msg": error.message}})
            empty = list_answer([], 0, 1, DEFAULT_PAGE_SIZE) if method.endswith("sold.get") else None
            return json_response(_failure(error.code, error.message, empty))
        return json_response({"response": data} if legacy else _envelope(data))

    @app.post("/_sandbox/youzan/expire_tokens")
    def expire_tokens_route() -> Response:
        return json_response({"expired": expire_tokens()})

    @app.post("/_sandbox/youzan/revoke_tokens")
    def revoke_tokens_route() -> Response:
        return json_response({"revoked": revoke_tokens()})

    @app.post("/_sandbox/youzan/fail_next")
    async def set_fail_next(request: Request) -> Response:
        body = await json_body(request) or {}
        method, count = body.get("method"), body.get("count", 1)
        if not isinstance(method, str) or not isinstance(count, int) or count < 0:
            return json_response(
                {"error": "expected {method: str, count: int >= 0, after_commit: bool}"}, 400
            )
        with fail_lock:
            fail_next[method] = (count, bool(body.get("after_commit", False)))
        return json_response({"method": method, "count": count})

    add_admin_routes(
        app,
        platform="youzan",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "kdt_id": kdt_id,
            "client_id": client_id,
            "throttle_code": app.state.throttle_code,
            "qps_limit": limiter.limit,
            "tokens_live": sum(1 for expiry in list(tokens.values()) if expiry > time.time()),
        },
    )
    return app
