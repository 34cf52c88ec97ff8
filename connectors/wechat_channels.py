"""WeChat Channels shop (微信小店) ``channels/ec/*`` as a declaration, plus the one hook it needs.

Wire facts (docs/platform-contracts.md section 3.A):
- ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` gives ``access_token`` (7200 s), sent as
  ``?access_token=`` on every business call; each call is ``POST`` with a JSON body.
- Errors are HTTP 200 bodies ``{"errcode": n, "errmsg": "..."}``: 40001/40014/42001 (token invalid or
  expired) -> the client drops the token, fetches a new one and replays once; 45011 (too frequent) -> wait
  and retry; 45009 (daily quota) -> fail now, waiting minutes cannot help; -1 (system busy) -> retry with
  backoff like a 5xx. 40013/40125/40164/41001/48001 (appid, secret, IP whitelist, no token, no permission)
  are credential problems a refresh cannot fix.
- ``order/list/get`` takes ``update_time_range {start_time, end_time}`` in epoch seconds, at most 7 days
  apart (longer windows are split here), ``page_size <= 100`` and an opaque ``next_key`` + ``has_more``.
  It returns **ids only**; ``records_from_page`` fetches each with ``order/get`` and yields the order objects
  (records keyed by ``order_id``). Ids are 19-digit strings and stay strings: they are sent back exactly as
  listed, and the JSON parser keeps any numeric id an exact ``int``, never a float.

Window boundaries: both ends of ``update_time_range`` are taken as inclusive, so a window ``[start, end)`` is
sent as ``start`` floored and ``end`` ceiled to the second; an order updated exactly at ``end`` is read by
this window and the next (harmless: ingest is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from connectors.auth import Cred, Secret, TokenEndpoint, TokenEndpointAuth
from connectors.errors import MalformedResponse
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RetryPolicy
from connectors.paginators import CursorPaginator
from connectors.windows import EPOCH_SECONDS, WindowSpec

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
MAX_PAGE_SIZE = 100
MAX_WINDOW = timedelta(days=7)
TOKEN_LIFETIME_SECONDS = 7200.0

UPDATE_TIME_RANGE = WindowSpec(
    "start_time",
    "end_time",
    EPOCH_SECONDS,
    max_span=MAX_WINDOW,
    location="body",
    container="update_time_range",
)

WECHAT_CHANNELS = PlatformSpec(
    name="wechat_channels",
    auth=TokenEndpointAuth(
        TokenEndpoint(
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": Cred("appid"), "secret": Cred("secret")},
            default_lifetime_seconds=TOKEN_LIFETIME_SECONDS,
        )
    ),
    errors=ErrorPolicy(
        shapes=(ErrorShape(code_path="errcode", message_path="errmsg"),),
        rate_limit=RateLimitSignal(
            statuses=frozenset({429}),
            retry_after_header=None,
            body_codes=frozenset({"45011"}),
            quota_codes=frozenset({"45009"}),
        ),
        auth_codes=frozenset({"40002", "40013", "40125", "40164", "41001", "48001"}),
        token_expired_codes=frozenset({"40001", "40014", "42001"}),
        transient_codes=frozenset({"-1"}),
        request_id_header=None,  # WeChat's request id is the "rid: ..." at the end of errmsg
    ),
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
    },
)


class WeChatChannelsConnector(Connector):
    spec = WECHAT_CHANNELS

    page_size: int = MAX_PAGE_SIZE

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
    ) -> WeChatChannelsConnector:
        """A connector for one shop: ``base_url`` is ``https://api.weixin.qq.com`` (or a sandbox's URL),
        ``appid``/``app_secret`` the shop's own (not a mini program's)."""
        if not appid:
            raise ValueError("the shop's appid is required (the connection's login)")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
        connector = cls.connect(
            base_url,
            {"appid": appid, "secret": app_secret},
            retry=retry,
            timeout=timeout,
            session=session,
            sleep=sleep,
        )
        connector.page_size = page_size
        return connector

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
        """One order object (``order/get``'s ``order``)."""
        if isinstance(order_id, bool) or not isinstance(order_id, str | int):
            raise MalformedResponse(
                f"the order list held a {type(order_id).__name__} where an order id belongs",
                platform=self.platform,
            )
        order = self.get("order", body={"order_id": str(order_id)})
        if not isinstance(order, dict):
            raise MalformedResponse("order/get answered without an order object", platform=self.platform)
        return order


def connector_for_channel(credentials: ChannelCredentials, channel: ChannelConfig) -> WeChatChannelsConnector:
    """The connector for a configured channel: base URL, appid (login) and app secret (password) from its
    Airflow connection. The listing's page size is the channel's, capped at the platform's 100."""
    return WeChatChannelsConnector.from_connection(
        credentials.base_url or DEFAULT_BASE_URL,
        credentials.login or str(credentials.extra.get("appid", "")),
        credentials.secret,
        page_size=min(channel.page_size, MAX_PAGE_SIZE),
    )
