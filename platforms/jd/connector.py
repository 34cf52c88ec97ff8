"""JD 京东 POP (JOS) as a declaration: one router, the signed gateway auth, the order search, and the few
hooks the API needs (de-duplication by orderId, one order by id). Pushes are in ``pushes.py``.

Wire facts, each with its source and what is unconfirmed, are in platforms/jd/NOTES.md. In short:
- Every call is ``https://api.jd.com/routerjson`` with ``method``, ``app_key``, ``access_token``,
  ``timestamp`` (Beijing wall time ``yyyy-MM-dd HH:mm:ss``), ``v=2.0``, the business parameters as one
  JSON text in ``360buy_param_json``, and ``sign`` = upper-case MD5 of ``secret + k1v1k2v2... + secret``
  over the sorted parameters (``connectors.gateway.SignedGatewayAuth``). The shop's access_token is
  granted for a long time: a static credential, like a Shopify admin token.
- Errors come with HTTP 200: ``{"error_response": {"code", "zh_desc", "en_desc"}}`` from the gateway (19
  invalid or expired access_token, 21 invalid app_key: both ``AuthError``; a throttle code, configurable),
  and business refusals inside the method's own ``jingdong_<method>_responce`` (JD's spelling) envelope.
- ``jingdong.pop.order.search``: ``start_date``/``end_date`` Beijing time, ``dateType`` 0 = modified time
  (JD's default), at most one month apart (split at 28 days: no month is shorter); ``order_state`` a comma
  list, ``optional_fields`` required; ``page`` from 1, ``page_size`` at most 100; ``sortType`` 1 = newest
  first; the answer's ``searchorderinfo_result`` holds ``orderInfoList`` and ``orderTotal``. Pages are read
  last to first (an order updated while we page leaves the window and would shift an unread one onto a page
  already read in a forward walk), de-duplicated by orderId (a later copy passes when its ``modified`` is
  newer); a walk that brings back fewer orders than ``orderTotal`` is walked again by the framework.
- JD lists paid orders only (an online-payment order appears once paid): no ``WAIT_BUYER_PAY`` state exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.auth import Secret
from connectors.errors import ApiError
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.gateway import SignedGatewayAuth
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RequestRateThrottle
from connectors.paginators import PageNumberPaginator, newest_copies
from connectors.tokens import TokenStore
from connectors.windows import CHINA_WALL_TIME, WindowSpec
from platforms.jd.pushes import JdPushes

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

MAX_PAGE_SIZE = 100  # "每页的条数（最大page_size 100条）"
MAX_WINDOW = timedelta(days=28)  # "不得相差超过1个月": 28 days fit in every month
DEFAULT_REQUESTS_PER_SECOND = 10.0  # [U] JOS limits per app and API; no public number
DEFAULT_THROTTLE_CODES = frozenset({"67"})  # [U] the sandbox's; a connection may name its own
# Invalid access_token, invalid app_key [S]; an invalid signature [U: the sandbox's code], which a correct
# client only meets with a wrong app_secret: credentials, never worth a retry.
AUTH_CODES = frozenset({"19", "21", "18"})
ROUTER = "/routerjson"  # every method at one path of the host (https://api.jd.com/routerjson)
SEARCH = "jingdong_pop_order_search_responce"
GET = "jingdong_pop_order_get_responce"
# Every state a POP order can be in, so the search misses none (a missing order_state is refused).
ORDER_STATES = (
    "WAIT_SELLER_STOCK_OUT,WAIT_SELLER_DELIVERY,WAIT_GOODS_RECEIVE_CONFIRM,FINISHED_L,TRADE_CANCELED,"
    "LOCKED,PAUSE,POP_ORDER_PAUSE"
)
OPTIONAL_FIELDS = (
    "orderId,venderId,orderType,payType,orderTotalPrice,orderSellerPrice,orderPayment,freightPrice,"
    "sellerDiscount,balanceUsed,orderState,orderStateRemark,orderRemark,orderStartTime,orderEndTime,"
    "modified,paymentConfirmTime,consigneeInfo,itemInfoList,couponDetailList,waybill,logisticsId,pin,"
    "returnOrder"
)


def _errors(throttle_codes: frozenset[str]) -> ErrorPolicy:
    # The method's own envelope carries ``code`` "0" on success; its result object an ``apiResult`` (reads)
    # or a ``success`` flag with ``code``/``chineseErr`` (writes). Any shape that finds another code fails.
    shapes = [ErrorShape("error_response.code", "error_response.zh_desc")]
    for envelope, result in (
        (SEARCH, "searchorderinfo_result.apiResult"),
        (GET, "orderDetailInfo.apiResult"),
        ("jingdong_pop_order_shipment_responce", "sopjosshipment_result"),
        ("jingdong_stock_write_updateSkuStock_responce", None),
        ("jingdong_sku_read_findSkuById_responce", None),
    ):
        shapes.append(ErrorShape(f"{envelope}.code", f"{envelope}.zh_desc"))
        if result is not None:
            shapes.append(ErrorShape(f"{envelope}.{result}.code", f"{envelope}.{result}.chineseErr"))
    return ErrorPolicy(
        shapes=tuple(shapes),
        rate_limit=RateLimitSignal(statuses=frozenset({429}), body_codes=throttle_codes),
        auth_codes=AUTH_CODES,
        request_id_header=None,
    )


def _call(method: str, **params: Any) -> Endpoint:
    return Endpoint(ROUTER, method="GET", params={"method": method, **params}, idempotent=True)


JD = PlatformSpec(
    name="jd",
    auth=SignedGatewayAuth(
        app_key_param="app_key",
        token_param="access_token",
        algorithm="md5",
        sign_method_param=None,  # JOS has one method and no parameter for it
        static_params={"v": "2.0"},
        json_param="360buy_param_json",
    ),
    errors=_errors(DEFAULT_THROTTLE_CODES),
    throttle=lambda: RequestRateThrottle(DEFAULT_REQUESTS_PER_SECOND),
    endpoints={
        "orders": Endpoint(
            ROUTER,
            params={
                "method": "jingdong.pop.order.search",
                "order_state": ORDER_STATES,
                "optional_fields": OPTIONAL_FIELDS,
                "dateType": 0,  # modified time (status or waybill changes)
                "sortType": 1,  # newest first
            },
            idempotent=True,
            records_path=f"{SEARCH}.searchorderinfo_result.orderInfoList",
            missing_records_mean_empty=True,  # checked only after the envelope's codes said success
            record_key="orderId",
            paginator=PageNumberPaginator(
                "page",
                "page_size",
                MAX_PAGE_SIZE,
                total_results_path=f"{SEARCH}.searchorderinfo_result.orderTotal",
                backwards=True,
            ),
            window=WindowSpec("start_date", "end_date", CHINA_WALL_TIME, max_span=MAX_WINDOW),
        ),
        "order": replace(
            _call("jingdong.pop.order.get", optional_fields=OPTIONAL_FIELDS),
            records_path=f"{GET}.orderDetailInfo.orderInfo",
        ),
        "ship": replace(
            _call("jingdong.pop.order.shipment"),
            method="POST",
            idempotent=False,  # a replay after a lost answer is refused as already shipped at best
            records_path="jingdong_pop_order_shipment_responce.sopjosshipment_result",
        ),
        "set_stock": replace(
            _call("jingdong.stock.write.updateSkuStock"),
            method="POST",  # a full set: replaying it sets the same level
            records_path="jingdong_stock_write_updateSkuStock_responce",
        ),
        "sku": replace(
            _call("jingdong.sku.read.findSkuById", field="skuId,wareId,outerId,stockNum"),
            records_path="jingdong_sku_read_findSkuById_responce.sku",
        ),
    },
)


def _modified(record: Any) -> str:
    """``modified`` ("yyyy-MM-dd HH:mm:ss", Beijing time: compares as text), "" if absent."""
    value = record.get("modified") if isinstance(record, dict) else None
    return value if isinstance(value, str) else ""


def _listed_version(record: Any) -> tuple[str, str] | None:
    """orderId and ``modified``; None (passed on as it is) for a record without an orderId."""
    order_id = record.get("orderId") if isinstance(record, dict) else None
    return (order_id, _modified(record)) if isinstance(order_id, str) else None


class JdConnector(JdPushes, Connector):
    spec = JD

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Orders modified in the window, last page first; each orderId once unless a later copy is newer."""
        yield from newest_copies(self.fetch_pages("orders", window_start, window_end), _listed_version)

    def get_order(self, order_id: str) -> dict[str, Any]:
        """One order by id (``jingdong.pop.order.get``), in the shape the search lists it."""
        if not isinstance(order_id, str) or not order_id.isdigit():
            raise ValueError(f"a JD orderId is numeric, got {order_id!r}")
        value = self.get("order", params={"order_id": order_id})
        if not isinstance(value, dict):
            raise ApiError(f"jingdong.pop.order.get answered no order for {order_id}", platform=self.platform)
        return value


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> JdConnector:
    """The connector of a configured channel: the connection's login is the app_key, its password the
    app_secret, ``extra.access_token`` the shop's token (a secret: never logged);
    ``extra.throttle_codes`` and ``extra.requests_per_second`` are optional."""
    extra = credentials.extra
    if not credentials.login:
        raise ValueError(f"connection {credentials.conn_id!r}: set the JD app_key as its login")
    token = extra.get("access_token")
    if not token:
        raise ValueError(f"connection {credentials.conn_id!r}: set the shop's token as extra.access_token")
    spec = JD
    codes = extra.get("throttle_codes")
    page_size = min(max(channel.page_size, 1), MAX_PAGE_SIZE)
    if codes is not None or page_size != MAX_PAGE_SIZE:
        throttle = frozenset(str(c) for c in codes) if codes is not None else DEFAULT_THROTTLE_CODES
        spec = replace(JD.with_page_size("orders", page_size), errors=_errors(throttle))
    return JdConnector.connect(
        credentials.base_url,
        {"app_key": credentials.login, "app_secret": credentials.secret, "access_token": Secret(str(token))},
        timeout=channel.http_timeout,
        throttle=RequestRateThrottle(float(extra.get("requests_per_second", DEFAULT_REQUESTS_PER_SECOND))),
        token_store=token_store,
        spec=spec,
    )
