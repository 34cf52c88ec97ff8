"""Shopify Admin REST API (2024-10) as a declaration, plus named operations.

Wire facts (docs/platform-contracts.md section 1):
- ``X-Shopify-Access-Token`` header on every call; URLs ``/admin/api/{version}/...json``.
- ``GET orders.json?status=any&updated_at_min=..&updated_at_max=..&limit=250``: ``status`` defaults to
  ``open`` on Shopify, so ``any`` is required to see closed, archived and cancelled orders.
- Cursor pagination through ``Link: <...page_info=...>; rel="next"``. The next URL is followed exactly as
  given: it already carries ``page_info`` and ``limit``, and adding the original filters is a 400.
- Leaky bucket per app and shop, announced as ``X-Shopify-Shop-Api-Call-Limit: used/size``; overflow is a 429
  with ``Retry-After`` (float seconds). The client-side limiter keeps a few slots free so 429s stay rare.
- Errors: ``{"errors": "..."}`` or ``{"errors": {field: [..]}}``, request id in ``X-Request-Id``.

Window boundaries: ChannelHub windows are half-open ``[start, end)``, Shopify's ``updated_at_min`` and
``updated_at_max`` are both inclusive. We send ``updated_at_max = end`` (ceiled to the second) rather than
``end - 1s``: an order updated exactly at ``end`` is then returned by this window *and* by the next one
(which starts at ``end``). That duplicate is harmless because ingest is idempotent, whereas ``end - 1s``
would lose any update Shopify stores with sub-second precision between the two. No window limit applies,
so a window is one listing however long it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests

from connectors.auth import HeaderToken, Secret
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, LeakyBucketThrottle, RateLimitSignal, RetryPolicy
from connectors.paginators import LinkHeaderPaginator
from connectors.windows import ISO8601_UTC, WindowSpec

DEFAULT_API_VERSION = "2024-10"
MAX_PAGE_SIZE = 250
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
STANDARD_LEAK_PER_SECOND = 2.0  # Standard plan; Advanced 4, Plus 20

UPDATED_AT = WindowSpec("updated_at_min", "updated_at_max", ISO8601_UTC, max_span=None)

SHOPIFY = PlatformSpec(
    name="shopify",
    base_path="/admin/api/{api_version}",
    path_variables={"api_version": DEFAULT_API_VERSION},
    auth=HeaderToken("X-Shopify-Access-Token", credential="access_token"),
    errors=ErrorPolicy(
        shapes=(ErrorShape(message_path="errors"), ErrorShape(message_path="error_description")),
        rate_limit=RateLimitSignal(statuses=frozenset({429}), retry_after_header="Retry-After"),
        request_id_header="X-Request-Id",
    ),
    throttle=lambda: LeakyBucketThrottle(CALL_LIMIT_HEADER, STANDARD_LEAK_PER_SECOND),
    endpoints={
        "orders": Endpoint(
            "/orders.json",
            params={"status": "any", "limit": MAX_PAGE_SIZE},
            records_path="orders",
            paginator=LinkHeaderPaginator(),
            window=UPDATED_AT,
        ),
        "orders_count": Endpoint(
            "/orders/count.json", params={"status": "any"}, records_path="count", window=UPDATED_AT
        ),
        "order": Endpoint("/orders/{order_id}.json", records_path="order"),
    },
)

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

_API_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")


class ShopifyConnector(Connector):
    spec = SHOPIFY

    page_size: int = MAX_PAGE_SIZE

    @classmethod
    def from_connection(
        cls,
        base_url: str,
        access_token: str | Secret,
        *,
        api_version: str = DEFAULT_API_VERSION,
        page_size: int = MAX_PAGE_SIZE,
        leak_per_second: float = STANDARD_LEAK_PER_SECOND,
        bucket_headroom: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> ShopifyConnector:
        """A connector for one shop. ``base_url`` is the shop's URL (``https://x.myshopify.com``, or a
        sandbox's ``http://127.0.0.1:8701``); ``leak_per_second`` is the plan's refill rate the limiter
        plans with."""
        if not _API_VERSION.match(api_version):
            raise ValueError(f"Shopify API versions look like 2024-10, got {api_version!r}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
        connector = cls.connect(
            base_url,
            {"access_token": access_token},
            path_variables={"api_version": api_version},
            retry=retry,
            timeout=timeout,
            throttle=LeakyBucketThrottle(CALL_LIMIT_HEADER, leak_per_second, headroom=bucket_headroom),
            session=session,
            sleep=sleep,
        )
        connector.page_size = page_size
        return connector

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every order (any status) updated in the window, one page of raw payloads at a time."""
        yield from self.fetch_pages("orders", window_start, window_end, params={"limit": self.page_size})

    def count_orders(self, window_start: datetime, window_end: datetime) -> int:
        """Shopify's own count of orders (any status) updated in the window, for reconciliation."""
        return self.count("orders_count", window_start, window_end)

    def get_order(self, order_id: int | str) -> dict[str, Any]:
        """One order by id; raises ``ApiError`` (status 404) when the shop has no such order."""
        if not str(order_id).isdigit():
            raise ValueError(f"Shopify order ids are numeric, got {order_id!r}")
        return self.get("order", path_params={"order_id": order_id})


def connector_for_channel(credentials: ChannelCredentials, channel: ChannelConfig) -> ShopifyConnector:
    """The connector for a configured channel: URL and token from its Airflow connection; the API version
    and the plan's leak rate may be set in the connection's extra (``api_version``, ``leak_per_second``)."""
    return ShopifyConnector.from_connection(
        credentials.base_url,
        credentials.secret,
        api_version=credentials.extra.get("api_version", DEFAULT_API_VERSION),
        page_size=channel.page_size,
        leak_per_second=float(credentials.extra.get("leak_per_second", STANDARD_LEAK_PER_SECOND)),
    )
