"""WooCommerce REST API v3 (``/wp-json/wc/v3``) as a declaration, plus named operations.

Wire facts (platform-contracts.md section 2):
- HTTP Basic with the consumer key as user name and the consumer secret as password (HTTPS). A refused key
  or secret is a 401 ``{"code":"woocommerce_rest_authentication_error","message":...,"data":{"status":401}}``.
- ``GET orders?modified_after=..&modified_before=..&dates_are_gmt=true&status=any&orderby=date&order=asc``
  with ``page``/``per_page`` (at most 100; more is a 400 ``rest_invalid_param``). The response body is a bare
  JSON list; ``X-WP-Total``/``X-WP-TotalPages`` give the totals. ``dates_are_gmt=true`` matters: without
  it WooCommerce reads offset-less times in the *site's* time zone.
- Core WooCommerce has no rate limiter; hosts and WAFs answer 429 (or 503) with ``Retry-After``, which the
  shared client honours. Errors are ``{"code","message","data":{"status"}}``.

Windows: ``modified_after`` and ``modified_before`` are both *exclusive* (``WP_Date_Query`` with
``inclusive`` false). ChannelHub windows are half-open ``[start, end)``, so we send ``modified_after =
start - 1 s`` (second precision) and ``modified_before = end``: the window is covered exactly, with no
boundary duplicate and no gap. No window limit applies.

Page numbers over a set that changes while we read it: the listing is sorted by creation date (stable), but
an order modified while we page *leaves* the window, which shifts every later order one place towards the
start; reading pages 1, 2, 3... would then skip one. So pages are read from the last to the first (the
framework's ``backwards`` paging): a shift can then only make us read an order twice (ingest is idempotent),
never miss one. The order that moved is picked up by the next window, whose range holds its new time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from connectors.auth import BasicAuth, Secret
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RetryPolicy
from connectors.paginators import PageNumberPaginator
from connectors.windows import TimeFormat, WindowSpec

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
# Naive UTC, as the docs' example; dates_are_gmt=true tells WooCommerce they are GMT.
GMT_WALL_TIME = TimeFormat("pattern", "%Y-%m-%dT%H:%M:%S", UTC)
MODIFIED = WindowSpec("modified_after", "modified_before", GMT_WALL_TIME, max_span=None)
# modified_after is exclusive: moving the start back one second (the format's granularity) includes it.
EXCLUSIVE_START_SHIFT = timedelta(seconds=1)


def _orders_paginator(page_size: int) -> PageNumberPaginator:
    return PageNumberPaginator(
        page_param="page",
        size_param="per_page",
        page_size=page_size,
        total_pages_header="X-WP-TotalPages",
        total_results_header="X-WP-Total",
        backwards=True,
    )


def woocommerce_spec(page_size: int = MAX_PAGE_SIZE) -> PlatformSpec:
    """The WooCommerce declaration with ``page_size`` orders per page (1..100)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
    return PlatformSpec(
        name="woocommerce",
        base_path="/wp-json/wc/v3",
        auth=BasicAuth(username="consumer_key", password="consumer_secret"),
        errors=ErrorPolicy(
            # WordPress errors: {"code": "...", "message": "...", "data": {"status": n}}; the HTTP status
            # classifies them, the body names them.
            shapes=(ErrorShape(code_path="code", message_path="message", ok_codes=frozenset()),),
            rate_limit=RateLimitSignal(statuses=frozenset({429}), retry_after_header="Retry-After"),
            request_id_header=None,
        ),
        endpoints={
            "orders": Endpoint(
                "/orders",
                params={"status": "any", "orderby": "date", "order": "asc", "dates_are_gmt": "true"},
                records_path=None,  # the body is the list itself
                paginator=_orders_paginator(page_size),
                window=MODIFIED,
            ),
            "order": Endpoint("/orders/{order_id}"),
        },
    )


WOOCOMMERCE = woocommerce_spec()


class WooCommerceConnector(Connector):
    spec = WOOCOMMERCE

    @classmethod
    def from_connection(
        cls,
        base_url: str,
        consumer_key: str | Secret,
        consumer_secret: str | Secret,
        *,
        page_size: int = MAX_PAGE_SIZE,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> WooCommerceConnector:
        """A connector for one shop. ``base_url`` is the site's URL (``https://shop.example.com``, or a
        sandbox's ``http://127.0.0.1:8702``); the API lives under ``/wp-json/wc/v3`` there."""
        connector = cls.connect(
            base_url,
            {"consumer_key": consumer_key, "consumer_secret": consumer_secret},
            retry=retry,
            timeout=timeout,
            session=session,
            sleep=sleep,
        )
        if page_size != MAX_PAGE_SIZE:
            connector.spec = woocommerce_spec(page_size)  # type: ignore[misc]  # per-connection page size
        return connector

    @property
    def page_size(self) -> int:
        paginator = self.spec.endpoints["orders"].paginator
        assert isinstance(paginator, PageNumberPaginator)
        return paginator.page_size

    def fetch_orders(self, window_start: datetime, window_end: datetime) -> Iterator[list[dict[str, Any]]]:
        """Every order (any status but trash) modified in ``[window_start, window_end)``, a page at a time,
        last page first; an order may come twice when the shop changes it while we read."""
        yield from self.fetch_pages("orders", window_start - EXCLUSIVE_START_SHIFT, window_end)

    def get_order(self, order_id: int | str) -> dict[str, Any]:
        """One order by id; raises ``ApiError`` (status 404) when the shop has no such order."""
        if not str(order_id).isdigit():
            raise ValueError(f"WooCommerce order ids are numeric, got {order_id!r}")
        return self.get("order", path_params={"order_id": order_id})


def connector_for_channel(credentials: ChannelCredentials, channel: ChannelConfig) -> WooCommerceConnector:
    """The connector for a configured channel: site URL, consumer key (login) and consumer secret (password)
    from its Airflow connection. The channel's page size is capped at WooCommerce's 100."""
    if not credentials.login:
        raise ValueError(
            f"connection {credentials.conn_id!r}: set the WooCommerce consumer key as the login "
            "(and the consumer secret as the password)"
        )
    page_size = min(channel.page_size, MAX_PAGE_SIZE)
    if page_size < channel.page_size:
        log.info("%s: page_size %d capped at WooCommerce's %d", channel.code, channel.page_size, page_size)
    return WooCommerceConnector.from_connection(
        credentials.base_url, credentials.login, credentials.secret, page_size=page_size
    )
