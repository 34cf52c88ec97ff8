"""What every part of the WeChat Channels sandbox shares: the sandbox's ids, statuses and carriers, the
errcodes, ``WeChatError``, request ids, JSON bodies and ``ok`` answers."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from sandbox.admin import json_response

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


class WeChatError(Exception):
    """An errcode answer (always HTTP 200 on WeChat)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def _fen(amount: Decimal) -> int:
    return int((amount * FEN).to_integral_value())


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


def ok(body: dict[str, Any]) -> Response:
    return json_response({"errcode": 0, "errmsg": "ok", **body})


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
