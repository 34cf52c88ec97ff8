"""A WeChat Channels shop (微信小店, formerly 视频号小店) ``channels/ec/*`` simulator, with the shop's mini
program (its shipping-info service, ``wxa/sec/order/*``) as a second app.

Sources and corrections: docs/platform-notes.md, WeChat section.

What it reproduces, quirks included:
- Two apps with their own appid, secret, tokens and openids: the shop (``SANDBOX_LOGIN``, secret = the
  sandbox's ``access_token``) and its mini program (``SANDBOX_MINI_PROGRAM_APPID``, secret =
  ``mini_program_secret(access_token)``). ``channels/*`` takes the shop's token, ``wxa/*`` the mini
  program's; another app's token is 48001 [U]. Wrong appid -> 40013, wrong secret -> 40125, wrong
  grant_type -> 40002, on both token endpoints.
- ``POST /cgi-bin/stable_token`` (JSON only) ``{grant_type, appid, secret, force_refresh}``: normal mode hands
  out the app's token in force with its remaining ``expires_in`` (a new one in its last 5 minutes, the old
  one keeping its expiry); ``force_refresh: true`` invalidates it at once and issues a new one, at most 20
  a day (then 45009 [U]) and not within 30 s of the last (the token in force comes back unchanged).
  ``GET /cgi-bin/token`` (old) issues a new token on every call and leaves the app's earlier ones five
  minutes; the two kinds are isolated. Tokens live ``token_lifetime_seconds`` of the *world clock* (a test
  advances the clock, or posts ``{"expire_tokens": true}`` to ``/_sandbox/wechat``; ``{"distrust_tokens":
  true}`` makes calls refuse the live tokens with 40001 while stable_token still hands them out, the case
  ``force_refresh`` is for). ``/_sandbox/wechat`` counts tokens issued (``stable_tokens_issued``,
  ``force_refreshes``) and ``/_sandbox/state`` the requests (``stable_token_requests``).
- Every business call is ``POST <path>?access_token=`` with a JSON body, and every answer is HTTP 200 with
  ``{"errcode", "errmsg"}``; errmsg ends with `` rid: <8 hex digits of the world clock's epoch second>-...``
  (WeChat's rid starts with the answer's time): 41001 token missing, 40001 token unknown (or revoked),
  42001 token expired, 44002 empty body, 47001 body not JSON, 40097 invalid arguments, 45009 daily quota
  (``daily_quota`` calls per UTC day of the world clock), 45011 minute quota (``Faults.rate_limit_storm``),
  -1 system busy (half of ``Faults.server_error_rate``; the other half are gateway 502/503 HTML pages).
  ``Faults.token_expiry_rate`` expires the issued tokens before answering (42001, or 40001 as when they
  were replaced; a token's first call is spared, as a token expires with age); ``credentials_revoked`` is an
  app secret reset (token endpoints 40125, calls 40001); a duplicated page is the previous ``next_key``'s
  answer again.
- ``POST /channels/ec/order/list/get``: ``create_time_range`` and/or ``update_time_range`` (epoch seconds,
  both bounds inclusive, ``end - start <= 7 days``), ``status``, ``openid``, ``page_size <= 100`` (default
  10), opaque ``next_key`` (signed; first call empty) -> ``order_id_list`` of 19-digit **string** ids,
  ``next_key``, ``has_more``. Ids only: each order needs ``POST /channels/ec/order/get {"order_id"}``.
- ``order/get`` renders ``{"order": {...}}``: integer **fen**, epoch seconds, ``product_infos`` with string
  ``product_id``/``sku_id`` and ``sku_code`` blank or missing where the merchant left the channel SKU
  empty, ``price_info``, ``pay_info``, ``delivery_info`` (address, ``delivery_product_info`` per parcel),
  ``aftersale_detail`` (after-sale ids with their numeric status) and ``finish_aftersale_sku_cnt`` for
  refunds, ``status`` 10/20/21/30/100/200/250. ``aftersale/getaftersaleorder {after_sale_order_id}`` ->
  ``after_sale_order`` (one product each: ``product_info.count``, ``refund_info.amount`` in fen, ``type``
  REFUND or RETURN, ``status`` MERCHANT_REFUND_SUCCESS / MERCHANT_RETURN_SUCCESS); unknown id 100002 [U].
- Pushes, recorded in the world's overlay so the next ``order/get`` and listing show them:
  ``order/deliverycompanylist/new/get {ewaybill_only}`` (and the old ``deliverycompanylist/get``) ->
  ``company_list``: the official table (``DELIVERY_COMPANIES``: YUNDA, EMS, ...);
  ``order/delivery/send`` ``{order_id, delivery_list: [{delivery_id, waybill_id, deliver_type: 1,
  product_infos: [{product_id, sku_id, product_cnt}]}]}`` -> one parcel per entry in
  ``delivery_info.delivery_product_info``, status 20 -> 21 (partly) -> 30 (all units), ``ship_done_time``;
  ``order/deliveryinfo/update`` changes parcels' carrier/waybill: ``change_infos [{old, new}]`` (any parcel,
  split ones too; goods unchanged) or ``delivery_list`` (an order shipped in one parcel), at most three
  changes while the order is not completed (every change is kept in ``app.state.delivery_updates``);
  ``product/stock/update`` / ``warehouse/stock/update`` (``diff_type`` 1 add, 2 reduce, 3 set,
  ``out_warehouse_id`` from ``WAREHOUSES``) and ``product/stock/get`` (``normal_stock_num``,
  ``warehouse_stocks``, ``total_stock_num``; the catalog's opening stock until a set).
  Refusals (HTTP 200 errcode bodies): 40097 invalid args (missing ids, ``product_cnt`` <= 0, deliver_type
  other than 1, a changed parcel not on the order), 606031 product/sku not in the order, 606004
  delivery_id not on the list (OTHER is taken), 606005 blank waybill, 606040 whole-order change of split
  parcels, 606041 changes used up, 606042 a change's goods not the parcel's, 101100 a change on an order
  not shipped or completed, 109000 unpaid/cancelled order or more units than remain unshipped, 109001
  every requested unit already shipped, 10020002/10020050/10020060 unknown product / stock below zero /
  unknown warehouse (see the ``ERR_*`` constants for which are confirmed). A waybill sent twice is not
  refused ([U]: the real rule is not documented), so a connector must recognise its own earlier parcel by
  reading the order.

- The mini program's shipping-info service: ``wxa/sec/order/upload_shipping_info`` ``{order_key
  {order_number_type 1: mchid + out_trade_no (this shop's ``SANDBOX_MCHID`` and the Channels order id) | 2:
  transaction_id (``pay_info.transaction_id`` of a paid order)}, delivery_mode 1 UNIFIED (exactly one
  entry) | 2 SPLIT (is_all_delivered required, <= 15 entries), logistics_type 1..4, shipping_list
  [{tracking_no, express_company (the company list's codes), item_desc, contact}], upload_time (RFC 3339,
  later than the last upload), payer {openid under the mini program}}``. An upload replaces the recorded
  list ([U]); after the shipping is finished, one more upload (the re-shipment) is allowed.
  ``wxa/sec/order/get_order`` ``{transaction_id | merchant_id + merchant_trade_no}`` reads it back with the
  payer's ``openid`` under the mini program (``order_state`` 1 待发货 / 2 已发货 / 3 确认收货 (status 100)
  / 5 已退款 (cancelled); 4 交易完成 for ``complete_payments`` posted to ``/_sandbox/wechat``). Refusals:
  10060001 no such payment (unpaid orders, and ``foreign_payments``: paid outside the mini program) [S],
  10060003 the re-shipment used [S], 10060004 payment not shippable [C], 10060031 payer openid not the
  payer's (the shop's openid is not) [S], 47001 data format (types, upload_time not RFC 3339) [C],
  10060014 any other invalid value [U], 10060023 upload_time not increasing [U]; SF without a contact [U].

Simulator choices (the world is platform-neutral; this module adapts it):
- Currency: the world's Decimal amounts are rendered as CNY fen (fine for a simulator). The world's sales
  tax is left out: Chinese retail prices include VAT and the Channels order has no tax field, so
  ``order_price = product_price - discounted_price + freight``.
- Addresses: Channels shops deliver in mainland China, so each world address is re-homed to one of a few
  Chinese places (chosen by a hash of the address, stable) with an 11-digit mobile number.
- WeChat has no "authorized, capture later": a world order authorized at checkout is paid at once here.
- Lines of one order with the same variant are one ``product_infos`` entry (the platform groups by SKU).
- A world refund is one after-sale order per product it covers; a refund of the whole order carries the
  freight on its last after-sale order [U]; a return with restock "return" is a RETURN, any other refund a
  REFUND. Every Channels payment is the mini program's unless posted as ``foreign_payments`` [U].
- Stock is not drawn down by the world's sales: a SKU holds its opening stock until the hub sets it.
- A deliveryinfo/update is an overlay order event without a parcel: the fold ignores it, but the order's
  ``update_time`` moves, so the next incremental pull sees the new waybill.
- Unconfirmed details are marked ``[U]`` where they are rendered: the error code for a span over 7 days, the
  list default page size, the not-found codes, no change on a completed order, 48001 for another app's
  token, the code of the force-refresh limit.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import RequestStats, add_admin_routes, hold_back_answers, json_response
from sandbox.faults import Faults, ServedPages
from sandbox.world import ZERO, Address, Customer, Event, OrderQuery, OrderState, Variant, World

# The shop's public appid (the Airflow connection's login); the app secret is the sandbox's ``access_token``.
SANDBOX_LOGIN = "wx5c3f1e8b9a2d4706"
# The mini program whose payments the shipping-info service tracks: an app of its own, with its own
# appid, secret (``mini_program_secret(app secret)``), tokens and openids.
SANDBOX_MINI_PROGRAM_APPID = "wx3d8e1f5a7c9b2046"
TOKEN_LIFETIME_SECONDS = 7200
OLD_TOKEN_GRACE_SECONDS = 300  # cgi-bin/token: the previous token stays usable this long after a refresh
STABLE_RENEW_BEFORE_SECONDS = 300  # stable_token normal mode hands out a new token in the last 5 minutes
FORCE_REFRESH_INTERVAL_SECONDS = 30  # a force_refresh within 30 s of the last one refreshes nothing
FORCE_REFRESHES_PER_DAY = 20
MAX_SPAN_SECONDS = 7 * 86400
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10  # [U] the doc marks page_size optional without a default

ORDER_ID_BASE = 3_704_000_000_000_000_000  # 19 digits, like 3704612354559743232 in the doc example
ORDER_ID_STRIDE = 100_000
AFTERSALE_ID_BASE = 1_934_000_000_000_000  # 16 digits, like 1934164653012121 in a doc example
AFTERSALE_ID_STRIDE = 256  # per order: 16 refunds of up to 16 products each
FEN = Decimal(100)

STATUS_UNPAID = 10
STATUS_TO_SHIP = 20
STATUS_PARTLY_SHIPPED = 21
STATUS_SHIPPED = 30
STATUS_COMPLETED = 100
STATUS_CANCELLED_AFTER_AFTERSALE = 200
STATUS_CANCELLED_UNPAID = 250
KNOWN_STATUSES = frozenset({10, 12, 13, 20, 21, 30, 100, 190, 200, 250})
# After-sale statuses: getaftersaleorder names them, order/get lists them by number (AfterSaleStatus enum).
AFTERSALE_REFUNDED = ("MERCHANT_REFUND_SUCCESS", 13)  # 退款完成
AFTERSALE_RETURNED = ("MERCHANT_RETURN_SUCCESS", 14)  # 退货退款完成: the goods came back, then the money

# ``order/deliverycompanylist/new/get``: the official delivery_id table of its doc (codes and names). The real
# list is longer; delivery/send also takes OTHER for carriers off the list (doc).
DELIVERY_COMPANIES: dict[str, str] = {
    "ZTO": "中通",
    "YTO": "圆通",
    "YUNDA": "韵达",
    "JTSD": "极兔",
    "STO": "申通",
    "SF": "顺丰速运",  # the doc's answer example; the table says 顺丰
    "JD": "京东",
    "EMS": "中国邮政",
    "CNSD": "菜鸟速递(丹鸟)",
    "DBKD": "德邦快递",
    "SXJD": "顺心捷达",
    "ZTOKY": "中通快运",
    "YDKY": "韵达快运",
    "ANEKY": "安能物流",
    "BTWL": "百世快运",
    "KYSY": "跨越速运",
    "YMDD": "壹米滴答",
    "RJTCSD": "锐界同城速递",
    "ZJS": "宅急送",
    "XFEX": "信丰物流",
}
OTHER_CARRIER = "OTHER"
# Chinese carriers standing in for the world's own shipments (the hub's pushes carry real delivery_ids).
_CARRIERS = {"UPS": ("SF", "顺丰速运"), "USPS": ("YTO", "圆通速递"), "FedEx": ("ZTO", "中通快递")}
# Regional warehouses (区域仓) the simulated shop has set up: out_warehouse_id -> the world's location id
# (location 0 is the SKU's normal, non-regional stock).
WAREHOUSES: dict[str, int] = {"wh-east-sh": 1, "wh-south-gz": 2}
DELIVER_TYPE_EXPRESS = 1  # 自寄快递 self-posted express; 3 is virtual goods, 2/4 online e-waybill
MAX_STOCK_NUM = 1_000_000  # [U] the doc gives no upper bound for num

# Business errcodes of the push endpoints. 40097 and 606031 were seen in real answers (forum threads); the
# 6060xx/101100 codes are deliveryinfo/update's documented table [C]; 109000/109001 are the codes of the
# older 小商店 ``product/delivery/send`` (已经发货 = already shipped), kept for their meaning [S]; the
# rest are this simulator's choice [U].
ERR_INVALID_ARGS = 40097
ERR_WRONG_PRODUCT = 606031  # ", 发货请求里product_id或sku_id填写不正确" [C: forum]
ERR_DELIVERY_FAILED = 109000  # [S: 小商店] 发货失败 (wrong order status, more units than remain)
ERR_ALREADY_SHIPPED = 109001  # [S: 小商店] 已经发货
ERR_UNKNOWN_COMPANY = 606004  # [C for deliveryinfo/update; U for delivery/send] delivery_id不合法
ERR_BAD_WAYBILL = 606005  # [C] waybill_id不合法
ERR_STATUS_NO_DELIVERY = 101100  # [C] 当前订单状态不允许发货 (also: no change on a completed order [U])
ERR_SPLIT_NO_UPDATE = 606040  # [C] 拆单发货暂不支持修改物流 (the whole-order delivery_list form)
ERR_UPDATES_EXHAUSTED = 606041  # [C] 修改物流次数已达上限
ERR_UPDATE_GOODS = 606042  # [C] 商品信息有误 (old/new goods that are not the parcel's)
MAX_DELIVERY_UPDATES = 3  # [C] at most three changes while the order is not completed (current doc)
ERR_AFTERSALE_NOT_FOUND = 100002  # [U] as order/get's "not exist"
ERR_PRODUCT_NOT_FOUND = 10020002  # [U] stock calls for a product/sku the shop does not have
ERR_STOCK_NOT_ENOUGH = 10020050  # [U] diff_type 2 reducing below zero
ERR_WAREHOUSE_NOT_FOUND = 10020060  # [U] unknown out_warehouse_id

# The mini-program shipping-info service (发货信息管理, ``wxa/sec/order/*``). The shop's payments are
# WeChat Pay transactions of this merchant; ``out_trade_no`` / ``merchant_trade_no`` is the Channels order id
# ([U] a simulator choice: the real merchant trade number is whatever the shop's payment flow chose).
SANDBOX_MCHID = "1900012345"
ERR_PAYMENT_NOT_FOUND = 10060001  # [S: forum answers] 支付单不存在
ERR_RESHIPPED = 10060003  # [S: forum answer] 支付单已使用重新发货机会 (the one re-shipment is used)
ERR_NOT_SHIPPABLE = 10060004  # [C] 支付单处于不可发货的状态 (refunded, confirmed or completed payments)
ERR_MP_INVALID = 10060014  # [U] 参数错误: a value outside the documented rules (the message says which)
ERR_NOT_UPDATED = 10060023  # [U] 发货信息未更新: upload_time not later than the last upload
ERR_NOT_PAYER = 10060031  # [S: forum] 该笔支付单不属于 openid 所指定的用户
ERR_API_UNAUTHORIZED = 48001  # a token of another app (the shop's on wxa/*, the mini program's on channels/*)
MAX_PARCELS = 15  # SPLIT_DELIVERY takes up to 15 shipping_list entries [C]
MAX_ITEM_DESC = 120  # [U] the doc caps item_desc; 120 characters as commonly quoted
MP_ORDER_TO_SHIP, MP_ORDER_SHIPPED, MP_ORDER_CONFIRMED, MP_ORDER_COMPLETED, MP_ORDER_REFUNDED = 1, 2, 3, 4, 5


@dataclass(frozen=True, slots=True)
class _ChinesePlace:
    province: str
    city: str
    county: str
    postal_code: str
    national_code: str  # 行政区划代码 (administrative division code), not a country code


_PLACES = (
    _ChinesePlace("广东省", "广州市", "海珠区", "510220", "440105"),
    _ChinesePlace("广东省", "深圳市", "南山区", "518052", "440305"),
    _ChinesePlace("上海市", "上海市", "徐汇区", "200030", "310104"),
    _ChinesePlace("北京市", "北京市", "朝阳区", "100020", "110105"),
    _ChinesePlace("浙江省", "杭州市", "西湖区", "310012", "330106"),
    _ChinesePlace("四川省", "成都市", "武侯区", "610041", "510107"),
    _ChinesePlace("江苏省", "南京市", "鼓楼区", "210008", "320106"),
    _ChinesePlace("湖北省", "武汉市", "洪山区", "430070", "420111"),
)
_STREETS = ("新港中路", "科技园南路", "漕溪北路", "建国路", "文三路", "人民南路", "中山北路", "珞喻路")


class WeChatError(Exception):
    """An errcode answer (always HTTP 200 on WeChat)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def _fen(amount: Decimal) -> int:
    return int((amount * FEN).to_integral_value())


# --------------------------------------------------------------------------------------------------
# Tokens and quota
# --------------------------------------------------------------------------------------------------


def mini_program_secret(app_secret: str) -> str:
    """The sandbox mini program's app secret, derived from the shop's (one secret configures a sandbox)."""
    return "mp-" + hashlib.sha256(f"mini-program:{app_secret}".encode()).hexdigest()[:32]


@dataclass(slots=True)
class _Issued:
    appid: str
    stable: bool  # from cgi-bin/stable_token (isolated from cgi-bin/token's)
    expiry: float  # world epoch seconds
    distrusted: bool = False  # refused on calls (40001) while stable_token's normal mode still hands it out


class TokenStore:
    """Issued access tokens per appid and their expiry on the *world clock* (thread-safe).

    ``cgi-bin/token``: every fetch issues a new token and leaves the appid's earlier ones 5 minutes at most.
    ``cgi-bin/stable_token`` (isolated from the former): normal mode hands out the appid's token in force
    with its remaining ``expires_in`` (a new one only in its last 5 minutes, the old one keeping its expiry);
    ``force_refresh`` revokes it at once and issues a new one, at most 20 times a day and not within 30 s of
    the last (then the token in force comes back unchanged)."""

    def __init__(self, world: World, lifetime_seconds: int = TOKEN_LIFETIME_SECONDS) -> None:
        self.world = world
        self.lifetime_seconds = lifetime_seconds
        self._tokens: dict[str, _Issued] = {}
        self._stable: dict[str, str] = {}  # appid -> its stable token in force
        self._forced: dict[str, list[float]] = {}  # appid -> world times of its force refreshes
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._presented: set[str] = set()
        self.issued = 0
        self.stable_issued = 0
        self.force_refreshes = 0

    def _new(self, appid: str, *, stable: bool, now: float) -> str:
        serial = next(self._counter)
        digest = hashlib.sha256(f"{self.world.seed}:wechat-token:{serial}".encode()).hexdigest()
        token = f"{80 + serial % 10}_{base64.urlsafe_b64encode(bytes.fromhex(digest)).decode().rstrip('=')}"
        self._tokens[token] = _Issued(appid, stable, now + self.lifetime_seconds)
        self.issued += 1
        if stable:
            self._stable[appid] = token
            self.stable_issued += 1
        return token

    def issue(self, appid: str) -> tuple[str, int]:
        """``cgi-bin/token``: a new token; the appid's earlier ones (not stable tokens) die in 5 minutes."""
        with self._lock:
            now = self.world.now_ts()
            for issued in self._tokens.values():
                if issued.appid == appid and not issued.stable:
                    issued.expiry = min(issued.expiry, now + OLD_TOKEN_GRACE_SECONDS)
            return self._new(appid, stable=False, now=now), self.lifetime_seconds

    def stable(self, appid: str, *, force: bool) -> tuple[str, int]:
        """``cgi-bin/stable_token``: (token, expires_in)."""
        with self._lock:
            now = self.world.now_ts()
            current = self._stable.get(appid)
            issued = self._tokens.get(current) if current else None
            live = issued is not None and now < issued.expiry
            if force:
                forced = self._forced.setdefault(appid, [])
                if live and forced and now - forced[-1] < FORCE_REFRESH_INTERVAL_SECONDS:
                    assert current is not None and issued is not None
                    return current, int(issued.expiry - now)  # too soon: not refreshed (doc)
                if (
                    sum(1 for at in forced if int(at // 86400) == int(now // 86400))
                    >= FORCE_REFRESHES_PER_DAY
                ):
                    raise WeChatError(45009, "reach max api daily quota limit")  # [U] the code of this limit
                if current is not None:
                    self._tokens.pop(current, None)  # the previous token is invalid at once (doc)
                forced.append(now)
                self.force_refreshes += 1
                return self._new(appid, stable=True, now=now), self.lifetime_seconds
            if live and issued.expiry - now > STABLE_RENEW_BEFORE_SECONDS:
                assert current is not None
                return current, int(issued.expiry - now)
            return self._new(appid, stable=True, now=now), self.lifetime_seconds

    def check(self, token: str, appid: str) -> None:
        """A call of ``appid``'s API with ``token``: the platform's refusal, if any."""
        if not token:
            raise WeChatError(41001, "access_token missing")
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None or issued.distrusted:
                raise WeChatError(
                    40001,
                    "invalid credential, access_token is invalid or not latest, could get access_token by "
                    "getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r",
                )
            if self.world.now_ts() >= issued.expiry:
                raise WeChatError(42001, "access_token expired")
            if issued.appid != appid:
                raise WeChatError(ERR_API_UNAUTHORIZED, "api unauthorized")  # [U] another app's token

    def expire_all(self) -> None:
        with self._lock:
            now = self.world.now_ts()
            for issued in self._tokens.values():
                issued.expiry = min(issued.expiry, now)

    def distrust_all(self) -> None:
        """Calls refuse every live token (40001) while stable_token's normal mode still hands them out: the
        case ``force_refresh`` exists for (the docs: a leaked token). [U] whether WeChat ever does this."""
        with self._lock:
            for issued in self._tokens.values():
                issued.distrusted = True

    def presented_before(self, token: str) -> bool:
        """Whether ``token`` came with an earlier call (and note that it came now). A token expires with age:
        ``Faults.token_expiry_rate`` spares a token's first call, or a refresh could never succeed."""
        with self._lock:
            seen = token in self._presented
            self._presented.add(token)
        return seen

    def revoke_all(self) -> None:
        """Forget every issued token (an app secret reset, or tokens replaced): calls then get 40001."""
        with self._lock:
            self._tokens.clear()
            self._stable.clear()


class DailyQuota:
    """Calls per UTC day of the world clock; None means unlimited."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.limit: int | None = None
        self._used: dict[int, int] = {}
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            day = int(self.world.now_ts() // 86400)
            used = self._used.get(day, 0)
            if self.limit is not None and used >= self.limit:
                return False
            self._used[day] = used + 1
            return True

    def reset(self) -> None:
        with self._lock:
            self._used.clear()


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DeliveryChange:
    at: int
    delivery_id: str
    waybill_id: str


@dataclass(frozen=True, slots=True)
class _Product:
    """One ``product_infos`` entry: the world lines of one variant merged."""

    variant: Variant
    line_indices: tuple[int, ...]
    quantity: int
    unit_price: Decimal
    paid: Decimal  # after the order discount allocated to these lines


class WeChatChannelsRenderer:
    """World states -> Channels order JSON; world indices <-> 19-digit order ids."""

    platform = "wechat_channels"

    def __init__(self, world: World) -> None:
        self.world = world
        # deliveryinfo/update: (order index, parcel seq) -> the parcel's carrier/waybill changes, in order
        self.delivery_changes: dict[tuple[int, int], list[_DeliveryChange]] = {}

    # ---------------------------------------------------------------- ids
    def order_id(self, index: int) -> str:
        gap = zlib.crc32(f"{self.world.seed}:wechat:{index}".encode()) % ORDER_ID_STRIDE
        return str(ORDER_ID_BASE + index * ORDER_ID_STRIDE + gap)

    def index_of(self, order_id: str) -> int | None:
        if not order_id.isdigit():
            return None
        number = int(order_id)
        if number < ORDER_ID_BASE:
            return None
        index = (number - ORDER_ID_BASE) // ORDER_ID_STRIDE
        return index if self.order_id(index) == order_id else None

    def openid(self, order_index: int, customer: Customer | None) -> str:
        """The buyer's openid under the shop's appid (what a Channels order shows)."""
        key = f"customer:{customer.index}" if customer is not None else f"guest:{order_index}"
        digest = hashlib.sha256(f"{self.world.seed}:openid:{key}".encode()).digest()
        return "o" + base64.urlsafe_b64encode(digest).decode()[:27]

    def payer_openid(self, order_index: int, customer: Customer | None) -> str:
        """The same buyer's openid under the mini program's appid: an openid is per app, so it differs."""
        key = f"customer:{customer.index}" if customer is not None else f"guest:{order_index}"
        digest = hashlib.sha256(f"{self.world.seed}:mini-program-openid:{key}".encode()).digest()
        return "o" + base64.urlsafe_b64encode(digest).decode()[:27]

    @staticmethod
    def aftersale_id(index: int, refund_seq: int, product: int) -> str:
        return str(AFTERSALE_ID_BASE + index * AFTERSALE_ID_STRIDE + refund_seq * 16 + product)

    @staticmethod
    def aftersale_key(aftersale_id: str) -> tuple[int, int, int] | None:
        """(order index, refund seq, product number) of an after-sale order id, None for anything else."""
        if not aftersale_id.isdigit() or int(aftersale_id) < AFTERSALE_ID_BASE:
            return None
        index, rest = divmod(int(aftersale_id) - AFTERSALE_ID_BASE, AFTERSALE_ID_STRIDE)
        return index, rest // 16, rest % 16

    @staticmethod
    def transaction_id(order_seed: int, index: int) -> str:
        """The WeChat Pay ``transaction_id`` of a paid order (28 digits, as 4200001858202306300646157659)."""
        return f"42000{zlib.crc32(f'{order_seed}:pay:{index}'.encode()):010d}{index:013d}"

    def index_of_transaction(self, transaction_id: str) -> int | None:
        """The world index of a paid order's ``transaction_id``, None for anything else."""
        if len(transaction_id) != 28 or not transaction_id.isdigit():
            return None
        index = int(transaction_id[-13:])
        state = self.world.state(index, self.world.now_ts())
        if state is None or self.paid_ts(state) is None:
            return None  # no payment order (yet): unpaid orders have no transaction
        return index if self.transaction_id(state.order.seed, index) == transaction_id else None

    # ---------------------------------------------------------------- status
    @staticmethod
    def paid_ts(state: OrderState) -> int | None:
        if state.paid_ts is not None:
            return state.paid_ts
        if state.order.initial_financial_status == "authorized":
            return state.order.created_ts  # no separate capture on WeChat: paid at checkout
        return None

    def status(self, state: OrderState) -> int:
        paid = self.paid_ts(state) is not None
        if state.cancelled:
            return STATUS_CANCELLED_AFTER_AFTERSALE if paid else STATUS_CANCELLED_UNPAID
        if not paid:
            return STATUS_UNPAID
        if not any(state.shipped):
            return STATUS_TO_SHIP
        if any(state.fulfillable(i) for i in range(len(state.order.lines))):
            return STATUS_PARTLY_SHIPPED
        return STATUS_COMPLETED if state.closed else STATUS_SHIPPED

    # ---------------------------------------------------------------- pieces
    @staticmethod
    def products(state: OrderState) -> list[_Product]:
        grouped: dict[int, list[int]] = {}
        for line in state.order.lines:
            grouped.setdefault(line.variant.index, []).append(line.index)
        products = []
        for line_indices in grouped.values():
            lines = [state.order.lines[i] for i in line_indices]
            products.append(
                _Product(
                    variant=lines[0].variant,
                    line_indices=tuple(line_indices),
                    quantity=sum(line.quantity for line in lines),
                    unit_price=lines[0].unit_price,
                    paid=sum((line.line_total - line.discount for line in lines), ZERO),
                )
            )
        return products

    def _product_json(self, state: OrderState, product: _Product, paid: bool) -> dict[str, Any]:
        listing = product.variant.listing(self.platform)
        refunded = sum(state.refunded[i] for i in product.line_indices) if paid else 0
        sale_price = _fen(product.unit_price)
        discount = _fen(product.unit_price * product.quantity - product.paid)
        thumb = hashlib.md5(f"{listing.product_id}".encode(), usedforsecurity=False).hexdigest()
        entry: dict[str, Any] = {
            "product_id": str(listing.product_id),
            "sku_id": str(listing.variant_id),
            "thumb_img": f"https://store.mp.video.tencent-cloud.com/161/20304/snscosdownload/SH/reserved/{thumb}",
            "sku_cnt": product.quantity,
            "sale_price": sale_price,
            "title": product.variant.product_title,
            "on_aftersale_sku_cnt": 0,
            "finish_aftersale_sku_cnt": refunded,
            "sku_code": listing.sku,
            "market_price": sale_price,
            "sku_attrs": (
                [{"attr_key": "规格", "attr_value": product.variant.variant_title}]
                if product.variant.variant_title
                else []
            ),
            "real_price": _fen(product.paid),
            "out_product_id": "",
            "out_sku_id": "",
            "is_discounted": discount > 0,
            "estimate_price": _fen(product.paid),
            "is_change_price": False,
            "change_price": 0,
            "out_warehouse_id": "",
            "sku_deliver_info": {"stock_type": 0},
            "extra_service": {"seven_day_return": 1, "freight_insurance": 0},
            "use_deduction": False,
            "deduction_price": 0,
            "merchant_discounted_price": discount,
            "finder_discounted_price": 0,
            "is_free_gift": False,
        }
        if not listing.sku and product.variant.index % 2:
            del entry["sku_code"]  # older orders carry no sku_code key at all when the merchant set none
        return entry

    def _address(self, address: Address) -> dict[str, Any]:
        key = zlib.crc32(f"{address.address1}|{address.city}|{address.zip}".encode())
        place = _PLACES[key % len(_PLACES)]
        mobile = f"1{3 + key % 6}{key % 10**9:09d}"
        house = address.address1.split(" ", 1)[0]
        return {
            "user_name": address.name,
            "postal_code": place.postal_code,
            "province_name": place.province,
            "city_name": place.city,
            "county_name": place.county,
            "detail_info": f"{_STREETS[key % len(_STREETS)]}{house}号",
            "national_code": place.national_code,
            "tel_number": mobile,
            "house_number": address.address2.replace("Apt ", "") if address.address2 else "",
            "virtual_order_tel_number": "",
            "use_tel_number": 0,
            "hash_code": hashlib.md5(f"{key}".encode(), usedforsecurity=False).hexdigest(),
        }

    def _deliveries(self, state: OrderState, products: list[_Product]) -> list[dict[str, Any]]:
        product_of_line = {i: product for product in products for i in product.line_indices}
        parcels = []
        for fulfillment in state.fulfillments:
            units: dict[int, int] = {}
            for line_index, quantity in fulfillment.lines:
                variant_index = product_of_line[line_index].variant.index
                units[variant_index] = units.get(variant_index, 0) + quantity
            if fulfillment.pushed:  # the hub pushed it through delivery/send: its own delivery_id
                delivery_id = fulfillment.tracking_company
                delivery_name = DELIVERY_COMPANIES.get(delivery_id, "其他")
            else:
                delivery_id, delivery_name = _CARRIERS.get(fulfillment.tracking_company, ("OTHER", "其他"))
            waybill_id = fulfillment.tracking_number
            for changed in self.delivery_changes.get((state.index, fulfillment.seq), ()):
                if changed.at <= state.as_of:
                    delivery_id, waybill_id = changed.delivery_id, changed.waybill_id
                    delivery_name = DELIVERY_COMPANIES.get(delivery_id, "其他")
            parcels.append(
                {
                    "waybill_id": waybill_id,
                    "delivery_id": delivery_id,
                    "delivery_name": delivery_name,
                    "delivery_time": fulfillment.at,
                    "deliver_type": 1,
                    "product_infos": [
                        {
                            "product_id": str(
                                self.world.catalog.variants[v].listing(self.platform).product_id
                            ),
                            "sku_id": str(self.world.catalog.variants[v].listing(self.platform).variant_id),
                            "product_cnt": quantity,
                        }
                        for v, quantity in units.items()
                    ],
                }
            )
        return parcels

    def aftersales(self, state: OrderState) -> list[dict[str, Any]]:
        """The after-sale orders of a paid order (``getaftersaleorder``'s ``after_sale_order``), in order.

        WeChat keeps one after-sale order per product: a world refund of several variants is several. A
        refund of every unit with the shipping (a cancel) also returns the freight, carried by its last
        after-sale order [U where WeChat puts it]. Goods that came back (restock "return") make a RETURN
        after-sale order finished as MERCHANT_RETURN_SUCCESS; the rest are REFUND (money only)."""
        if self.paid_ts(state) is None:
            return []
        order = state.order
        variant_of_line = {line.index: line.variant for line in order.lines}
        order_id = self.order_id(state.index)
        openid = self.openid(state.index, order.customer)
        found = []
        for refund in state.refunds:
            by_variant: dict[int, list[Any]] = {}
            for line in refund.lines:
                by_variant.setdefault(variant_of_line[line.line_index].index, []).append(line)
            groups = list(by_variant.values())
            for number, lines in enumerate(groups):
                variant = variant_of_line[lines[0].line_index]
                listing = variant.listing(self.platform)
                amount = _fen(sum((line.subtotal for line in lines), ZERO))
                if number == len(groups) - 1:
                    amount += _fen(refund.shipping)
                returned = any(line.restock_type == "return" for line in lines)
                status, _ = AFTERSALE_RETURNED if returned else AFTERSALE_REFUNDED
                found.append(
                    {
                        "after_sale_order_id": self.aftersale_id(state.index, refund.seq, number),
                        "status": status,
                        "openid": openid,
                        "unionid": "",
                        "product_info": {
                            "product_id": str(listing.product_id),
                            "sku_id": str(listing.variant_id),
                            "count": sum(line.quantity for line in lines),
                        },
                        "details": {
                            "desc": refund.note,
                            "receive_product": returned,
                            "cancel_time": 0,
                            "prove_imgs": [],
                            "tel_number": "",
                        },
                        "refund_info": {"amount": amount},
                        "return_info": {"waybill_id": "", "delivery_id": "", "delivery_name": ""},
                        "merchant_upload_info": {"reject_reason": "", "refund_certificates": []},
                        "create_time": refund.at - 3600,
                        "update_time": refund.at,
                        "reason": "NO_LONGER_WANT",  # [U] the reason codes beyond the doc example
                        "refund_resp": {"code": "", "ret": 0, "message": ""},
                        "type": "RETURN" if returned else "REFUND",
                        "order_id": order_id,
                    }
                )
        return found

    def _aftersale_detail(self, state: OrderState) -> dict[str, Any]:
        numbers = dict((AFTERSALE_REFUNDED, AFTERSALE_RETURNED))
        listed = [
            {"aftersale_order_id": found["after_sale_order_id"], "status": numbers[found["status"]]}
            for found in self.aftersales(state)
        ]
        return {"on_aftersale_order_cnt": 0, "aftersale_order_list": listed}

    # ---------------------------------------------------------------- the order
    def render(self, state: OrderState, *, malformed: bool = False) -> dict[str, Any]:
        order = state.order
        status = self.status(state)
        paid_ts = self.paid_ts(state)
        paid = paid_ts is not None
        products = self.products(state)
        product_infos = [self._product_json(state, product, paid) for product in products]
        if malformed and product_infos:
            product_infos[0]["sku_cnt"] = f"{product_infos[0]['sku_cnt']}件"  # a platform bug, on purpose
        product_price = sum(_fen(p.unit_price) * p.quantity for p in products)
        discounted = _fen(order.total_discount)
        freight = _fen(order.shipping.price)
        original = product_price + freight
        order_price = original - discounted
        transaction_id = self.transaction_id(order.seed, order.index)
        pay_info: dict[str, Any] = {
            "prepay_id": f"wx{order.created_ts}{order.index:010d}",
            "prepay_time": order.created_ts,
        }
        if paid:
            pay_info.update({"pay_time": paid_ts, "transaction_id": transaction_id, "payment_method": 1})
        deliveries = self._deliveries(state, products)
        delivery_info: dict[str, Any] = {
            "address_info": self._address(order.shipping_address),
            "delivery_product_info": deliveries,
            "deliver_method": 0,
            "address_under_review": None,
            "quality_inspect_type": 0,
        }
        if status in (STATUS_SHIPPED, STATUS_COMPLETED) and deliveries:
            delivery_info["ship_done_time"] = max(d["delivery_time"] for d in deliveries)
        delivery_info = {k: v for k, v in delivery_info.items() if v is not None}
        ext_info: dict[str, Any] = {
            "customer_notes": order.note or "",
            "merchant_notes": "",
            "finder_id": "",
            "live_id": "",
            "order_scene": 1,
        }
        if status == STATUS_COMPLETED and state.closed_ts is not None:
            ext_info["confirm_receipt_time"] = state.closed_ts
        return {
            "order_id": self.order_id(order.index),
            "openid": self.openid(order.index, order.customer),
            "unionid": "",
            "create_time": order.created_ts,
            "update_time": state.updated_ts,
            "status": status,
            "order_detail": {
                "product_infos": product_infos,
                "pay_info": pay_info,
                "price_info": {
                    "product_price": product_price,
                    "order_price": order_price,
                    "freight": freight,
                    "discounted_price": discounted,
                    "is_discounted": discounted > 0,
                    "original_order_price": original,
                    "estimate_product_price": product_price - discounted,
                    "change_down_price": 0,
                    "change_freight": 0,
                    "is_change_freight": False,
                    "use_deduction": False,
                    "deduction_price": 0,
                    "merchant_receieve_price": order_price,  # sic: the API's spelling
                    "merchant_discounted_price": discounted,
                    "finder_discounted_price": 0,
                },
                "delivery_info": delivery_info,
                "coupon_info": {"user_coupon_id": f"{order.index}{len(order.discount.code)}"}
                if order.discount
                else {},
                "ext_info": ext_info,
                "settle_info": {"predict_commission_fee": order_price * 5 // 100},
                "sku_sharer_infos": [],
                "commission_infos": [],
            },
            "aftersale_detail": self._aftersale_detail(state),
            "is_present": False,
        }


# --------------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------------


def _rid(seed: int, serial: int, now_ts: float) -> str:
    """WeChat's request id: its first part is the answer's epoch second in hex (a forum thread's rid
    649d7280 is the 2023-06-29T20:01:04+08:00 of its request); the rest identifies the request."""
    digest = hashlib.sha256(f"{seed}:rid:{serial}".encode()).hexdigest()
    return f"{int(now_ts) & 0xFFFFFFFF:08x}-{digest[8:16]}-{digest[16:24]}"


def _int_field(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WeChatError(47001, f"data format error: {name} must be a number")
    return value


def _time_range(body: dict[str, Any], name: str) -> tuple[int, int] | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise WeChatError(47001, f"data format error: {name} must be an object")
    start, end = _int_field(raw, "start_time"), _int_field(raw, "end_time")
    if start is None or end is None:
        raise WeChatError(40097, f"invalid args: {name} needs start_time and end_time")
    if start > end:
        raise WeChatError(40097, f"invalid args: {name}.start_time is after end_time")
    if end - start > MAX_SPAN_SECONDS:  # [U] the doc states the limit, not the code it answers with
        raise WeChatError(40097, f"invalid args: {name} must not span more than 7 days")
    return start, end


class NextKeyCodec:
    """``next_key``: base64url of {filters digest, last index} plus a signature; foreign keys are refused."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:16]

    def encode(self, filters_digest: str, last_index: int) -> str:
        text = f"{filters_digest}:{last_index}"
        raw = f"{text}:{self._sign(text)}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, value: str, filters_digest: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            digest, last, signature = raw.rsplit(":", 2)
            if not hmac.compare_digest(signature, self._sign(f"{digest}:{last}")):
                raise ValueError("bad signature")
            if digest != filters_digest:
                raise ValueError("next_key of another query")
            return int(last)
        except (ValueError, UnicodeDecodeError):
            raise WeChatError(40097, "invalid args: next_key") from None


# --------------------------------------------------------------------------------------------------
# Pushes: delivery lists and stock
# --------------------------------------------------------------------------------------------------

ListingKey = tuple[int, int]  # (product_id, sku_id)


@dataclass(frozen=True, slots=True)
class _Parcel:
    """One ``delivery_list`` entry as the merchant sent it."""

    delivery_id: str
    waybill_id: str
    units: dict[ListingKey, int]  # in the order listed


def _positive_id(value: Any, name: str, where: str) -> int:
    """A product/sku id: the doc types it number, its examples send digit strings; both are accepted."""
    number = 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    if number <= 0:  # the wording of a real answer (forum thread on delivery/send)
        shown = 0 if value in (None, "") else value
        raise WeChatError(ERR_INVALID_ARGS, f"invalid args, {name}: expecting {where} > 0, actually {shown}")
    return number


def _parse_delivery_list(body: dict[str, Any]) -> list[_Parcel]:
    deliveries = body.get("delivery_list")
    if not isinstance(deliveries, list) or not deliveries:
        raise WeChatError(ERR_INVALID_ARGS, "invalid args, delivery_list: expecting a non-empty array")
    parcels = []
    for d_index, delivery in enumerate(deliveries):
        where = f"delivery_list[{d_index}]"
        if not isinstance(delivery, dict):
            raise WeChatError(47001, f"data format error: {where} must be an object")
        deliver_type = _int_field(delivery, "deliver_type")
        if deliver_type == 3:  # [U] wording: virtual delivery needs a deliver_method=1 (virtual) order
            raise WeChatError(
                ERR_INVALID_ARGS, f"invalid args, {where}.deliver_type: 3 needs deliver_method=1"
            )
        if deliver_type in (2, 4):  # [U] the online e-waybill flow creates its own parcels
            raise WeChatError(ERR_INVALID_ARGS, f"invalid args, {where}.deliver_type: use the ewaybill API")
        if deliver_type != DELIVER_TYPE_EXPRESS:
            raise WeChatError(ERR_INVALID_ARGS, f"invalid args, deliver_type: expecting {where}.deliver_type")
        delivery_id, waybill_id = delivery.get("delivery_id"), delivery.get("waybill_id")
        if not isinstance(delivery_id, str) or not delivery_id:
            raise WeChatError(ERR_INVALID_ARGS, f"invalid args, delivery_id: expecting {where}.delivery_id")
        if not isinstance(waybill_id, str) or not waybill_id.strip():
            raise WeChatError(ERR_INVALID_ARGS, f"invalid args, waybill_id: expecting {where}.waybill_id")
        units = _units_of(delivery.get("product_infos"), where)
        parcels.append(_Parcel(delivery_id, waybill_id.strip(), units))
    return parcels


def _units_of(products: Any, where: str) -> dict[ListingKey, int]:
    """{(product_id, sku_id): count} of a request's ``product_infos`` (ids as numbers or digit strings)."""
    if not isinstance(products, list) or not products:
        raise WeChatError(ERR_INVALID_ARGS, f"invalid args, product_infos: expecting {where}.product_infos")
    units: dict[ListingKey, int] = {}
    for n, product in enumerate(products):
        item = f"{where}.product_infos[{n}]"
        if not isinstance(product, dict):
            raise WeChatError(47001, f"data format error: {item} must be an object")
        key = (
            _positive_id(product.get("product_id"), "product_id", f"{item}.product_id"),
            _positive_id(product.get("sku_id"), "sku_id", f"{item}.sku_id"),
        )
        count = product.get("product_cnt")
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            shown = 0 if count is None else count
            raise WeChatError(
                ERR_INVALID_ARGS,
                f"invalid args, product_cnt: expecting {item}.product_cnt > 0, actually {shown}",
            )
        units[key] = units.get(key, 0) + count
    return units


def _parcel_units(parcel: dict[str, Any]) -> dict[ListingKey, int]:
    """{(product_id, sku_id): count} of a parcel as ``order/get`` renders it."""
    units: dict[ListingKey, int] = {}
    for product in parcel["product_infos"]:
        key = (int(product["product_id"]), int(product["sku_id"]))
        units[key] = units.get(key, 0) + product["product_cnt"]
    return units


def _check_company(delivery_id: str) -> None:
    if delivery_id not in DELIVERY_COMPANIES and delivery_id != OTHER_CARRIER:
        raise WeChatError(ERR_UNKNOWN_COMPANY, "delivery_id不合法,请使用获取快递公司列表接口获取delivery_id")


def _check_companies(parcels: list[_Parcel]) -> None:
    for parcel in parcels:
        _check_company(parcel.delivery_id)


# --------------------------------------------------------------------------------------------------
# The mini-program shipping-info service
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    appid: str = SANDBOX_LOGIN,
    token_lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
    mini_program_appid: str = SANDBOX_MINI_PROGRAM_APPID,
) -> FastAPI:
    """The Channels shop simulator over ``world``; ``access_token`` is the shop's app secret the token
    endpoints check (the mini program's is ``mini_program_secret(access_token)``)."""
    if not access_token:
        raise ValueError("the app secret must not be empty")
    secrets = {appid: access_token, mini_program_appid: mini_program_secret(access_token)}
    renderer = WeChatChannelsRenderer(world)
    tokens = TokenStore(world, token_lifetime_seconds)
    quota = DailyQuota(world)
    codec = NextKeyCodec(hashlib.sha256(f"channelhub-wechat-next-key:{world.seed}".encode()).digest())
    stats = RequestStats(
        "api_requests",
        "token_requests",
        "stable_token_requests",
        "throttled",
        "quota_refused",
        "auth_refused",
        "deliveries",
        "delivery_updates",
        "stock_updates",
        "shipping_uploads",
    )
    count = stats.count
    serials = itertools.count(1)

    app = FastAPI(
        title="ChannelHub WeChat Channels shop sandbox", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer
    app.state.tokens = tokens
    app.state.quota = quota
    shipping: dict[int, ShippingRecord] = {}  # world index -> upload_shipping_info's record
    completed_payments: set[str] = set()  # transaction ids a test declared 交易完成 (not shippable)
    foreign_payments: set[str] = set()  # paid outside the mini program: its service does not know them
    app.state.shipping = shipping
    app.state.mini_program = (mini_program_appid, secrets[mini_program_appid])
    delivery_updates: list[dict[str, Any]] = []  # every accepted deliveryinfo/update (tests read it)
    app.state.delivery_updates = delivery_updates
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)

    def error(err: WeChatError) -> Response:
        return json_response(
            {
                "errcode": err.errcode,
                "errmsg": f"{err.errmsg} rid: {_rid(world.seed, next(serials), world.now_ts())}",
            }
        )

    def ok(body: dict[str, Any]) -> Response:
        return json_response({"errcode": 0, "errmsg": "ok", **body})

    @app.middleware("http")
    async def wechat_gateway(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if not request.url.path.startswith(("/channels/", "/wxa/")):
            return await call_next(request)
        count("api_requests")
        token = request.query_params.get("access_token", "")
        if faults.credentials_revoked:
            tokens.revoke_all()  # the app secret was reset: no token it issued is valid any more
        elif tokens.presented_before(token) and faults.roll(faults.token_expiry_rate):
            # Tokens expire (42001), or were replaced by a token fetched elsewhere (40001 "not latest").
            if faults.choose(("expired", "replaced")) == "expired":
                tokens.expire_all()
            else:
                tokens.revoke_all()
        try:  # channels/* is the shop's API, wxa/* the mini program's: each takes its own app's token
            tokens.check(token, mini_program_appid if request.url.path.startswith("/wxa/") else appid)
        except WeChatError as err:
            count("auth_refused")
            return error(err)
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if not quota.take():
            count("quota_refused")
            return error(WeChatError(45009, "reach max api daily quota limit"))
        if faults.roll(faults.rate_limit_storm):
            count("throttled")
            return error(WeChatError(45011, "api minute-quota reach limit  mustslower  retry next minute"))
        if faults.roll(faults.server_error_rate):
            status = faults.choose((200, 200, 502, 503))
            if status == 200:
                return error(WeChatError(-1, "system error"))
            page = f"<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center>"
            page += "</body></html>"
            return Response(page, status, media_type="text/html")
        response = await call_next(request)
        if response.status_code == 200 and faults.roll(faults.truncated_body_rate):
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            kept = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            return Response(body[: max(1, len(body) // 2)], 200, headers=kept)
        return response

    hold_back_answers(app, faults, ("/channels/", "/wxa/", "/cgi-bin/"))

    def app_of(grant_type: Any, app_id: Any, secret: Any) -> str:
        """The appid whose credentials these are, or the token endpoints' refusal."""
        if grant_type != "client_credential":
            raise WeChatError(40002, "invalid grant_type")
        if not isinstance(app_id, str) or app_id not in secrets:
            raise WeChatError(40013, "invalid appid")
        given = secret.encode() if isinstance(secret, str) else b""
        if faults.credentials_revoked or not hmac.compare_digest(given, secrets[app_id].encode()):
            raise WeChatError(40125, "invalid appsecret")
        return app_id

    @app.get("/cgi-bin/token")
    def get_token(request: Request) -> Response:
        """The old token endpoint: every call replaces the appid's token (the previous one lives 5 min)."""
        count("token_requests")
        params = request.query_params
        try:
            app_id = app_of(params.get("grant_type"), params.get("appid"), params.get("secret"))
        except WeChatError as err:
            return error(err)
        token, expires_in = tokens.issue(app_id)
        return json_response({"access_token": token, "expires_in": expires_in})

    @app.post("/cgi-bin/stable_token")
    async def get_stable_token(request: Request) -> Response:
        """POST JSON only: {grant_type, appid, secret, force_refresh (default false)}."""
        count("token_requests")
        count("stable_token_requests")
        try:
            body = await json_body(request)
            app_id = app_of(body.get("grant_type"), body.get("appid"), body.get("secret"))
            force = body.get("force_refresh", False)
            if not isinstance(force, bool):
                raise WeChatError(47001, "data format error: force_refresh must be a boolean")
            token, expires_in = tokens.stable(app_id, force=force)
        except WeChatError as err:
            return error(err)
        return json_response({"access_token": token, "expires_in": expires_in})

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            raise WeChatError(44002, "empty post data")
        try:
            body = json.loads(raw)
        except ValueError:
            raise WeChatError(47001, "data format error") from None
        if not isinstance(body, dict):
            raise WeChatError(47001, "data format error")
        return body

    @app.post("/channels/ec/order/list/get")
    async def list_orders(request: Request) -> Response:
        faults.step_clock(world.clock)
        try:
            body = await json_body(request)
            created = _time_range(body, "create_time_range")
            updated = _time_range(body, "update_time_range")
            if created is None and updated is None:
                raise WeChatError(40097, "invalid args: create_time_range or update_time_range is required")
            page_size = _int_field(body, "page_size")
            page_size = DEFAULT_PAGE_SIZE if page_size is None else page_size
            if not 1 <= page_size <= MAX_PAGE_SIZE:
                raise WeChatError(40097, f"invalid args: page_size must be within 1..{MAX_PAGE_SIZE}")
            status = _int_field(body, "status")
            if status is not None and status not in KNOWN_STATUSES:
                raise WeChatError(40097, "invalid args: status")
            openid = body.get("openid") or None
            filters_digest = hashlib.sha256(
                json.dumps([created, updated, status, openid]).encode()
            ).hexdigest()[:16]
            next_key = body.get("next_key") or ""
            if not isinstance(next_key, str):
                raise WeChatError(47001, "data format error: next_key must be a string")
            after = codec.decode(next_key, filters_digest) if next_key else -1
        except WeChatError as err:
            return error(err)
        # A lagging cache: the answer to the previous next_key again (with that answer's next_key).
        listing = ServedPages.key([filters_digest, page_size])
        if (replayed := served.replay(listing, next_key, first=not next_key)) is not None:
            return ok(replayed)

        now_ts = world.now_ts()
        predicate = None
        if status is not None or openid is not None:

            def predicate(state: OrderState | None) -> bool:
                if state is None:
                    return False
                if status is not None and renderer.status(state) != status:
                    return False
                return openid is None or renderer.openid(state.index, state.order.customer) == openid

        query = OrderQuery(
            created_min=created[0] if created else None,
            created_max=created[1] if created else None,
            updated_min=updated[0] if updated else None,
            updated_max=updated[1] if updated else None,
            min_index=after + 1,
            predicate=predicate,
        )
        page = list(itertools.islice(world.scan(query, now_ts), page_size + 1))
        has_more = len(page) > page_size
        page = page[:page_size]
        last = page[-1] if page else after
        answer = {
            "order_id_list": [renderer.order_id(index) for index in faults.shuffled(page)],
            "next_key": codec.encode(filters_digest, last),  # from the sorted page, shuffled or not
            "has_more": has_more,
        }
        served.remember(listing, next_key, answer)
        return ok(answer)

    @app.post("/channels/ec/order/get")
    async def get_order(request: Request) -> Response:
        try:
            body = await json_body(request)
            raw_id = body.get("order_id")
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
                raise WeChatError(40097, "invalid args: order_id")
            index = renderer.index_of(str(raw_id))
            state = world.state(index, world.now_ts()) if index is not None else None
            if state is None:
                raise WeChatError(100002, "order not exist")  # [U] code not confirmed
        except WeChatError as err:
            return error(err)
        return ok({"order": renderer.render(state, malformed=faults.order_is_malformed(state.index))})

    @app.post("/channels/ec/aftersale/getaftersaleorder")
    async def get_aftersale_order(request: Request) -> Response:
        try:
            body = await json_body(request)
            raw_id = body.get("after_sale_order_id")
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
                raise WeChatError(ERR_INVALID_ARGS, "invalid args, after_sale_order_id")
            key = renderer.aftersale_key(str(raw_id))
            state = world.state(key[0], world.now_ts()) if key is not None else None
            listed = renderer.aftersales(state) if state is not None else []
            found = [a for a in listed if a["after_sale_order_id"] == str(raw_id)]
            if not found:
                raise WeChatError(ERR_AFTERSALE_NOT_FOUND, "aftersale order not exist")
        except WeChatError as err:
            return error(err)
        return ok({"after_sale_order": found[0]})

    push_lock = threading.Lock()  # a check and the record it allows happen as one step

    def order_state(body: dict[str, Any]) -> OrderState:
        raw_id = body.get("order_id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
            raise WeChatError(ERR_INVALID_ARGS, "invalid args, order_id")
        index = renderer.index_of(str(raw_id))
        state = world.state(index, world.now_ts()) if index is not None else None
        if state is None:
            raise WeChatError(100002, "order not exist")  # [U] as order/get
        return state

    def listing_products(state: OrderState) -> dict[ListingKey, _Product]:
        keyed = {}
        for product in renderer.products(state):
            listing = product.variant.listing(renderer.platform)
            keyed[(listing.product_id, listing.variant_id)] = product
        return keyed

    def allocate(state: OrderState, parcels: list[_Parcel]) -> list[tuple[tuple[int, int], ...]]:
        """World (line index, quantity) pairs per parcel, or the platform's refusal."""
        products = listing_products(state)
        for parcel in parcels:
            if any(key not in products for key in parcel.units):
                raise WeChatError(ERR_WRONG_PRODUCT, ", 发货请求里product_id或sku_id填写不正确")
        status = renderer.status(state)
        if status == STATUS_UNPAID:
            raise WeChatError(ERR_DELIVERY_FAILED, "发货失败, 订单未支付, 不能发货")
        if state.cancelled:
            raise WeChatError(ERR_DELIVERY_FAILED, "发货失败, 订单已取消, 不能发货")
        open_units = {i: state.fulfillable(i) for i in range(len(state.order.lines))}
        requested: dict[ListingKey, int] = {}
        for parcel in parcels:
            for key, count in parcel.units.items():
                requested[key] = requested.get(key, 0) + count
        remaining = {key: sum(open_units[i] for i in products[key].line_indices) for key in requested}
        shipped = {key: sum(state.shipped[i] for i in products[key].line_indices) for key in requested}
        if all(remaining[key] == 0 and shipped[key] > 0 for key in requested):
            raise WeChatError(ERR_ALREADY_SHIPPED, "已经发货")
        for key, count in requested.items():
            if count > remaining[key]:
                raise WeChatError(
                    ERR_DELIVERY_FAILED,
                    f"发货失败, 商品发货数量超过待发货数量 product_id={key[0]} sku_id={key[1]} "
                    f"product_cnt={count} 待发货={remaining[key]}",
                )
        allocations = []
        for parcel in parcels:
            lines: list[tuple[int, int]] = []
            for key, count in parcel.units.items():
                for line_index in products[key].line_indices:  # one SKU on two lines: fill them in order
                    take = min(count, open_units[line_index])
                    if take > 0:
                        lines.append((line_index, take))
                        open_units[line_index] -= take
                        count -= take
            allocations.append(tuple(lines))
        return allocations

    def company_list() -> Response:
        return ok(
            {
                "company_list": [
                    {"delivery_id": delivery_id, "delivery_name": name}
                    for delivery_id, name in DELIVERY_COMPANIES.items()
                ]
            }
        )

    @app.post("/channels/ec/order/deliverycompanylist/new/get")
    async def delivery_companies(request: Request) -> Response:
        """The current list: ``ewaybill_only`` (boolean) is required."""
        try:
            body = await json_body(request)
            if not isinstance(body.get("ewaybill_only"), bool):
                raise WeChatError(ERR_INVALID_ARGS, "invalid args, ewaybill_only: expecting a boolean")
        except WeChatError as err:
            return error(err)
        return company_list()

    @app.post("/channels/ec/order/deliverycompanylist/get")
    async def delivery_companies_old(request: Request) -> Response:
        """The old list (旧 in the docs), an empty JSON body: the same table here."""
        try:
            await json_body(request)
        except WeChatError as err:
            return error(err)
        return company_list()

    @app.post("/channels/ec/order/delivery/send")
    async def send_delivery(request: Request) -> Response:
        try:
            body = await json_body(request)
            with push_lock:
                state = order_state(body)
                parcels = _parse_delivery_list(body)
                _check_companies(parcels)
                allocations = allocate(state, parcels)
                at = int(world.now_ts())
                for parcel, lines in zip(parcels, allocations, strict=True):
                    world.overlay.record_fulfillment(
                        state.index,
                        at,
                        lines=lines,
                        tracking_company=parcel.delivery_id,
                        tracking_number=parcel.waybill_id,
                        tracking_url="",
                    )
                count("deliveries")
        except WeChatError as err:
            return error(err)
        return ok({})

    @app.post("/channels/ec/order/deliveryinfo/update")
    async def update_delivery(request: Request) -> Response:
        """Change parcels' carrier/waybill (current doc): ``change_infos [{old, new}]`` one parcel at a time
        (split parcels too), or ``delivery_list`` for an order shipped in one parcel; at most three changes
        while the order is not completed; the goods of a parcel do not change."""
        try:
            body = await json_body(request)
            with push_lock:
                state = order_state(body)
                status = renderer.status(state)
                if status not in (STATUS_PARTLY_SHIPPED, STATUS_SHIPPED):
                    raise WeChatError(ERR_STATUS_NO_DELIVERY, "当前订单状态不允许发货,请检查订单状态")
                current = {
                    parcel["waybill_id"]: (parcel, fulfillment)
                    for parcel, fulfillment in zip(
                        renderer.render(state)["order_detail"]["delivery_info"]["delivery_product_info"],
                        state.fulfillments,
                        strict=True,
                    )
                }
                changes = _parse_delivery_changes(body, current, state)
                done = sum(
                    len(c) for (index, _), c in renderer.delivery_changes.items() if index == state.index
                )
                if done + len(changes) > MAX_DELIVERY_UPDATES:
                    raise WeChatError(ERR_UPDATES_EXHAUSTED, "修改物流次数已达上限")
                at = int(world.now_ts())
                for seq, old, new in changes:
                    renderer.delivery_changes.setdefault((state.index, seq), []).append(
                        _DeliveryChange(at, new[0], new[1])
                    )
                    delivery_updates.append(
                        {"order_id": renderer.order_id(state.index), "old": old, "new": new, "at": at}
                    )
                # An event without a parcel: the fold ignores it but the order's update_time moves.
                world.overlay.add_order_event(state.index, Event(at, "fulfilled"))
                count("delivery_updates")
        except WeChatError as err:
            return error(err)
        return ok({})

    def _parse_delivery_changes(
        body: dict[str, Any], current: dict[str, tuple[dict[str, Any], Any]], state: OrderState
    ) -> list[tuple[int, tuple[str, str], tuple[str, str]]]:
        """(parcel seq, (old delivery_id, waybill), (new delivery_id, waybill)) per requested change."""
        change_infos, whole = body.get("change_infos"), body.get("delivery_list")
        if change_infos is None and whole is not None:  # the whole order in one parcel
            if len(current) != 1:
                raise WeChatError(ERR_SPLIT_NO_UPDATE, "拆单发货暂不支持修改物流")
            [(old_parcel, fulfillment)] = current.values()
            parcels = _parse_delivery_list(body)
            if len(parcels) != 1:
                raise WeChatError(ERR_SPLIT_NO_UPDATE, "拆单发货暂不支持修改物流")
            parcel = parcels[0]
            if parcel.units != _parcel_units(old_parcel):
                raise WeChatError(ERR_UPDATE_GOODS, "商品信息有误,请检查商品id,商品数量是否正确")
            _check_company(parcel.delivery_id)
            old = (old_parcel["delivery_id"], old_parcel["waybill_id"])
            return [(fulfillment.seq, old, (parcel.delivery_id, parcel.waybill_id))]
        if not isinstance(change_infos, list) or not change_infos:
            raise WeChatError(ERR_INVALID_ARGS, "invalid args, change_infos: expecting a non-empty array")
        changes = []
        for n, change in enumerate(change_infos):
            where = f"change_infos[{n}]"
            if not isinstance(change, dict) or not all(
                isinstance(change.get(k), dict) for k in ("old", "new")
            ):
                raise WeChatError(47001, f"data format error: {where} needs objects old and new")
            old, new = change["old"], change["new"]
            found = current.get(old.get("waybill_id")) if isinstance(old.get("waybill_id"), str) else None
            if found is None or found[0]["delivery_id"] != old.get("delivery_id"):
                raise WeChatError(ERR_INVALID_ARGS, f"invalid args, {where}.old: no such parcel on the order")
            old_parcel, fulfillment = found
            goods = _parcel_units(old_parcel)
            if (
                _units_of(old.get("product_infos"), f"{where}.old") != goods
                or _units_of(new.get("product_infos"), f"{where}.new") != goods
            ):
                raise WeChatError(ERR_UPDATE_GOODS, "商品信息有误,请检查商品id,商品数量是否正确")
            delivery_id, waybill_id = new.get("delivery_id"), new.get("waybill_id")
            if not isinstance(delivery_id, str) or not delivery_id:
                raise WeChatError(
                    ERR_INVALID_ARGS, f"invalid args, delivery_id: expecting {where}.new.delivery_id"
                )
            _check_company(delivery_id)
            if not isinstance(waybill_id, str) or not waybill_id.strip():
                raise WeChatError(ERR_BAD_WAYBILL, "waybill_id不合法,请检查waybill_id是否填写有误")
            changes.append(
                (fulfillment.seq, (old["delivery_id"], old["waybill_id"]), (delivery_id, waybill_id.strip()))
            )
        return changes

    def stock_variant(body: dict[str, Any]) -> Variant:
        product_id = _positive_id(body.get("product_id"), "product_id", "product_id")
        sku_id = _positive_id(body.get("sku_id"), "sku_id", "sku_id")
        variant = world.catalog.by_channel_variant(renderer.platform, sku_id)
        if variant is None or variant.listing(renderer.platform).product_id != product_id:
            raise WeChatError(
                ERR_PRODUCT_NOT_FOUND, f"product not exist product_id={product_id} sku_id={sku_id}"
            )
        return variant

    def stock_level(variant: Variant, location_id: int) -> int:
        default = variant.opening_stock if location_id == 0 else 0
        return world.overlay.stock_levels.get((renderer.platform, variant.index, location_id), default)

    async def update_stock(request: Request, *, regional: bool) -> Response:
        try:
            body = await json_body(request)
            with push_lock:
                variant = stock_variant(body)
                location_id = 0
                if regional:
                    warehouse = body.get("out_warehouse_id")
                    if not isinstance(warehouse, str) or not warehouse:
                        raise WeChatError(ERR_INVALID_ARGS, "invalid args, out_warehouse_id")
                    if warehouse not in WAREHOUSES:
                        raise WeChatError(
                            ERR_WAREHOUSE_NOT_FOUND, f"warehouse not exist out_warehouse_id={warehouse}"
                        )
                    location_id = WAREHOUSES[warehouse]
                diff_type, num = _int_field(body, "diff_type"), _int_field(body, "num")
                if diff_type not in (1, 2, 3):
                    raise WeChatError(ERR_INVALID_ARGS, "invalid args, diff_type: expecting 1, 2 or 3")
                if num is None or not 0 <= num <= MAX_STOCK_NUM:
                    raise WeChatError(ERR_INVALID_ARGS, f"invalid args, num: expecting 0..{MAX_STOCK_NUM}")
                current = stock_level(variant, location_id)
                level = {1: current + num, 2: current - num, 3: num}[diff_type]
                if level < 0:
                    raise WeChatError(ERR_STOCK_NOT_ENOUGH, f"stock not enough: {current} < {num}")
                if level > MAX_STOCK_NUM:
                    raise WeChatError(ERR_INVALID_ARGS, f"invalid args, num: stock over {MAX_STOCK_NUM}")
                world.overlay.record_stock_set(
                    renderer.platform, variant.index, location_id, level, int(world.now_ts())
                )
                count("stock_updates")
        except WeChatError as err:
            return error(err)
        return ok({})

    @app.post("/channels/ec/product/stock/update")
    async def product_stock_update(request: Request) -> Response:
        return await update_stock(request, regional=False)

    @app.post("/channels/ec/warehouse/stock/update")
    async def warehouse_stock_update(request: Request) -> Response:
        return await update_stock(request, regional=True)

    @app.post("/channels/ec/product/stock/get")
    async def product_stock_get(request: Request) -> Response:
        try:
            variant = stock_variant(await json_body(request))
        except WeChatError as err:
            return error(err)
        normal = stock_level(variant, 0)
        regional = [
            {"out_warehouse_id": warehouse, "num": stock_level(variant, location_id)}
            for warehouse, location_id in WAREHOUSES.items()
            if (renderer.platform, variant.index, location_id) in world.overlay.stock_levels
        ]
        return ok(
            {
                "data": {
                    "normal_stock_num": normal,
                    "limited_discount_stock_num": 0,
                    "warehouse_stocks": regional,
                    "total_stock_num": normal + sum(w["num"] for w in regional),
                }
            }
        )

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

    @app.get("/_sandbox/wechat")
    def get_wechat_settings() -> Response:
        return json_response(wechat_settings())

    @app.post("/_sandbox/wechat")
    async def set_wechat_settings(request: Request) -> Response:
        """Body: any of {"token_lifetime_seconds": n, "daily_quota": n | null, "expire_tokens": true,
        "distrust_tokens": true, "reset_quota": true, "complete_payments": [transaction_id, ...]}.
        ``distrust_tokens``: calls refuse every live token (40001) while stable_token's normal mode still
        hands them out, so only a force_refresh helps. ``complete_payments`` marks payment orders 交易完成,
        which the shipping-info service refuses with 10060004; ``foreign_payments`` are Channels payments
        not made in the mini program (its service answers 10060001 for them)."""
        try:
            changes = await request.json()
            allowed = {
                "token_lifetime_seconds",
                "daily_quota",
                "expire_tokens",
                "distrust_tokens",
                "reset_quota",
                "complete_payments",
                "foreign_payments",
            }
            if not isinstance(changes, dict) or set(changes) - allowed:
                raise ValueError(f"send a JSON object with any of {sorted(allowed)}")
            if "token_lifetime_seconds" in changes:
                lifetime = int(changes["token_lifetime_seconds"])
                if lifetime < 1:
                    raise ValueError("token_lifetime_seconds must be >= 1")
                tokens.lifetime_seconds = lifetime
            if "daily_quota" in changes:
                limit = changes["daily_quota"]
                quota.limit = None if limit is None else int(limit)
            if changes.get("expire_tokens"):
                tokens.expire_all()
            if changes.get("distrust_tokens"):
                tokens.distrust_all()
            if changes.get("reset_quota"):
                quota.reset()
            for name, payments in (
                ("complete_payments", completed_payments),
                ("foreign_payments", foreign_payments),
            ):
                ids = changes.get(name, [])
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise ValueError(f"{name} must be a list of transaction ids")
                payments.update(ids)
        except (TypeError, ValueError) as err:
            return json_response({"errors": str(err)}, 400)
        return json_response(wechat_settings())

    def wechat_settings() -> dict[str, Any]:
        return {
            "appid": appid,
            "token_lifetime_seconds": tokens.lifetime_seconds,
            "tokens_issued": tokens.issued,
            "stable_tokens_issued": tokens.stable_issued,
            "force_refreshes": tokens.force_refreshes,
            "mini_program_appid": mini_program_appid,
            "daily_quota": quota.limit,
        }

    add_admin_routes(
        app,
        platform="wechat_channels",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {"wechat": wechat_settings(), "currency": "CNY"},
    )
    return app
