"""WeChat Channels shop (微信小店) ``channels/ec/*`` as a declaration, plus the few hooks it needs.

Wire facts (docs/platform-notes.md, WeChat section, with their sources):
- Tokens come from ``POST /cgi-bin/stable_token`` ``{grant_type, appid, secret, force_refresh}``: the ordinary
  call hands out the token in force while it is valid (a new one only in its last 5 minutes, the old one
  staying valid), so every task and process of the hub may ask without revoking anyone's token; it is
  kept in the hub's token store (the warehouse's, shared by every process) and renewed there once.
  ``cgi-bin/token`` is not used: each call of it replaces the app's token (other systems' on the same appid
  included) and counts against its daily quota. A token refused on a call (40001/40014/42001) is replaced
  once and the call replayed; only when the ordinary call hands back that very token is ``force_refresh:
  true`` sent (20 a day, 30 s apart), once per refusal across all processes. Business calls are
  ``POST <path>?access_token=`` with a JSON body.
- Errors are HTTP 200 bodies ``{"errcode": n, "errmsg": "... rid: <hex epoch>-..."}``: 45011 (minute quota
  reached) -> wait for the platform's next minute (read from the ``rid``, else the hub's clock) plus up to a
  second of jitter, then retry; 45009 (daily quota) -> fail now; -1 (system busy) -> retry with backoff like
  a 5xx. 40013/40125/40164/45035/61004/41001/48001 (appid, secret, IP whitelist, no token, no permission)
  are credential problems a new token cannot fix.
- ``order/list/get`` takes ``update_time_range {start_time, end_time}`` in epoch seconds, at most 7 days
  apart (longer windows are split here), ``page_size <= 100`` and an opaque ``next_key`` + ``has_more``.
  It returns **ids only**; ``records_from_page`` fetches each with ``order/get``. Ids are 19-digit strings
  and stay strings.
- Refunds: an order lists its after-sale orders by id (``aftersale_detail.aftersale_order_list``); each one
  listed is read with ``aftersale/getaftersaleorder`` (only orders that have any cost the extra calls) and
  the answers are attached to the order under ``channelhub_aftersale_orders`` (a refusal for one of them
  under ``channelhub_aftersale_errors``), so the mapping computes refunded amounts and returned units exactly.

Window boundaries: both ends of ``update_time_range`` are taken as inclusive, so a window ``[start, end)`` is
sent as ``start`` floored and ``end`` ceiled to the second; an order updated exactly at ``end`` is read by
this window and the next (harmless: ingest is idempotent).

Pushes (``push_shipment``, ``set_stock``: ``pushes.py`` on the shared template ``connectors.shipping``;
types in ``connectors.pushes``):
- Carrier: the shop's live company list (``order/deliverycompanylist/new/get``, read once per connector)
  gives the official ``delivery_id`` codes. The hub's carrier name is matched as a listed code, then as a
  listed company name, then through the one carrier table (``connectors.carriers``; WeChat's codes in
  ``pushes.CARRIER_CODES``);
  the code must be on the live list, else the push is rejected before anything is sent, naming the list.
  ``OTHER`` (non-mainstream carriers, accepted by ``delivery/send`` per its doc) only when the hub says so.
- Shipment: ``order/delivery/send`` with one ``delivery_list`` entry (``deliver_type`` 1, self-posted
  express) whose ``product_infos`` are the pushed lines grouped by (product_id, sku_id). Not idempotent, so
  never replayed after an ambiguous failure; the order is read first (``order/get``): a parcel with this
  waybill and carrier holding the pushed units means ``already_done``.
- Tracking correction (``previous_tracking_number``): the parcel holding the previous waybill gets the new
  carrier and waybill through ``order/deliveryinfo/update`` with ``change_infos [{old, new}]`` (allowed for
  split parcels; at most three changes while the order is not completed); the result is ``pushed`` with
  ``extra["action"] = "update_tracking"``. The new waybill already there: ``already_done``. The previous
  waybill not on the order (it never reached WeChat): sent as a new parcel.
- Platform refusals (an errcode other than token/quota/throttle/busy ones) are ``rejected`` results with the
  platform's errcode and errmsg; transient trouble raises.
- Mini-program shipping info (the connection's extra ``"mini_program_shipping": true`` with
  ``"mini_program_conn_id"`` naming the mini program's own Airflow connection: login = its appid, password =
  its app secret): the upload is the mini program's API, called with the mini program's own token (its own
  ``stable_token``, through the same store). The payer's openid must be the one under the mini program's
  appid; a Channels order's ``openid`` is under the shop's appid (and its ``unionid`` cannot be turned into
  a mini-program openid by any API), so the openid is the one the mini program's own
  ``wxa/sec/order/get_order`` gives for the payment (``pay_info.transaction_id``), read first anyway: a
  recorded tracking number means no upload. A payment the mini program does not know (10060001) or any
  refusal is a ``rejected`` result whose detail says the parcel itself was sent. ``order_number_type`` 2,
  ``logistics_type`` 1, one ``shipping_list`` entry per parcel of the order; UNIFIED when this push
  completes the order in its only parcel, else SPLIT with ``is_all_delivered``; ``upload_time`` =
  ``shipped_at`` in +08:00, moved past the last recorded upload (updates must be later).
- Stock: ``product/stock/update`` ``diff_type`` 3 (set) ``num``, or ``warehouse/stock/update`` with
  ``out_warehouse_id`` (the push's ``location_ref``). A set is replay-safe (declared idempotent). WeChat has
  **no compare-and-set**: the set is unconditional and the result says so (``extra["compare_and_set"]``).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from connectors.auth import Cred, Secret
from connectors.errors import ApiError, MalformedResponse
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RetryPolicy
from connectors.paginators import CursorPaginator
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.shipping import refusal_words
from connectors.tokens import TokenEndpoint, TokenEndpointAuth, TokenStore
from connectors.windows import EPOCH_SECONDS, WindowSpec
from platforms.wechat_channels import pushes

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
MAX_PAGE_SIZE = 100
MAX_WINDOW = timedelta(days=7)
TOKEN_LIFETIME_SECONDS = 7200.0
MINUTE_JITTER_SECONDS = 1.0  # spreads processes throttled in the same minute over the next one's first second
AFTERSALE_ORDERS_KEY = "channelhub_aftersale_orders"  # what the hub attaches to an order (not WeChat's)
AFTERSALE_ERRORS_KEY = "channelhub_aftersale_errors"
MINI_PROGRAM_CONN_KEY = "mini_program_conn_id"  # connection extra naming the mini program's connection

UPDATE_TIME_RANGE = WindowSpec(
    "start_time",
    "end_time",
    EPOCH_SECONDS,
    max_span=MAX_WINDOW,
    location="body",
    container="update_time_range",
)

_RID_TIME = re.compile(r"rid:\s*([0-9a-f]{8})-")


def seconds_to_next_minute(
    body: Any,
    *,
    clock: Callable[[], float] = time.time,
    jitter: Callable[[float, float], float] = random.uniform,
) -> float:
    """How long a 45011 ("api minute-quota reach limit ... retry next minute") says to wait: until the
    platform's next minute, by the instant its ``rid`` carries (8 hex digits of epoch seconds), else by the
    hub's clock; plus up to ``MINUTE_JITTER_SECONDS`` so throttled processes do not all return at once."""
    message = body.get("errmsg") if isinstance(body, Mapping) else None
    found = _RID_TIME.search(message) if isinstance(message, str) else None
    now = int(found.group(1), 16) if found else clock()
    return 60.0 - (now % 60.0) + jitter(0.0, MINUTE_JITTER_SECONDS)


STABLE_TOKEN = TokenEndpointAuth(
    TokenEndpoint(
        "/cgi-bin/stable_token",
        method="POST",
        json={
            "grant_type": "client_credential",
            "appid": Cred("appid"),
            "secret": Cred("secret"),
            "force_refresh": False,
        },
        force_new_json={"force_refresh": True},  # rationed (20 a day): only for a refused token handed back
        default_lifetime_seconds=TOKEN_LIFETIME_SECONDS,
    )
)

WECHAT_ERRORS = ErrorPolicy(
    shapes=(ErrorShape(code_path="errcode", message_path="errmsg"),),
    rate_limit=RateLimitSignal(
        statuses=frozenset({429}),
        retry_after_header=None,
        body_codes=frozenset({"45011"}),
        quota_codes=frozenset({"45009"}),
        retry_after_from_body=seconds_to_next_minute,
    ),
    # appid, secret, IP whitelist (40164; 45035/61004 on the shop's calls), no token, no permission
    auth_codes=frozenset({"40002", "40013", "40125", "40164", "41001", "45035", "48001", "61004"}),
    token_expired_codes=frozenset({"40001", "40014", "42001"}),
    transient_codes=frozenset({"-1"}),
    request_id_header=None,  # WeChat's request id is the "rid: ..." at the end of errmsg
)

WECHAT_CHANNELS = PlatformSpec(
    name="wechat_channels",
    auth=STABLE_TOKEN,
    errors=WECHAT_ERRORS,
    endpoints={
        "orders": Endpoint(
            "/channels/ec/order/list/get",
            method="POST",
            json={},
            idempotent=True,  # a read, even though it is a POST
            records_path="order_id_list",
            missing_records_mean_empty=True,
            paginator=CursorPaginator(
                "next_key", "next_key", "has_more", "page_size", MAX_PAGE_SIZE, location="body"
            ),
            window=UPDATE_TIME_RANGE,
        ),
        "order": Endpoint(
            "/channels/ec/order/get", method="POST", json={}, idempotent=True, records_path="order"
        ),
        "aftersale_order": Endpoint(
            "/channels/ec/aftersale/getaftersaleorder",
            method="POST",
            json={},
            idempotent=True,
            records_path="after_sale_order",
        ),
        # The current list (the old ``deliverycompanylist/get`` is marked 旧 in the docs).
        "delivery_companies": Endpoint(
            "/channels/ec/order/deliverycompanylist/new/get",
            method="POST",
            json={"ewaybill_only": False},
            idempotent=True,
            records_path="company_list",
        ),
        # Not replayed after an ambiguous failure: a second parcel would be recorded (see push_shipment).
        "send_delivery": Endpoint(
            "/channels/ec/order/delivery/send", method="POST", json={}, idempotent=False
        ),
        # Each change counts against the order's few allowed changes: never replayed blind either.
        "update_delivery": Endpoint(
            "/channels/ec/order/deliveryinfo/update", method="POST", json={}, idempotent=False
        ),
        # diff_type 3 sets the level: replaying a set lands on the same level.
        "set_stock": Endpoint("/channels/ec/product/stock/update", method="POST", json={}, idempotent=True),
        "set_warehouse_stock": Endpoint(
            "/channels/ec/warehouse/stock/update", method="POST", json={}, idempotent=True
        ),
        "stock": Endpoint(
            "/channels/ec/product/stock/get", method="POST", json={}, idempotent=True, records_path="data"
        ),
    },
)

# The mini program's own API, called with the mini program's own token.
WECHAT_MINI_PROGRAM = PlatformSpec(
    name="wechat_mini_program",
    auth=STABLE_TOKEN,
    errors=WECHAT_ERRORS,
    endpoints={
        # An upload counts against the one re-shipment a payment allows: never replayed blind; get_order
        # tells whether it landed.
        "upload_shipping_info": Endpoint(
            "/wxa/sec/order/upload_shipping_info", method="POST", json={}, idempotent=False
        ),
        "payment_order": Endpoint(
            "/wxa/sec/order/get_order", method="POST", json={}, idempotent=True, records_path="order"
        ),
    },
)


def _aftersale_ids(order: Mapping[str, Any]) -> list[str]:
    """The after-sale order ids an order lists (``aftersale_detail.aftersale_order_list``), as strings."""
    detail = order.get("aftersale_detail")
    listed = detail.get("aftersale_order_list") if isinstance(detail, dict) else None
    ids = []
    for entry in listed if isinstance(listed, list) else []:
        value = entry.get("aftersale_order_id") if isinstance(entry, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            ids.append(str(value))
    return ids


class MiniProgramShipping(Connector):
    """The mini program's shipping-info service (``wxa/sec/order/*``) under the mini program's own appid."""

    spec = WECHAT_MINI_PROGRAM


class WeChatChannelsConnector(Connector):
    spec = WECHAT_CHANNELS

    page_size: int = MAX_PAGE_SIZE
    mini_program: MiniProgramShipping | None = None  # also upload to the shipping-info service

    @property
    def mini_program_shipping(self) -> bool:
        return self.mini_program is not None

    @classmethod
    def from_connection(
        cls,
        base_url: str,
        appid: str,
        app_secret: str | Secret,
        *,
        page_size: int = MAX_PAGE_SIZE,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        token_store: TokenStore | None = None,
        mini_program: tuple[str, str | Secret] | None = None,
        mini_program_base_url: str | None = None,
    ) -> WeChatChannelsConnector:
        """A connector for one shop: ``base_url`` is ``https://api.weixin.qq.com`` (or a sandbox's URL),
        ``appid``/``app_secret`` the shop's own. ``mini_program``: the mini program's own (appid, app secret);
        each shipment push then also uploads the payment's shipping info (``upload_shipping_info``)."""
        if not appid:
            raise ValueError("the shop's appid is required (the connection's login)")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
        options: dict[str, Any] = {"retry": retry, "timeout": timeout, "sleep": sleep}
        connector = cls.connect(
            base_url,
            {"appid": appid, "secret": app_secret},
            session=session,
            token_store=token_store,
            **options,
        )
        connector.page_size = page_size
        if mini_program is not None:
            mp_appid, mp_secret = mini_program
            if not mp_appid or not mp_secret:
                raise ValueError("the mini program's appid and app secret are both required")
            connector.mini_program = MiniProgramShipping.connect(
                mini_program_base_url or base_url,
                {"appid": mp_appid, "secret": mp_secret},
                session=session,
                token_store=token_store,
                **options,
            )
        return connector

    def close(self) -> None:
        super().close()
        if self.mini_program is not None:
            self.mini_program.close()

    def endpoint(self, name: str) -> Endpoint:
        """The declared endpoint; the listing pages with this connection's page size."""
        endpoint = super().endpoint(name)
        if name == "orders" and isinstance(endpoint.paginator, CursorPaginator):
            return replace(endpoint, paginator=replace(endpoint.paginator, page_size=self.page_size))
        return endpoint

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every order updated in the window (any status), one page of full order objects at a time;
        windows longer than 7 days are split."""
        yield from self.fetch_pages("orders", window_start, window_end)

    def records_from_page(self, endpoint_name: str, records: list[Any]) -> list[Any]:
        """The listing gives ids only: fetch each order (ids sent back exactly as listed)."""
        if endpoint_name != "orders":
            return records
        return [self.get_order(order_id) for order_id in records]

    def get_order(self, order_id: str | int) -> dict[str, Any]:
        """One order object (``order/get``'s ``order``) with its after-sale orders attached."""
        order = self.read_order(order_id)
        ids = _aftersale_ids(order)
        if ids:
            fetched, refused = [], {}
            for aftersale_id in dict.fromkeys(ids):
                try:
                    fetched.append(self.get_aftersale_order(aftersale_id))
                except ApiError as error:
                    words = refusal_words(pushes.RULES, error)  # the pushes' classes and words
                    if words is None:
                        raise
                    refused[aftersale_id] = words  # the mapping says why it cannot land
            order[AFTERSALE_ORDERS_KEY] = fetched
            if refused:
                order[AFTERSALE_ERRORS_KEY] = refused
        return order

    def get_aftersale_order(self, aftersale_order_id: str) -> dict[str, Any]:
        """``aftersale/getaftersaleorder``'s ``after_sale_order``."""
        found = self.get("aftersale_order", body={"after_sale_order_id": str(aftersale_order_id)})
        if not isinstance(found, dict):
            raise MalformedResponse(
                "getaftersaleorder answered without an after_sale_order object", platform=self.platform
            )
        return found

    def read_order(self, order_id: str | int) -> dict[str, Any]:
        if isinstance(order_id, bool) or not isinstance(order_id, str | int):
            raise MalformedResponse(
                f"the order list held a {type(order_id).__name__} where an order id belongs",
                platform=self.platform,
            )
        order = self.get("order", body={"order_id": str(order_id)})
        if not isinstance(order, dict):
            raise MalformedResponse("order/get answered without an order object", platform=self.platform)
        return order

    # -- pushes --

    _companies: dict[str, str] | None = None

    def delivery_companies(self, *, refresh: bool = False) -> dict[str, str]:
        """``delivery_id -> delivery_name`` from ``deliverycompanylist/new/get`` (read once per connector)."""
        if self._companies is None or refresh:
            listed = self.get("delivery_companies")
            if not isinstance(listed, list):
                raise MalformedResponse("company_list is not a list", platform=self.platform)
            self._companies = {
                str(c["delivery_id"]): str(c.get("delivery_name", ""))
                for c in listed
                if isinstance(c, dict) and c.get("delivery_id")
            }
        return self._companies

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        """The shipment push on the shared template: ``platforms.wechat_channels.pushes``."""
        return pushes.push_wechat_shipment(self, push)

    def set_stock(self, push: StockPush) -> PushResult:
        """An unconditional set: ``platforms.wechat_channels.pushes.set_stock``."""
        return pushes.set_stock(self, push)

    def listed_stock(self, listing: StockPush) -> int | None:
        """The sellable stock WeChat lists for the listing's SKU (of its warehouse when ``location_ref`` names
        one). ``listing.quantity`` is ignored."""
        if not (listing.channel_product_id and listing.channel_variant_id):
            raise ApiError(
                f"the listing of {listing.merchant_sku!r} has no product_id/sku_id in the hub",
                platform=self.platform,
            )
        data = self.get_stock(listing.channel_product_id, listing.channel_variant_id)
        if listing.location_ref:
            for stock in data.get("warehouse_stocks") or []:
                if isinstance(stock, dict) and str(stock.get("out_warehouse_id")) == listing.location_ref:
                    return int(stock.get("num") or 0)
            return None
        value = data.get("normal_stock_num")
        return None if value is None else int(value)

    def get_stock(self, product_id: str, sku_id: str) -> dict[str, Any]:
        """``product/stock/get``'s ``data``: normal_stock_num, warehouse_stocks[], total_stock_num, ..."""
        data = self.get("stock", body={"product_id": str(product_id), "sku_id": str(sku_id)})
        if not isinstance(data, dict):
            raise MalformedResponse("stock/get answered without a data object", platform=self.platform)
        return data


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> WeChatChannelsConnector:
    """The connector for a configured channel: base URL, appid (login) and app secret (password) from its
    Airflow connection. The listing's page size is the channel's, capped at the platform's 100. The extra's
    ``mini_program_shipping`` (true, or "true") turns on the mini-program shipping-info upload; it needs
    ``mini_program_conn_id``, the mini program's own connection (login = its appid, password = its app
    secret), and is refused here without it: the upload runs under the mini program's appid, not the shop's.
    """
    mini_program: tuple[str, Secret] | None = None
    mini_program_base_url = None
    if _flag(credentials.extra.get("mini_program_shipping", False)):
        linked = credentials.linked(MINI_PROGRAM_CONN_KEY)
        if linked is None:
            raise ValueError(
                f"connection {credentials.conn_id!r}: mini_program_shipping needs the mini program's own "
                f"Airflow connection named in its extra as {MINI_PROGRAM_CONN_KEY!r} (login = the mini "
                "program's appid, password = its app secret); the shop's appid cannot upload shipping info"
            )
        if not linked.login or not linked.secret:
            raise ValueError(
                f"connection {linked.conn_id!r} (the mini program's) needs its appid as login and its app "
                "secret as password"
            )
        mini_program = (linked.login, linked.secret)
        # A connection without a host (the usual api.weixin.qq.com) calls where the shop's does.
        mini_program_base_url = linked.base_url if urlsplit(linked.base_url).netloc else None
    return WeChatChannelsConnector.from_connection(
        credentials.base_url or DEFAULT_BASE_URL,
        credentials.login or str(credentials.extra.get("appid", "")),
        credentials.secret,
        page_size=min(channel.page_size, MAX_PAGE_SIZE),
        timeout=channel.http_timeout,
        token_store=token_store,
        mini_program=mini_program,
        mini_program_base_url=mini_program_base_url,
    )
