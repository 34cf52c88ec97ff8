"""Youzan 有赞云 Open API as a declaration, plus the hooks it needs (de-duplication by tid, pushes).

Wire facts (sources and what is unconfirmed: docs/platform-notes.md, Youzan):
- Token: ``POST /auth/token`` with JSON ``{client_id, client_secret, authorize_type: "silent", grant_id:
  <kdt_id>, refresh}`` (a self-use app); the answer's ``data.expires`` is an absolute time in epoch
  **milliseconds**, 7 days on. ``refresh: false`` hands back the shop's current token while it is valid (a
  new one only once it expired); ``refresh: true`` issues a new one and the old one stops working (at once
  or within the hour: Youzan's pages disagree, so at once is assumed). So the connector always asks with
  ``refresh: false``: twenty processes renewing at once get the same token and revoke nothing. It forces
  (``refresh: true``) only when the answer is the very token just refused, or one about to expire; the
  hub's warehouse token store (``channelhub.platforms.channel_connector(..., engine=)``) makes that one
  request for every process. The token travels only as ``?access_token=`` (a header or a body field is as
  good as none).
- Calls: ``POST /api/{method}/{version}?access_token=...`` with a JSON body of business parameters.
- Errors come in four shapes, all with HTTP 200: the token endpoint's ``{"success": false, "code", "message",
  "data": null}`` (1103 "Client 不存在" for an unknown client_id; 1000 a wrong secret, 1004/1005/1105 other
  grant problems: credentials refused, ``AuthError`` at once); the gateway's ``{"gw_err_resp": {"err_code",
  "err_msg", "trace_id"}}`` (4201 no or unusable token, 4202 token expired, 4203 "Token 不存在": refresh
  once and replay; 4204 no permission: ``AuthError``; 4101 throttled); the >= 4.0 envelope ``{"success":
  false, "code", "message", "data"}`` whose ``data`` may still hold an empty list (so ``success`` is checked,
  never the list alone); and the 3.x ``{"error_response": {"code", "msg"}}``, whose success is ``{"response":
  {...}}`` where 4.x has ``{"data": {...}}``: the 3.0.0 endpoints read either.
- Throttling is a code in an HTTP-200 body: 4101 (gateway), 500100004 and 123000042 ("请求被限流") per
  Youzan's throttling page [S]; configurable per connection (``extra.throttle_codes``), the token codes never
  among the defaults.
- ``youzan.trades.sold.get`` 4.0.4: ``start_update``/``end_update`` as ``"yyyy-MM-dd HH:mm:ss"`` Beijing time,
  both sent (an incomplete pair is silently ignored by Youzan), span <= 3 months (we split at 90 days);
  ``page_no`` 1..100 and ``page_size`` <= 100, so one window reaches at most 10,000 orders: when its total
  says more, the framework halves the window until each half fits. The total is ``data.total_results``
  (4.0.0's model) or ``data.paginator.total_count``; an answer with only ``data.paginator.has_next`` is
  paged too (the last page found by probing, ``connectors.paginators``) [U: which shape 4.0.4 answers].
- Pages shift while orders change: results are sorted by update time, newest first, so an order updated
  while we page leaves the window (its new time is past the window's end) and every older order moves one
  place towards page 1. Reading pages 1, 2, 3... then skips one (the fault matrix's "updates between pages"
  found it); pages are read from the last to the first instead (the framework's ``backwards`` paging, as
  for WooCommerce and Taobao), where a shift can only make an order come twice. Records are de-duplicated by
  tid; a later copy still passes when its ``update_time`` is newer (ingest keeps the newest version).

Each record yielded is one item of ``data.full_order_info_list``: ``{"full_order_info": {...}, ...}``.

Pushes (``pushes.py``, on the shared template ``connectors.shipping``; ``connectors.pushes`` for the result
contract):
- ``push_shipment``: carriers map to Youzan express ids read from ``youzan.logistics.express.get`` 3.0.0
  (``allExpress[{id, name, display}]``, fetched once per connector): the hub's name ("SF", "YTO", "UPS")
  goes through the one carrier table (``connectors.carriers``; Youzan's names in ``pushes.CARRIER_CODES``)
  to the Chinese display name, which is matched against the live list (a
  carrier already named as Youzan names it, or given as a listed id, matches directly). No match: rejected,
  nothing sent. The trade is read first (``youzan.trade.get``) because Youzan's ``online.confirm`` takes
  sub-order ids, not quantities: it ships every open unit of each oid. Lines already in a delivery with this
  waybill make the push ``already_done`` without a write. A correction (``previous_tracking_number``) whose
  sub-orders shipped with the previous waybill changes that package's waybill with
  ``youzan.logistics.online.update`` 3.0.0 ``{tid, trade_express_modify: [{dist_id, express_id,
  express_no}]}`` (Youzan allows it only once the whole order has shipped; its refusal is a rejection); a
  previous waybill that never reached Youzan is shipped as new. Otherwise a line must carry exactly the
  sub-order's ``num`` units when no refund touched it (fewer or more is rejected with a clear detail); for a
  refunded sub-order Youzan itself knows what is left to ship (the trade gives no unit counts), so only more
  than ``num`` is refused here. Then ``POST youzan.logistics.online.confirm`` 3.0.0 ``{tid, out_stype,
  out_sid, oids: "oid1,oid2"}`` (oids always named, so nothing the hub did not pack ships). Its refusals are
  rejections with Youzan's words: 102570007 already shipped (after a re-read: ``already_done`` when every
  oid shipped with this waybill, for a push that raced another), 102570020 nothing shippable, 105000016 no
  such order, 105000003 bad waybill. The confirm is not idempotent: the client replays it only after a
  throttle or a connect timeout; a lost answer raises, and the next attempt's read finds the shipment and
  answers ``already_done``.
- ``set_stock``: ``youzan.item.quantity.update`` 3.0.0 ``{item_id, sku_id (omitted for single-spec items),
  quantity, type: 0}`` (a full set, so replaying it is safe). Youzan has **no compare-and-set**, so
  ``expected_current`` is not enforced: the set is unconditional and the result says so
  (``extra["compare_and_set"] = "unsupported"``). A read-then-write check was rejected on purpose: Youzan
  itself decrements stock on every sale, so the level read back almost never equals what the hub last pushed,
  and such a check would refuse nearly every push while still not being atomic. ``get_stock`` reads a level
  back (``youzan.item.get``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from connectors.auth import Cred, Secret
from connectors.errors import ApiError
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RequestRateThrottle, RetryPolicy
from connectors.paginators import PageNumberPaginator, newest_copies
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.tokens import TokenEndpoint, TokenEndpointAuth, TokenStore
from connectors.windows import CHINA_WALL_TIME, WindowSpec
from platforms.youzan import pushes

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

SOLD_GET_VERSION = "4.0.4"
TRADE_GET_VERSION = "4.0.0"
MAX_PAGE_SIZE = 100
MAX_PAGE_NO = 100
MAX_WINDOW = timedelta(days=90)  # "3 months" is never shorter than 89 days; 90 keeps every split legal
# "Too many requests": the gateway's 4101 and the two "请求被限流" business codes of Youzan's throttling
# page [S]; never a token code (4203 once stood here and made an unknown token look like a throttle).
DEFAULT_THROTTLE_CODES = frozenset({"4101", "500100004", "123000042"})
DEFAULT_REQUESTS_PER_SECOND = 10.0  # [U] order-API QPS is per capability pack and undocumented
# Refresh the token once and replay: 4201 no usable token, 4202 expired [S], 4203 "Token 不存在" [C: probe].
TOKEN_EXPIRED_CODES = frozenset({"4201", "4202", "4203"})
# Refused for good, refreshing will not help: /auth/token's 1000 wrong secret, 1004 grant expired, 1005 bad
# code, 1103 unknown client or no grant for the shop [C: probe, for an unknown client], 1105 wrong app type;
# the gateway's 4204 no permission for the API [S].
TOKEN_REFUSED_CODES = frozenset({"1000", "1004", "1005", "1103", "1105", "4204"})
TRANSIENT_CODES = frozenset(
    {
        "106000001",  # timeout, retry [S]
        "106100118",  # timeout, retry [S]
        "102510001",  # a duplicate concurrent request: the other one is still running; look again later [S]
    }
)
LOGISTICS_VERSION = "3.0.0"
ITEM_VERSION = "3.0.0"
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
        request_id_path=("trace_id", "gw_err_resp.trace_id", "request_id"),
    )


def _v3(path: str) -> tuple[str, str]:
    """A 3.0.0 answer's ``path`` in either envelope: ``data`` (as 4.x answers) or ``response`` (3.x) [U]."""
    return f"data.{path}", f"response.{path}"


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
                "refresh": False,  # the shop's current token while it is valid: renewing revokes nothing
            },
            token_path="data.access_token",
            expires_in_path=None,
            expires_at_path="data.expires",
            expires_at_unit=0.001,  # epoch milliseconds
            default_lifetime_seconds=7 * 86400,
            force_new_json={"refresh": True},  # a new token, the old one revoked
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
            record_key="full_order_info.order_info.tid",
            paginator=PageNumberPaginator(
                "page_no",
                "page_size",
                MAX_PAGE_SIZE,
                # 4.0.0's model states total_results [C: SDK]; 4.0.4 is said to carry a paginator [U]
                total_results_path=("data.total_results", "data.paginator.total_count"),
                has_more_path="data.paginator.has_next",
                max_page=MAX_PAGE_NO,
                location="body",
                backwards=True,  # newest first: a forward walk skips an order when one leaves the window
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
        "express_companies": Endpoint(
            f"/api/youzan.logistics.express.get/{LOGISTICS_VERSION}",
            method="POST",
            json={},
            idempotent=True,
            records_path=_v3("allExpress"),
        ),
        "ship": Endpoint(
            f"/api/youzan.logistics.online.confirm/{LOGISTICS_VERSION}",
            method="POST",
            json={},
            idempotent=False,  # a replay after a lost answer would be refused as "already shipped" at best
        ),
        "update_tracking": Endpoint(
            f"/api/youzan.logistics.online.update/{LOGISTICS_VERSION}",
            method="POST",
            json={},
            idempotent=True,  # it sets the package's waybill to a value: replaying sets the same value
        ),
        "set_stock": Endpoint(
            f"/api/youzan.item.quantity.update/{ITEM_VERSION}",
            method="POST",
            json={"type": 0},  # 0: a full set (1 would add)
            idempotent=True,  # a full set replayed sets the same level
        ),
        "item": Endpoint(
            f"/api/youzan.item.get/{ITEM_VERSION}",
            method="POST",
            json={},
            idempotent=True,
            records_path=_v3("item"),
        ),
    },
)


def record_tid(record: Any) -> str | None:
    info = record.get("full_order_info") if isinstance(record, dict) else None
    order_info = info.get("order_info") if isinstance(info, dict) else None
    tid = order_info.get("tid") if isinstance(order_info, dict) else None
    return tid if isinstance(tid, str) else None


def record_update_time(record: Any) -> str:
    """``order_info.update_time`` ("yyyy-MM-dd HH:mm:ss", Beijing time: compares as text), "" if absent."""
    info = record.get("full_order_info") if isinstance(record, dict) else None
    order_info = info.get("order_info") if isinstance(info, dict) else None
    value = order_info.get("update_time") if isinstance(order_info, dict) else None
    return value if isinstance(value, str) else ""


def _listed_version(record: Any) -> tuple[str, str] | None:
    """tid and update_time; None (passed on as it is) for a record without a tid."""
    tid = record_tid(record)
    return None if tid is None else (tid, record_update_time(record))


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
        token_store: TokenStore | None = None,
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
        if codes and (clash := sorted(codes & (TOKEN_EXPIRED_CODES | TOKEN_REFUSED_CODES))):
            # A token refusal taken for a throttle is waited out instead of renewed (4203 once was).
            raise ValueError(f"throttle_codes must not name token or credential codes: {', '.join(clash)}")
        if (codes is not None and codes != DEFAULT_THROTTLE_CODES) or page_size != MAX_PAGE_SIZE:
            # The spec is data: a connection with its own page size or throttle codes gets its own copy.
            spec = replace(
                cls.spec.with_page_size("orders", page_size),
                errors=_errors(codes if codes is not None else DEFAULT_THROTTLE_CODES),
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
            token_store=token_store,
        )
        connector.page_size = page_size
        return connector

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every order updated in the window, one page at a time, last page first; each tid once, unless a
        later copy is newer (pages shift as orders change)."""
        yield from newest_copies(self.fetch_pages("orders", window_start, window_end), _listed_version)

    def get_order(self, tid: str) -> dict[str, Any]:
        """One trade by tid (``youzan.trade.get``): ``{"full_order_info", "refund_order", ...}``."""
        if not isinstance(tid, str) or not tid[:1].isalpha():
            raise ValueError(f"Youzan trade ids look like E20190326101702000600011, got {tid!r}")
        value = self.get("order", body={"tid": tid})
        if not isinstance(value, dict):
            raise ApiError(f"youzan.trade.get answered no trade for {tid}", platform=self.platform)
        return value

    # -- pushes ------------------------------------------------------------------------------------

    _express_ids: dict[str, str] | None = None

    def express_ids(self) -> dict[str, str]:
        """Youzan's carriers (``youzan.logistics.express.get``): upper-cased name -> express id; read once."""
        if self._express_ids is None:
            companies = self.get("express_companies", body={})
            if not isinstance(companies, list):
                raise ApiError("youzan.logistics.express.get answered no list", platform=self.platform)
            ids: dict[str, str] = {}
            for company in companies:
                if isinstance(company, dict) and company.get("id") is not None and company.get("name"):
                    ids[pushes.carrier_key(str(company["name"]))] = str(company["id"])
            self._express_ids = ids
        return self._express_ids

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        """The shipment push on the shared template: ``platforms.youzan.pushes``."""
        return pushes.push_youzan_shipment(self, push)

    def get_stock(self, item_id: str, sku_id: str | None = None) -> int:
        """The item's (or one of its SKUs') stock quantity on Youzan (``youzan.item.get``)."""
        item = self.get("item", body={"item_id": int(item_id)})
        skus = item.get("skus") if isinstance(item, dict) else None
        if sku_id not in (None, "", "0") and skus:
            for sku in skus:
                if isinstance(sku, dict) and str(sku.get("sku_id")) == str(sku_id):
                    return int(sku["quantity"])
            raise ApiError(f"item {item_id} has no SKU {sku_id}", platform=self.platform)
        if not isinstance(item, dict) or item.get("quantity") is None:
            raise ApiError(f"youzan.item.get answered no quantity for item {item_id}", platform=self.platform)
        return int(item["quantity"])

    def listed_stock(self, listing: StockPush) -> int | None:
        """The quantity Youzan lists for the listing's item (or SKU). ``listing.quantity`` is ignored."""
        item_id = (listing.channel_product_id or "").strip()
        if not item_id.isdigit():
            raise ApiError(f"a Youzan item_id is numeric, got {item_id!r}", platform=self.platform)
        return self.get_stock(item_id, (listing.channel_variant_id or "").strip() or None)

    def set_stock(self, push: StockPush) -> PushResult:
        """A full, unconditional set: ``platforms.youzan.pushes.set_stock``."""
        return pushes.set_stock(self, push)


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> YouzanConnector:
    """The connector for a configured channel: the Airflow connection's login is the client_id, its
    password the client_secret, ``extra.kdt_id`` the shop; ``extra.throttle_codes`` (list, replacing
    ``DEFAULT_THROTTLE_CODES``) and ``extra.requests_per_second`` are optional."""
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
        timeout=channel.http_timeout,
        token_store=token_store,
    )
