"""WooCommerce REST API v3 (``/wp-json/wc/v3``) as a declaration, plus named operations.

Wire facts (docs/platform-notes.md, WooCommerce, has the sources):
- Auth, as ``WC_REST_Authentication`` decides it: HTTP Basic (consumer key as user name, consumer secret as
  password), or the same two as ``consumer_key``/``consumer_secret`` query parameters, is read only when
  the request came over TLS (``is_ssl()``); otherwise, and as a fallback, OAuth 1.0a one-legged:
  ``oauth_consumer_key``, ``oauth_timestamp`` (within 15 minutes of the server's clock), ``oauth_nonce``
  (never twice), ``oauth_signature_method`` (HMAC-SHA1 or HMAC-SHA256) and ``oauth_signature`` in the query
  string, signed over the method, the site's home URL plus the request path, and every query parameter.
  ``auth_for`` picks Basic for an ``https`` URL and OAuth 1.0a for ``http``; a connection may force a kind
  (extra ``auth``), but Basic or query keys over plain ``http`` to another machine are refused before any
  request (``InsecureTransport``): they would cross the network in clear, and WooCommerce would not read
  them anyway. Over http Basic is simply ignored: the shop answers as to an anonymous caller, 401
  ``woocommerce_rest_cannot_view``. Other refusals are 401 ``woocommerce_rest_authentication_error``
  ("Consumer key is invalid.", "Consumer secret is invalid.", "Invalid signature - ...", "Invalid
  timestamp.", "Invalid nonce - nonce has already been used."). A private CA (or a test certificate) is
  trusted through the extra ``ca_bundle``.
- ``GET orders?modified_after=..&modified_before=..&dates_are_gmt=true&status=any&orderby=date&order=asc``
  with ``page``/``per_page`` (at most 100; more is a 400 ``rest_invalid_param``). The response body is a bare
  JSON list; ``X-WP-Total``/``X-WP-TotalPages`` give the totals. ``dates_are_gmt=true`` matters: without
  it WooCommerce reads offset-less times in the *site's* time zone. ``status=any`` also lists checkout
  drafts (block checkout's carts): they are left to the mapping (``not_an_order``), not filtered out here,
  so the listing's own total still checks the walk and a plugin's status is never silently dropped.
- Refunds: an order's ``refunds[]`` is a summary (id, reason, negative total) without lines. For an order
  whose summary is not empty the connector reads ``GET /orders/{id}/refunds`` (one more request per such
  order) and attaches the objects it names under ``channelhub_refunds`` (``REFUNDS_KEY``): their line items
  (negative quantities, ``_refunded_item_id`` meta) say which units each refund took back.
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

Pushes (``push_shipment``, ``set_stock``: ``pushes.py`` on the shared template ``connectors.shipping``;
results per ``connectors.pushes``):
- Tracking goes to the Shipment Tracking extension (``POST /wp-json/wc-shipment-tracking/v3/orders/{id}/
  shipment-trackings``). A store without it answers ``404 rest_no_route``; then the core fallback writes a
  customer note "Shipped via <carrier> <number>" (WooCommerce e-mails it to the buyer). Either way the
  order is set ``completed`` (``PUT /orders/{id}``) only when the shipment completes it: core WooCommerce
  has no partial shipment, so a partial one leaves the order ``processing`` with its tracking recorded.
- WooCommerce checks nothing about a shipment: not the carrier (an unknown provider is stored with an empty
  name and link), not quantities (a tracking has no lines), not the order's status (REST even moves a
  cancelled order to ``completed``). So the connector reads first and refuses what the shop would wrongly
  accept: an order that is cancelled/refunded/failed/trash, an already completed order (a second shipment
  of shipped items), a line the order does not have or more units than remain unshipped, a carrier with no
  provider or custom mapping. It keeps its own ledger in a private order note per push ("ChannelHub
  shipment <key>: <carrier> <number> (lines <line id>x<qty>, ...)"), which gives the units already pushed
  and recognises a shipment pushed before under another number.
- Idempotency by reading: the tracking number already on the order (the extension's list, or a "Shipped
  via" note in the fallback) is ``already_done``; a retry then only adds what the first try did not finish
  (the ledger note, the completion). A tracking correction replaces the number the order shows: the push's
  ``previous_tracking_number`` when the order carries it (whichever shipment key its ledger note has), else
  the last number pushed under the same shipment key (the extension has no update call: ``DELETE`` the old
  item, ``POST`` the new one; in the fallback a new customer note says which number it replaces, notes
  cannot be edited); ``extra["action"] = "update_tracking"``. A previous number the order does not carry
  never reached the shop: the push goes as a new shipment. The ledger note of a correction ends "replacing
  <old number>", so the units of the corrected push are not counted twice.
- Stock: ``PUT /products/{id}`` (simple) or ``PUT /products/{pid}/variations/{vid}`` with
  ``{"manage_stock": true, "stock_quantity": n}``. WooCommerce has no compare-and-set; with
  ``expected_current`` the connector reads ``stock_quantity`` first and refuses on a mismatch. That is not
  atomic (a sale between the read and the write is overwritten), but it catches the common stale case: the
  hub computed its figure before the channel's latest sales reached it. No locations in core: a
  ``location_ref`` is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from connectors.auth import AuthSpec, BasicAuth, QueryParams, Secret
from connectors.errors import ApiError, AuthError, MalformedResponse, TransientError, register_secret
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RetryPolicy
from connectors.oauth1 import OAuth1OneLegged
from connectors.paginators import PageNumberPaginator
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.webhooks import Subscription, SubscriptionRefused
from connectors.windows import TimeFormat, WindowSpec
from platforms.woocommerce import pushes

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials
    from connectors.tokens import TokenStore

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
# Naive UTC, as the docs' example; dates_are_gmt=true tells WooCommerce they are GMT.
GMT_WALL_TIME = TimeFormat("pattern", "%Y-%m-%dT%H:%M:%S", UTC)
MODIFIED = WindowSpec("modified_after", "modified_before", GMT_WALL_TIME, max_span=None)
# modified_after is exclusive: moving the start back one second (the format's granularity) includes it.
EXCLUSIVE_START_SHIFT = timedelta(seconds=1)
TRACKING_API = "/wp-json/wc-shipment-tracking/v3"
TRACKINGS = TRACKING_API + "/orders/{order_id}/shipment-trackings"
ROOTED_PREFIX = "/wp-json/"  # endpoints whose path starts here are not under /wp-json/wc/v3
AUTH_KINDS = ("auto", "oauth1", "basic", "query")
# Where an order payload carries its refund objects (GET /orders/{id}/refunds). Not a WooCommerce field: the
# connector adds it, the schema checks it, the mapping reads it.
REFUNDS_KEY = "channelhub_refunds"


def _orders_paginator(page_size: int) -> PageNumberPaginator:
    return PageNumberPaginator(
        page_param="page",
        size_param="per_page",
        page_size=page_size,
        total_pages_header="X-WP-TotalPages",
        total_results_header="X-WP-Total",
        backwards=True,
    )


def auth_for(base_url: str, kind: str = "auto") -> AuthSpec:
    """How a connection to ``base_url`` authenticates. WooCommerce reads HTTP Basic (and query-string keys)
    only when the request came over TLS (``is_ssl()``), and OAuth 1.0a one-legged otherwise. ``auto``:
    Basic over ``https``, OAuth 1.0a over ``http``. A forced ``basic``/``query`` over plain ``http`` is
    refused by the client (``InsecureTransport``, before any request) unless the host is this machine (a
    local TLS-terminating proxy, a sandbox): the keys would cross the network in clear."""
    if kind not in AUTH_KINDS:
        raise ValueError(f"auth must be one of {', '.join(AUTH_KINDS)}, got {kind!r}")
    secure = urlsplit(base_url).scheme.lower() == "https"
    if kind == "auto":
        kind = "basic" if secure else "oauth1"
    if kind == "oauth1":
        return OAuth1OneLegged("consumer_key", "consumer_secret")
    if kind == "query":  # for servers that strip the Authorization header
        return QueryParams({"consumer_key": "consumer_key", "consumer_secret": "consumer_secret"})
    return BasicAuth("consumer_key", "consumer_secret")


def woocommerce_spec(page_size: int = MAX_PAGE_SIZE, auth: AuthSpec | None = None) -> PlatformSpec:
    """The WooCommerce declaration with ``page_size`` orders per page (1..100) and ``auth`` (default
    Basic: an https shop)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
    return PlatformSpec(
        name="woocommerce",
        base_path="/wp-json/wc/v3",
        # the names of the two credentials
        auth=auth if auth is not None else BasicAuth("consumer_key", "consumer_secret"),
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
                record_key="id",
                paginator=_orders_paginator(page_size),
                window=MODIFIED,
            ),
            "order": Endpoint("/orders/{order_id}"),
            "order_refunds": Endpoint(
                "/orders/{order_id}/refunds",
                record_key="id",
                paginator=PageNumberPaginator(
                    page_size=MAX_PAGE_SIZE,
                    total_pages_header="X-WP-TotalPages",
                    total_results_header="X-WP-Total",
                ),
            ),
            "update_order": Endpoint("/orders/{order_id}", method="PUT"),
            "order_notes": Endpoint("/orders/{order_id}/notes", params={"type": "any"}),
            "add_order_note": Endpoint("/orders/{order_id}/notes", method="POST", idempotent=False),
            # The extension's own namespace, outside /wc/v3 (host-rooted paths).
            "shipment_trackings": Endpoint(TRACKINGS),
            "add_shipment_tracking": Endpoint(TRACKINGS, method="POST", idempotent=False),
            "delete_shipment_tracking": Endpoint(TRACKINGS + "/{tracking_id}", method="DELETE"),
            "shipment_tracking_providers": Endpoint(TRACKINGS + "/providers"),
            "product": Endpoint("/products/{product_id}"),
            "update_product": Endpoint("/products/{product_id}", method="PUT"),
            "variation": Endpoint("/products/{product_id}/variations/{variation_id}"),
            "update_variation": Endpoint("/products/{product_id}/variations/{variation_id}", method="PUT"),
            # Webhook subscriptions (platforms/woocommerce/webhooks.py) [C: REST docs _webhooks.md]. A
            # replayed create would subscribe the address twice: not replayed. ``force`` deletes outright
            # (webhooks have no trash; without it WooCommerce answers 501).
            "webhooks": Endpoint("/webhooks", params={"per_page": MAX_PAGE_SIZE}),
            "create_webhook": Endpoint("/webhooks", method="POST", idempotent=False),
            "delete_webhook": Endpoint("/webhooks/{webhook_id}", method="DELETE", params={"force": "true"}),
        },
    )


WOOCOMMERCE = woocommerce_spec()


class _TrustOnly(requests.adapters.HTTPAdapter):
    """Verifies every https answer against one CA bundle. ``Session.verify`` alone would not do: requests
    lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` in the environment override it."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self.ca_bundle
        return super().send(request, *args, **kwargs)


class WooCommerceConnector(Connector):
    spec = WOOCOMMERCE
    _providers: set[str] | None = None  # the shop's Shipment Tracking provider names, read once
    # The secret WooCommerce signs deliveries with (connection extra ``webhook_secret``): the hub chooses it
    # and hands it over when it creates a subscription.
    webhook_secret: Secret | None = None

    @classmethod
    def from_connection(
        cls,
        base_url: str,
        consumer_key: str | Secret,
        consumer_secret: str | Secret,
        *,
        page_size: int = MAX_PAGE_SIZE,
        auth: str = "auto",
        ca_bundle: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> WooCommerceConnector:
        """A connector for one shop. ``base_url`` is the site's home URL (``https://shop.example.com``, or a
        sandbox's ``http://127.0.0.1:8702``; OAuth signs it as WooCommerce rebuilds it from its home URL);
        the API lives under ``/wp-json/wc/v3`` there. ``auth``: see ``auth_for`` (refused here, before any
        request, when insecure). ``ca_bundle``: a PEM file of the CAs to trust for an https shop (a private
        CA, a test certificate); default the system's."""
        spec = woocommerce_spec(page_size, auth_for(base_url, auth))
        if ca_bundle:
            session = session or requests.Session()
            session.mount("https://", _TrustOnly(ca_bundle))
        return cls.connect(
            base_url,
            {"consumer_key": consumer_key, "consumer_secret": consumer_secret},
            retry=retry,
            timeout=timeout,
            session=session,
            sleep=sleep,
            spec=spec,
        )

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
        """One order by id (with its refunds, as ``fetch_orders`` gives them); raises ``ApiError`` (status
        404) when the shop has no such order."""
        if not str(order_id).isdigit():
            raise ValueError(f"WooCommerce order ids are numeric, got {order_id!r}")
        return self._with_refunds(self.get("order", path_params={"order_id": order_id}))

    def records_from_page(self, endpoint_name: str, records: list[Any]) -> list[Any]:
        """Orders with refunds get their refund objects: one more request per such order (a small share of
        orders; the rest cost nothing)."""
        if endpoint_name != self.orders_endpoint:
            return records
        return [self._with_refunds(order) if isinstance(order, dict) else order for order in records]

    def _with_refunds(self, order: dict[str, Any]) -> dict[str, Any]:
        """``order`` plus ``REFUNDS_KEY``: the objects of ``GET /orders/{id}/refunds`` its ``refunds[]``
        summary names (refunds made since the order was read belong to its next version). The summary
        carries no lines; these say which lines each refund covered."""
        summary = order.get("refunds")
        if not isinstance(summary, list) or not summary or not str(order.get("id", "")).isdigit():
            return order
        wanted = [item.get("id") for item in summary if isinstance(item, dict)]
        found: dict[Any, Any] = {}
        for page in self.fetch_pages("order_refunds", path_params={"order_id": order["id"]}):
            found.update((refund.get("id"), refund) for refund in page if isinstance(refund, dict))
        missing = [refund_id for refund_id in wanted if refund_id not in found]
        if missing:  # deleted since the order was listed: its next version (without them) will say so
            raise TransientError(
                f"order {order['id']} lists refunds {missing} that GET /orders/{order['id']}/refunds no "
                "longer has (the order changed while it was read)",
                platform=self.platform,
            )
        return {**order, REFUNDS_KEY: [found[refund_id] for refund_id in wanted]}

    # -- pushes --

    def call(
        self,
        name: str,
        path_params: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request to endpoint ``name`` (paths under ``/wp-json/`` other than wc/v3 are host-rooted);
        returns the JSON body."""
        request = self.build_request(name, path_params=path_params, params=params, body=body)
        request.rooted = self.endpoint(name).path.startswith(ROOTED_PREFIX)
        return self.client.send(request).body

    # -- webhook subscriptions (connectors.webhooks.RegistersWebhooks) -----------------------------------

    def _subscription_call(self, name: str, **options: Any) -> Any:
        try:
            return self.call(name, **options)
        except AuthError:
            raise
        except ApiError as error:  # a 4xx about the subscription itself: typed, keeping what WC said
            if error.status is not None and error.status >= 500:
                raise
            raise SubscriptionRefused(
                error.message, platform=self.platform, status=error.status, code=error.code
            ) from None

    @staticmethod
    def _subscription(record: Any) -> Subscription:
        if not isinstance(record, dict) or record.get("id") is None:
            raise MalformedResponse("webhook answer without an id", platform="woocommerce")
        return Subscription(
            str(record["id"]), str(record.get("topic") or ""), str(record.get("delivery_url") or "")
        )

    def create_webhook(self, topic: str, address: str) -> Subscription:
        """Subscribe ``address`` to ``topic`` (``order.updated``), signed with the connection's
        ``webhook_secret``; WooCommerce pings the address once on creation (answered 200, no events)."""
        if self.webhook_secret is None:
            raise ValueError("set webhook_secret in the connection's extra before registering webhooks")
        record = self._subscription_call(
            "create_webhook",
            body={
                "name": f"ChannelHub {topic}",
                "topic": topic,
                "delivery_url": address,
                "secret": self.webhook_secret.reveal(),
                "status": "active",
            },
        )
        return self._subscription(record)

    def list_webhooks(self) -> list[Subscription]:
        """The shop's webhooks (the first 100: the hub makes four)."""
        records = self._subscription_call("webhooks")
        if not isinstance(records, list):
            raise MalformedResponse("webhooks answer is not a list", platform=self.platform)
        return [self._subscription(record) for record in records]

    def delete_webhook(self, subscription_id: str) -> None:
        if not subscription_id.isdigit():
            raise ValueError(f"WooCommerce webhook ids are numeric, got {subscription_id!r}")
        self._subscription_call("delete_webhook", path_params={"webhook_id": subscription_id})

    def shipment_trackings(self, order_id: str) -> list[dict[str, Any]] | None:
        """The order's Shipment Tracking items; None when the shop does not have the extension."""
        try:
            return list(self.call("shipment_trackings", {"order_id": order_id}))
        except ApiError as error:
            if error.status == 404 and error.code == "rest_no_route":
                return None
            raise

    def shipment_providers(self, order_id: str) -> set[str]:
        """Provider names the shop's extension knows (cached per connector: the list is the plugin's)."""
        cached = self._providers
        if cached is None:
            regions = self.call("shipment_tracking_providers", {"order_id": order_id})
            cached = {name for providers in (regions or {}).values() for name in providers}
            self._providers = cached
        return cached

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        """Record ``push`` on the WooCommerce order, on the shared template: ``platforms.woocommerce.pushes``
        (the module docstring has every rule)."""
        return pushes.push_woocommerce_shipment(self, push)

    def set_stock(self, push: StockPush) -> PushResult:
        """Set a product's or variation's ``stock_quantity``: ``platforms.woocommerce.pushes.set_stock``."""
        return pushes.set_stock(self, push)

    def listed_stock(self, listing: StockPush) -> int | None:
        """The product's or variation's ``stock_quantity`` (None: the shop does not manage its stock).
        ``listing.quantity`` is ignored."""
        product_id = (listing.channel_product_id or "").strip()
        if not product_id.isdigit():
            raise ApiError(f"a WooCommerce product id is numeric, got {product_id!r}", platform=self.platform)
        read, _, ids, _ = pushes.stock_target(product_id, (listing.channel_variant_id or "").strip())
        value = self.call(read, ids).get("stock_quantity")
        return None if value is None else int(value)


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> WooCommerceConnector:
    """The connector for a configured channel: site URL, consumer key (login) and consumer secret (password)
    from its Airflow connection, and its extras ``auth`` (``auto``, ``oauth1``, ``basic``, ``query``) and
    ``ca_bundle``. The channel's page size is capped at WooCommerce's 100."""
    if not credentials.login:
        raise ValueError(
            f"connection {credentials.conn_id!r}: set the WooCommerce consumer key as the login "
            "(and the consumer secret as the password)"
        )
    page_size = min(channel.page_size, MAX_PAGE_SIZE)
    if page_size < channel.page_size:
        log.info("%s: page_size %d capped at WooCommerce's %d", channel.code, channel.page_size, page_size)
    extra = credentials.extra or {}
    connector = WooCommerceConnector.from_connection(
        credentials.base_url,
        credentials.login,
        credentials.secret,
        page_size=page_size,
        auth=str(extra.get("auth") or "auto"),
        ca_bundle=extra.get("ca_bundle") or None,
        timeout=channel.http_timeout,
    )
    if extra.get("webhook_secret"):
        register_secret(str(extra["webhook_secret"]))  # it travels in create_webhook's body: never logged
        connector.webhook_secret = Secret(str(extra["webhook_secret"]))
    return connector
