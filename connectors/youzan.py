"""Youzan 有赞云 Open API as a declaration, plus the one hook it needs (de-duplication by tid).

Wire facts (docs/platform-contracts.md §4):
- Token: ``POST /auth/token`` with JSON ``{client_id, client_secret, authorize_type: "silent", grant_id:
  <kdt_id>, refresh: true}`` (a self-use app); the answer's ``data.expires`` is an absolute time in epoch
  **milliseconds**. The token travels only as ``?access_token=`` (a header or a body field is refused).
- Calls: ``POST /api/{method}/{version}?access_token=...`` with a JSON body of business parameters.
- Errors come in three shapes, all possibly with HTTP 200: the gateway's ``{"gw_err_resp":{"err_code",
  "err_msg"}}`` (4201 "非法的请求凭证": an expired or invalid token -> refresh once and replay), the >= 4.0
  envelope ``{"success": false, "code", "message", "data"}`` whose ``data`` may still hold an empty list (so
  ``success`` is checked, never the list alone), and the 3.x ``{"error_response":{"code","msg"}}``.
- Throttling is a gateway code in an HTTP-200 body; Youzan does not document it, so the codes are
  configurable (connection extra ``throttle_codes``; default ``DEFAULT_THROTTLE_CODES``).
- ``youzan.trades.sold.get`` 4.0.4: ``start_update``/``end_update`` as ``"yyyy-MM-dd HH:mm:ss"`` Beijing time,
  both sent (an incomplete pair is silently ignored by Youzan), span <= 3 months (we split at 90 days);
  ``page_no`` 1..100 and ``page_size`` <= 100, so one window reaches at most 10,000 orders: when
  ``data.total_results`` says more, the framework halves the window until each half fits.
- Pages shift while orders change (results are sorted by update time), so records are de-duplicated by tid.

Each record yielded is one item of ``data.full_order_info_list``: ``{"full_order_info": {...}, ...}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from connectors.auth import Cred, Secret, TokenEndpoint, TokenEndpointAuth
from connectors.errors import ApiError
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RequestRateThrottle, RetryPolicy
from connectors.paginators import PageNumberPaginator
from connectors.windows import CHINA_WALL_TIME, WindowSpec

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

SOLD_GET_VERSION = "4.0.4"
TRADE_GET_VERSION = "4.0.0"
MAX_PAGE_SIZE = 100
MAX_PAGE_NO = 100
MAX_WINDOW = timedelta(days=90)  # "3 months" is never shorter than 89 days; 90 keeps every split legal
DEFAULT_THROTTLE_CODES = frozenset({"4203"})  # [U] undocumented; override per connection
DEFAULT_REQUESTS_PER_SECOND = 10.0  # [U] order-API QPS is per capability pack and undocumented
TOKEN_EXPIRED_CODES = frozenset({"4201"})
TOKEN_REFUSED_CODES = frozenset({"4001", "4002"})  # the token endpoint refusing client or shop [U]
TRANSIENT_CODES = frozenset({"106000001", "106100118"})  # "timeout, retry" [S]

UPDATE_WINDOW = WindowSpec(
    "start_update", "end_update", CHINA_WALL_TIME, max_span=MAX_WINDOW, location="body"
)


def _errors(throttle_codes: Iterable[str]) -> ErrorPolicy:
    return ErrorPolicy(
        shapes=(
            ErrorShape(code_path="gw_err_resp.err_code", message_path="gw_err_resp.err_msg"),
            ErrorShape(code_path="error_response.code", message_path="error_response.msg"),
            ErrorShape(code_path="code", message_path="message", ok_codes=frozenset({"200"})),
            # ``success: false`` with a 200 (or no) code is still a failure: never trust the data alone.
            ErrorShape(code_path="success", message_path="message", ok_codes=frozenset({"True"})),
        ),
        rate_limit=RateLimitSignal(statuses=frozenset({429}), body_codes=frozenset(throttle_codes)),
        auth_codes=TOKEN_REFUSED_CODES,
        token_expired_codes=TOKEN_EXPIRED_CODES,
        transient_codes=TRANSIENT_CODES,
        request_id_header=None,
        request_id_path="trace_id",
    )


YOUZAN = PlatformSpec(
    name="youzan",
    auth=TokenEndpointAuth(
        TokenEndpoint(
            "/auth/token",
            method="POST",
            json={
                "client_id": Cred("client_id"),
                "client_secret": Cred("client_secret"),
                "authorize_type": "silent",
                "grant_id": Cred("kdt_id"),
                "refresh": True,
            },
            token_path="data.access_token",
            expires_in_path=None,
            expires_at_path="data.expires",
            expires_at_unit=0.001,  # epoch milliseconds
            default_lifetime_seconds=7 * 86400,
        ),
        param="access_token",
    ),
    errors=_errors(DEFAULT_THROTTLE_CODES),
    throttle=lambda: RequestRateThrottle(DEFAULT_REQUESTS_PER_SECOND),
    endpoints={
        "orders": Endpoint(
            f"/api/youzan.trades.sold.get/{SOLD_GET_VERSION}",
            method="POST",
            json={},
            idempotent=True,  # a read, even though it is a POST
            records_path="data.full_order_info_list",
            missing_records_mean_empty=True,  # checked only after the envelope said success
            paginator=PageNumberPaginator(
                "page_no",
                "page_size",
                MAX_PAGE_SIZE,
                total_results_path="data.total_results",
                max_page=MAX_PAGE_NO,
                location="body",
            ),
            window=UPDATE_WINDOW,
        ),
        "order": Endpoint(
            f"/api/youzan.trade.get/{TRADE_GET_VERSION}",
            method="POST",
            json={},
            idempotent=True,
            records_path="data",
        ),
    },
)


def record_tid(record: Any) -> str | None:
    info = record.get("full_order_info") if isinstance(record, dict) else None
    order_info = info.get("order_info") if isinstance(info, dict) else None
    tid = order_info.get("tid") if isinstance(order_info, dict) else None
    return tid if isinstance(tid, str) else None


class YouzanConnector(Connector):
    spec = YOUZAN

    page_size: int = MAX_PAGE_SIZE

    @classmethod
    def from_connection(
        cls,
        base_url: str,
        *,
        client_id: str,
        client_secret: str | Secret,
        kdt_id: str | int,
        page_size: int = MAX_PAGE_SIZE,
        throttle_codes: Iterable[str] | None = None,
        requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> YouzanConnector:
        """A connector for one shop (``kdt_id``) of a self-use app. ``base_url`` is
        ``https://open.youzanyun.com`` or a sandbox's URL. ``page_size`` above 100 is capped at 100."""
        if not str(kdt_id).strip().isdigit():
            raise ValueError(f"kdt_id is the shop's numeric id, got {kdt_id!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        page_size = min(page_size, MAX_PAGE_SIZE)
        connector_cls: type[YouzanConnector] = cls
        codes = frozenset(str(code) for code in throttle_codes) if throttle_codes is not None else None
        if (codes is not None and codes != DEFAULT_THROTTLE_CODES) or page_size != MAX_PAGE_SIZE:
            # The spec is data: a connection with its own page size or throttle codes gets its own copy.
            orders = cls.spec.endpoints["orders"]
            paginator = replace(orders.paginator, page_size=page_size)  # type: ignore[type-var]
            spec = replace(
                cls.spec,
                errors=_errors(codes if codes is not None else DEFAULT_THROTTLE_CODES),
                endpoints={**cls.spec.endpoints, "orders": replace(orders, paginator=paginator)},
            )
            connector_cls = type(cls.__name__, (cls,), {"spec": spec})
        connector = connector_cls.connect(
            base_url,
            {"client_id": client_id, "client_secret": client_secret, "kdt_id": str(kdt_id).strip()},
            retry=retry,
            timeout=timeout,
            throttle=RequestRateThrottle(requests_per_second),
            session=session,
            sleep=sleep,
        )
        connector.page_size = page_size
        return connector

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every order updated in the window, one page at a time, each tid once (pages shift as orders
        change; the first copy seen is kept)."""
        seen: set[str] = set()
        for page in self.fetch_pages("orders", window_start, window_end):
            fresh = []
            for record in page:
                tid = record_tid(record)
                if tid is not None:
                    if tid in seen:
                        continue
                    seen.add(tid)
                fresh.append(record)  # a record without a tid still goes on: the schema check queues it
            if fresh:
                yield fresh

    def get_order(self, tid: str) -> dict[str, Any]:
        """One trade by tid (``youzan.trade.get``): ``{"full_order_info", "refund_order", ...}``."""
        if not isinstance(tid, str) or not tid[:1].isalpha():
            raise ValueError(f"Youzan trade ids look like E20190326101702000600011, got {tid!r}")
        value = self.get("order", body={"tid": tid})
        if not isinstance(value, dict):
            raise ApiError(f"youzan.trade.get answered no trade for {tid}", platform=self.platform)
        return value


def connector_for_channel(credentials: ChannelCredentials, channel: ChannelConfig) -> YouzanConnector:
    """The connector for a configured channel: the Airflow connection's login is the client_id, its
    password the client_secret, ``extra.kdt_id`` the shop; ``extra.throttle_codes`` (list) and
    ``extra.requests_per_second`` are optional."""
    extra = credentials.extra
    if not credentials.login:
        raise ValueError(f"connection {credentials.conn_id!r}: set the Youzan client_id as its login")
    kdt_id = extra.get("kdt_id")
    if kdt_id is None:
        raise ValueError(f"connection {credentials.conn_id!r}: set the shop id as extra.kdt_id")
    throttle_codes = extra.get("throttle_codes")
    return YouzanConnector.from_connection(
        credentials.base_url,
        client_id=credentials.login,
        client_secret=credentials.secret,
        kdt_id=kdt_id,
        page_size=channel.page_size,
        throttle_codes=[str(c) for c in throttle_codes] if throttle_codes is not None else None,
        requests_per_second=float(extra.get("requests_per_second", DEFAULT_REQUESTS_PER_SECOND)),
    )
