"""Taobao TOP as a declaration: one signed gateway, the increment listing, the trade detail, and the pushes
(``pushes.py``). Wire facts and their sources: ``NOTES.md``.

- Every call is ``/router/rest`` with ``method``, ``app_key``, ``session`` (the seller's key), ``timestamp``
  (Beijing time), ``v=2.0``, ``format=json``, ``sign_method=md5`` and ``sign`` over the sorted parameters
  (``connectors.gateway.SignedGatewayAuth``). Reads are GET, writes POST (both carry the parameters in the
  query string, which TOP accepts).
- Errors come with HTTP 200: ``{"error_response": {"code", "msg", "sub_code", "sub_msg", "request_id"}}``.
  The platform ``code`` is the error's code, except 15/40/41/50 whose ``sub_code`` says what went wrong
  (``isv.*`` a business refusal, ``isp.*`` the platform's own trouble): 7 is throttling (wait the ban's
  seconds, then retry), 11/12/25-29 credentials (``AuthError``), 10 and the ``isp.*`` codes are retried.
- ``taobao.trades.sold.increment.get`` lists trades modified in ``[start_modified, end_modified]`` (at most
  one day apart: windows are split at a day), newest first, so pages are read from the last to the first
  (a trade modified while we page can then only come twice, never be skipped). ``total_results`` is asked
  for (``use_has_next=false``): a backwards walk needs the page count, and the total lets the framework notice
  a walk that came back short. Each listed trade is then read whole with ``taobao.trade.fullinfo.get``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.auth import Secret
from connectors.errors import ApiError
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.gateway import SignedGatewayAuth
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RequestRateThrottle, dig
from connectors.paginators import PageNumberPaginator, newest_copies
from connectors.windows import CHINA_WALL_TIME, WindowSpec
from platforms.taobao.pushes import TaobaoPushes

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials
    from connectors.tokens import TokenStore

GATEWAY = "/router/rest"
MAX_PAGE_SIZE = 100
DEFAULT_REQUESTS_PER_SECOND = 20.0  # [U] TOP's per-app flow control is per API and not published
LIST_FIELDS = "tid,modified,status"  # the listing only names trades; the detail call reads them whole
DETAIL_FIELDS = ",".join(
    (
        "tid,tid_str,status,type,created,modified,pay_time,consign_time,end_time",
        "payment,total_fee,post_fee,discount_fee,adjust_fee,received_payment",
        "buyer_nick,buyer_open_uid,buyer_message,shipping_type",
        "receiver_name,receiver_state,receiver_city,receiver_district,receiver_town,receiver_address",
        "receiver_zip,receiver_mobile,receiver_phone,receiver_country",
        "orders,promotion_details",
    )
)
# Codes whose sub code is the error: 15 remote service error (``isv.*`` business, ``isp.*`` platform), 40/41
# missing / invalid arguments, 50 (older remote service error) [S].
DETAILED_CODES = frozenset({"15", "40", "41", "50"})
# Throttling: code 7 "App Call Limited" and its flow-control sub codes [S: TOP error page, community].
THROTTLE_CODES = frozenset(
    {
        "7",
        "accesscontrol.limited-by-app-access-count",
        "accesscontrol.limited-by-api-access-count",
        "accesscontrol.limited-by-app-api-access-count",
    }
)
# The seller's session or the app's key refused: refreshing cannot help (the session is not short-lived).
AUTH_CODES = frozenset({"11", "12", "25", "26", "27", "28", "29", "invalid-sessionkey"})
# The platform's own trouble (``isp.*``, 10 "Service Currently Unavailable"): retry.
TRANSIENT_CODES = frozenset(
    {
        "10",
        "isp.top-remote-connection-timeout",
        "isp.top-remote-connection-error",
        "isp.top-remote-service-unavailable",
        "isp.remote-service-error",
        "isp.remote-service-timeout",
        "isp.unknown-error",
        "isv.logistics-offline-service-error:B150",  # "发货异常，请稍等后重试" [S]
        "isv.logistics-offline-service-error:S01",  # "数据异常，稍后请重试" [S]
        "isp.logistics-online-service-error:S01",
    }
)
_BAN_SECONDS = re.compile(r"(\d+)\s*more\s*seconds?")


def _ban_seconds(body: Any) -> float | None:
    """How long TOP's flow control says the ban lasts ("This ban will last for 3 more seconds")."""
    text = dig(body, "error_response.sub_msg")
    found = _BAN_SECONDS.search(text) if isinstance(text, str) else None
    return float(found.group(1)) if found else None


def _call(method: str, **params: Any) -> dict[str, Any]:
    return {"method": method, **params}


TAOBAO = PlatformSpec(
    name="taobao",
    auth=SignedGatewayAuth(
        app_key_param="app_key",
        token_param="session",
        algorithm="md5",
        static_params={"v": "2.0", "format": "json"},
    ),
    errors=ErrorPolicy(
        shapes=(
            # The platform's own code says it all (7 throttled, 27 session, 10 unavailable), except for the
            # codes whose sub code tells what went wrong: those read on to the sub code, then to the code.
            ErrorShape("error_response.code", "error_response.msg", ok_codes=DETAILED_CODES),
            ErrorShape("error_response.sub_code", "error_response.sub_msg"),
            ErrorShape("error_response.code", "error_response.msg"),
        ),
        rate_limit=RateLimitSignal(
            statuses=frozenset({429}), body_codes=THROTTLE_CODES, retry_after_from_body=_ban_seconds
        ),
        auth_codes=AUTH_CODES,
        transient_codes=TRANSIENT_CODES,
        request_id_header=None,
        request_id_path="error_response.request_id",
    ),
    throttle=lambda: RequestRateThrottle(DEFAULT_REQUESTS_PER_SECOND),
    endpoints={
        "orders": Endpoint(
            GATEWAY,
            params=_call("taobao.trades.sold.increment.get", fields=LIST_FIELDS, use_has_next=False),
            records_path="trades_sold_increment_get_response.trades.trade",
            missing_records_mean_empty=True,  # an empty window answers total_results 0 and no trades
            record_key="tid",
            paginator=PageNumberPaginator(
                "page_no",
                "page_size",
                MAX_PAGE_SIZE,
                total_results_path="trades_sold_increment_get_response.total_results",
                has_more_path="trades_sold_increment_get_response.has_next",
                backwards=True,
            ),
            window=WindowSpec("start_modified", "end_modified", CHINA_WALL_TIME, max_span=timedelta(days=1)),
        ),
        "order": Endpoint(
            GATEWAY,
            params=_call("taobao.trade.fullinfo.get", fields=DETAIL_FIELDS),
            records_path="trade_fullinfo_get_response.trade",
        ),
        "ship": Endpoint(
            GATEWAY,
            method="POST",
            params=_call("taobao.logistics.offline.send"),
            records_path="logistics_offline_send_response.shipping",
            idempotent=False,  # a replay would at best be refused as already shipped
        ),
        "resend": Endpoint(
            GATEWAY,
            method="POST",
            params=_call("taobao.logistics.consign.resend"),
            records_path="logistics_consign_resend_response.shipping",
            idempotent=True,  # sets the waybill to a value: replaying sets the same value
        ),
        "set_stock": Endpoint(
            GATEWAY,
            method="POST",
            params=_call("taobao.item.quantity.update", type=1),  # 1: a full set (2 would add)
            records_path="item_quantity_update_response.item",
            idempotent=True,
        ),
        "item": Endpoint(
            GATEWAY,
            params=_call("taobao.item.seller.get", fields="num_iid,num,outer_id,sku"),
            records_path="item_seller_get_response.item",
        ),
    },
)


def _listed_version(listed: Any) -> tuple[str, str] | None:
    """tid and ``modified`` (Beijing "yyyy-MM-dd HH:mm:ss": compares as text); None without a tid."""
    tid = str(listed.get("tid", "")) if isinstance(listed, dict) else ""
    return (tid, str(listed.get("modified", ""))) if tid else None


class TaobaoConnector(TaobaoPushes, Connector):
    spec = TAOBAO

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every trade modified in the window, read whole, one listing page at a time (last page first). A
        trade listed twice (pages shift while trades change) is read again only when listed newer."""
        for page in newest_copies(self.fetch_pages("orders", window_start, window_end), _listed_version):
            # a listed trade without a tid goes on as it is: the schema check queues it
            yield [self.get_order(key[0]) if (key := _listed_version(listed)) else listed for listed in page]

    def get_order(self, order_id: str) -> dict[str, Any]:
        """One trade by tid (``taobao.trade.fullinfo.get``), as ``fetch_orders`` yields it."""
        if not str(order_id).isdigit():
            raise ValueError(f"a Taobao tid is numeric, got {order_id!r}")
        trade = self.get("order", params={"tid": str(order_id)})
        if not isinstance(trade, dict):
            raise ApiError(f"taobao.trade.fullinfo.get answered no trade for {order_id}", platform="taobao")
        return trade


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> TaobaoConnector:
    """The connection's login is the app_key, its password the app secret, ``extra.session_token`` the
    seller's session key (a credential: Airflow masks extra keys naming a token); ``extra.
    requests_per_second`` is optional. ``page_size`` above 100 is capped at 100."""
    if not credentials.login:
        raise ValueError(f"connection {credentials.conn_id!r}: set the Taobao app_key as its login")
    session = credentials.extra.get("session_token")
    if not session:
        raise ValueError(
            f"connection {credentials.conn_id!r}: set the seller's session key as extra.session_token"
        )
    spec = TAOBAO
    page_size = max(1, min(channel.page_size, MAX_PAGE_SIZE))
    if page_size != MAX_PAGE_SIZE:
        spec = spec.with_page_size("orders", page_size)
    rate = float(credentials.extra.get("requests_per_second", DEFAULT_REQUESTS_PER_SECOND))
    return TaobaoConnector.connect(
        credentials.base_url,
        {
            "app_key": credentials.login,
            "app_secret": credentials.secret,
            "access_token": Secret(str(session)),
        },
        timeout=channel.http_timeout,
        throttle=RequestRateThrottle(rate),
        token_store=token_store,
        spec=spec,
    )
