"""Shopify Admin API 2026-10 (REST for orders and fulfillments, GraphQL for stock) as a declaration, plus
named operations. docs/platform-notes.md (Shopify) records the sources and what changed from 2024-10.

Version: pinned in the platform declaration (``SHOPIFY.path_variables``), overridable per connection
(extra ``api_version``). Shopify releases a version each quarter (January, April, July, October, 17:00 UTC)
and supports it for 12 months, then answers it as the oldest supported one ("falls forward"): a stale pin
silently changes the contract, so a connector is refused (``UnsupportedApiVersion``) for a version that is
not a dated stable one or is past support on the day it is built.

Wire facts:
- ``X-Shopify-Access-Token`` header on every call; URLs ``/admin/api/{version}/...json``.
- ``GET orders.json?status=any&updated_at_min=..&updated_at_max=..&limit=250``: ``status`` defaults to
  ``open`` on Shopify, so ``any`` is required to see closed, archived and cancelled orders. Only orders
  created in the last 60 days are visible unless the token has ``read_all_orders``
  (``GET /admin/oauth/access_scopes.json``): ``warnings_for_window`` says so before a backfill reaches
  past that.
- Cursor pagination through ``Link: <...page_info=...>; rel="next"``. The next URL is followed exactly as
  given: it already carries ``page_info`` and ``limit``, and adding the original filters is a 400.
- REST: a leaky bucket per app and shop, announced as ``X-Shopify-Shop-Api-Call-Limit: used/size``;
  overflow is a 429 with ``Retry-After`` (float seconds). The client-side limiter keeps a few slots free.
  GraphQL: a cost bucket; a throttled call is HTTP 200 with ``errors[0].extensions.code == "THROTTLED"``
  and ``extensions.cost`` (requested cost, currently available, restore rate): the shared client retries
  it, waiting as long as the bucket needs to refill for the request's cost.
- Errors: ``{"errors": "..."}`` or ``{"errors": {field: [..]}}`` (REST), ``{"errors": [{"message": ..,
  "extensions": {"code": ..}}]}`` (GraphQL); request id in ``X-Request-Id``.

Pushes: a shipment goes through the order's fulfillment orders (``POST fulfillments.json`` with
``line_items_by_fulfillment_order`` and ``tracking_info``), a corrected number through
``fulfillments/{id}/update_tracking.json``; stock through GraphQL ``inventorySetQuantities`` with
``changeFromQuantity`` (compare-and-set against the level read just before) and the ``@idempotent`` key
that 2026-04 made mandatory. ``pushes.py`` (on the shared template ``connectors.shipping``) says how each is
made idempotent.

Window boundaries: ChannelHub windows are half-open ``[start, end)``, Shopify's ``updated_at_min`` and
``updated_at_max`` are both inclusive. We send ``updated_at_max = end`` (ceiled to the second) rather than
``end - 1s``: an order updated exactly at ``end`` is then returned by this window *and* by the next one
(which starts at ``end``). That duplicate is harmless because ingest is idempotent, whereas ``end - 1s``
would lose any update Shopify stores with sub-second precision between the two. No window limit applies,
so a window is one listing however long it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from connectors.auth import HeaderToken, Secret
from connectors.errors import ApiError, AuthError, ConnectorError, MalformedResponse
from connectors.framework import Connector, Endpoint, PlatformSpec, SyncWarning
from connectors.http import (
    ErrorPolicy,
    ErrorShape,
    HttpClient,
    LeakyBucketThrottle,
    RateLimitSignal,
    Request,
    RetryPolicy,
    dig,
)
from connectors.paginators import LinkHeaderPaginator
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.shipping import ShipmentRefused
from connectors.webhooks import Subscription, SubscriptionRefused
from connectors.windows import ISO8601_UTC, WindowSpec
from platforms.shopify import pushes
from platforms.shopify.webhooks import graphql_topic, rest_topic

MAX_PAGE_SIZE = 250
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
STANDARD_LEAK_PER_SECOND = 2.0  # Standard plan; Advanced 4, Plus 20
ITEMS_PER_LEVELS_READ = 50  # inventory_levels.json takes at most 50 inventory_item_ids
ORDER_VISIBILITY_DAYS = 60  # orders created earlier need the read_all_orders scope
ACCESS_SCOPES_PATH = "/admin/oauth/access_scopes.json"  # unversioned

WEBHOOK_CREATE = (
    "mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) { "
    "webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) { "
    "webhookSubscription { id topic uri } userErrors { field message } } }"
)
WEBHOOK_LIST = "query { webhookSubscriptions(first: 100) { nodes { id topic uri } } }"
WEBHOOK_DELETE = (
    "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { "
    "deletedWebhookSubscriptionId userErrors { field message } } }"
)

UPDATED_AT = WindowSpec("updated_at_min", "updated_at_max", ISO8601_UTC, max_span=None)


def graphql_throttle_wait(body: Any) -> float | None:
    """Seconds until the GraphQL cost bucket holds the throttled request's cost again:
    (requestedQueryCost - currentlyAvailable) / restoreRate, at least one point's worth (a throttle that
    says the cost fits would otherwise be retried at once); None without the cost extension."""
    cost = dig(body, "extensions.cost")
    requested = dig(cost, "requestedQueryCost")
    available = dig(cost, "throttleStatus.currentlyAvailable")
    rate = dig(cost, "throttleStatus.restoreRate")
    numbers = (requested, available, rate)
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers) or rate <= 0:
        return None
    return max(float(requested) - float(available), 1.0) / float(rate)


SHOPIFY = PlatformSpec(
    name="shopify",
    base_path="/admin/api/{api_version}",
    # The one place the pinned version is declared: the newest stable version (released 2026-10-01,
    # supported until 2027-10-01). A connection's extra ``api_version`` overrides it.
    path_variables={"api_version": "2026-10"},
    auth=HeaderToken("X-Shopify-Access-Token", credential="access_token"),
    errors=ErrorPolicy(
        shapes=(
            # GraphQL: a code in the first error (HTTP 200). REST bodies have no such path, so they read on.
            ErrorShape(
                code_path="errors.0.extensions.code", message_path="errors.0.message", ok_codes=frozenset()
            ),
            ErrorShape(message_path="errors"),
            ErrorShape(message_path="error_description"),
        ),
        rate_limit=RateLimitSignal(
            statuses=frozenset({429}),
            retry_after_header="Retry-After",
            body_codes=frozenset({"THROTTLED"}),
            retry_after_from_body=graphql_throttle_wait,
        ),
        transient_codes=frozenset({"INTERNAL_SERVER_ERROR"}),
        request_id_header="X-Request-Id",
    ),
    throttle=lambda: LeakyBucketThrottle(CALL_LIMIT_HEADER, STANDARD_LEAK_PER_SECOND),
    endpoints={
        "orders": Endpoint(
            "/orders.json",
            params={"status": "any", "limit": MAX_PAGE_SIZE},
            records_path="orders",
            record_key="id",
            paginator=LinkHeaderPaginator(),
            window=UPDATED_AT,
        ),
        "orders_count": Endpoint(
            "/orders/count.json", params={"status": "any"}, records_path="count", window=UPDATED_AT
        ),
        "order": Endpoint("/orders/{order_id}.json", records_path="order"),
        "fulfillment_orders": Endpoint(
            "/orders/{order_id}/fulfillment_orders.json", records_path="fulfillment_orders"
        ),
        # A replayed create would ship the items twice (or fail with a misleading 422): never replayed.
        "create_fulfillment": Endpoint(
            "/fulfillments.json", method="POST", records_path="fulfillment", idempotent=False
        ),
        # Replaying could e-mail the customer twice when notify_customer is on: not replayed either.
        "update_tracking": Endpoint(
            "/fulfillments/{fulfillment_id}/update_tracking.json",
            method="POST",
            records_path="fulfillment",
            idempotent=False,
        ),
        "locations": Endpoint("/locations.json", records_path="locations"),
        "variant": Endpoint("/variants/{variant_id}.json", records_path="variant"),
        "inventory_levels": Endpoint("/inventory_levels.json", records_path="inventory_levels"),
        # inventorySetQuantities under an @idempotent key: a replay with the same key and variables is
        # answered with the first answer and applied once, so replaying after a 5xx or a timeout is safe.
        "graphql_set_quantities": Endpoint("/graphql.json", method="POST", idempotent=True),
        # Webhook subscriptions (platforms/shopify/webhooks.py). A replayed create could subscribe the
        # address twice, and a replayed delete answer "not found": neither is replayed. The listing is a
        # query, safe to replay.
        "graphql_webhooks_read": Endpoint("/graphql.json", method="POST", idempotent=True),
        "graphql_webhooks_write": Endpoint("/graphql.json", method="POST", idempotent=False),
    },
)
DEFAULT_API_VERSION: str = SHOPIFY.path_variables["api_version"]

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials
    from connectors.tokens import TokenStore


# --- API versions --------------------------------------------------------------------------------------

RELEASE_MONTHS = (1, 4, 7, 10)
RELEASE_HOUR_UTC = 17
SUPPORT_MONTHS = 12
_DATED_VERSION = re.compile(r"^(\d{4})-(01|04|07|10)$")


class UnsupportedApiVersion(ValueError):
    """A Shopify API version the hub will not pin: not a dated stable version, or not supported (not released
    yet, or past its 12 months) on the day the connector is built."""


def _released_at(year: int, month: int) -> datetime:
    return datetime(year, month, 1, RELEASE_HOUR_UTC, tzinfo=UTC)


def supported_versions(now: datetime) -> list[str]:
    """The stable versions Shopify supports at ``now``, oldest first: released (quarterly, 17:00 UTC on the
    quarter's first day) and less than 12 months ago."""
    year, month = now.year, max(m for m in RELEASE_MONTHS if m <= now.month)
    if _released_at(year, month) > now:  # the quarter's version comes out at 17:00 UTC
        year, month = (year, month - 3) if month > 1 else (year - 1, 10)
    versions = []
    while _released_at(year + SUPPORT_MONTHS // 12, month) > now:
        versions.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 3) if month > 1 else (year - 1, 10)
    return versions[::-1]


def check_api_version(version: str, now: datetime | None = None) -> str:
    """``version`` when Shopify supports it at ``now`` (default: this moment), else ``UnsupportedApiVersion``
    naming the supported window."""
    now = now or datetime.now(UTC)
    window = supported_versions(now)
    span = f"supported on {now:%Y-%m-%d}: {window[0]} .. {window[-1]}, each for 12 months after its release"
    if not _DATED_VERSION.match(version):
        raise UnsupportedApiVersion(
            f"Shopify API version {version!r} is not a dated stable version (YYYY-01/04/07/10; {span})"
        )
    if version not in window:
        state = "not released yet" if version > window[-1] else "past Shopify's support"
        raise UnsupportedApiVersion(f"Shopify API version {version!r} is {state} ({span})")
    return version


class ShopifyConnector(Connector):
    spec = SHOPIFY

    page_size: int = MAX_PAGE_SIZE
    notify_customer: bool = False  # Shopify's default; a channel's extra may turn shipping e-mails on

    def __init__(self, client: HttpClient) -> None:
        super().__init__(client)
        self._inventory_items: dict[str, int] = {}  # variant id -> inventory item id (fixed for a variant)
        self._active_locations: list[int] | None = None
        self._scopes: frozenset[str] | None = None  # the token's access scopes, read once
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # the 60-day visibility horizon's

    @classmethod
    def from_connection(
        cls,
        base_url: str,
        access_token: str | Secret,
        *,
        api_version: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        leak_per_second: float = STANDARD_LEAK_PER_SECOND,
        bucket_headroom: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        notify_customer: bool = False,
        now: datetime | None = None,
    ) -> ShopifyConnector:
        """A connector for one shop. ``base_url`` is the shop's URL (``https://x.myshopify.com``, or a
        sandbox's ``http://127.0.0.1:8701``); ``api_version`` defaults to the declared one and must be
        supported at ``now`` (default: this moment); ``leak_per_second`` is the plan's refill rate the
        limiter plans with."""
        version = check_api_version(api_version or DEFAULT_API_VERSION, now)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
        connector = cls.connect(
            base_url,
            {"access_token": access_token},
            path_variables={"api_version": version},
            retry=retry,
            timeout=timeout,
            throttle=LeakyBucketThrottle(CALL_LIMIT_HEADER, leak_per_second, headroom=bucket_headroom),
            session=session,
            sleep=sleep,
        )
        connector.page_size = page_size
        connector.notify_customer = notify_customer
        return connector

    @property
    def api_version(self) -> str:
        return self.client.base_path.rsplit("/", 1)[-1]

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

    # -- what a window may miss ---------------------------------------------------------------------------

    def access_scopes(self) -> frozenset[str]:
        """The token's access scopes (``GET /admin/oauth/access_scopes.json``), read once per connector."""
        if self._scopes is None:
            response = self.client.send(Request("GET", ACCESS_SCOPES_PATH, rooted=True))
            handles = dig(response.body, "access_scopes")
            if not isinstance(handles, list):
                raise MalformedResponse("access_scopes answer without a list", platform=self.platform)
            self._scopes = frozenset(
                str(item["handle"]) for item in handles if isinstance(item, dict) and item.get("handle")
            )
        return self._scopes

    def warnings_for_window(self, window_start: datetime, window_end: datetime) -> list[SyncWarning]:
        """A window starting more than 60 days ago, pulled with a token without ``read_all_orders``, misses
        every order created before the horizon: Shopify leaves them out without saying so. The scopes are
        read only for such a window (once per connector)."""
        horizon = self.clock() - timedelta(days=ORDER_VISIBILITY_DAYS)
        if window_start >= horizon:
            return []
        try:
            scopes = self.access_scopes()
        except AuthError:
            raise
        except ApiError as error:  # the run can still pull what is visible; say what is unknown
            return [
                SyncWarning(
                    "order_visibility_unknown",
                    f"the window starts {window_start:%Y-%m-%d %H:%M} UTC, more than {ORDER_VISIBILITY_DAYS}"
                    f" days ago, and the token's access scopes could not be read ({error.message}): orders "
                    f"created before {horizon:%Y-%m-%d %H:%M} UTC are missing unless it has read_all_orders",
                )
            ]
        if "read_all_orders" in scopes:
            return []
        return [
            SyncWarning(
                "order_visibility_limit",
                f"the window starts {window_start:%Y-%m-%d %H:%M} UTC, more than {ORDER_VISIBILITY_DAYS} "
                "days ago, and the token lacks read_all_orders: Shopify leaves out every order created "
                f"before {horizon:%Y-%m-%d %H:%M} UTC, so this run pulled none of them. Grant the app "
                "read_all_orders (with read_orders) and run the window again.",
            )
        ]

    # -- webhook subscriptions (connectors.webhooks.RegistersWebhooks) -----------------------------------

    def _graphql(self, endpoint: str, query: str, variables: dict[str, Any], field_name: str) -> Any:
        """``data.<field_name>`` of one GraphQL call; top-level errors the client let through (a bad
        variable, a missing scope) and ``userErrors`` are ``SubscriptionRefused``."""
        answer = self.get(endpoint, body={"query": query, "variables": variables})
        errors = answer.get("errors") if isinstance(answer, dict) else None
        payload = dig(answer, f"data.{field_name}")
        if errors or payload is None:
            words = "; ".join(str(e.get("message")) for e in errors or [] if isinstance(e, dict))
            raise SubscriptionRefused(words or f"GraphQL answer without {field_name}", platform=self.platform)
        user_errors = payload.get("userErrors") if isinstance(payload, dict) else None
        if user_errors:
            words = "; ".join(
                f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')}"
                for e in user_errors
                if isinstance(e, dict)
            )
            raise SubscriptionRefused(words, platform=self.platform, code="userErrors")
        return payload

    @staticmethod
    def _subscription(node: Any) -> Subscription:
        if not isinstance(node, dict) or not node.get("id"):
            raise MalformedResponse("webhook subscription without an id", platform="shopify")
        return Subscription(
            str(node["id"]), rest_topic(str(node.get("topic") or "")), str(node.get("uri") or "")
        )

    def create_webhook(self, topic: str, address: str) -> Subscription:
        """Subscribe ``address`` to ``topic`` (the REST name, ``orders/create``), JSON deliveries."""
        payload = self._graphql(
            "graphql_webhooks_write",
            WEBHOOK_CREATE,
            {"topic": graphql_topic(topic), "sub": {"uri": address, "format": "JSON"}},
            "webhookSubscriptionCreate",
        )
        return self._subscription(payload.get("webhookSubscription"))

    def list_webhooks(self) -> list[Subscription]:
        """The app's subscriptions on this shop (the first 100: the hub makes five)."""
        payload = self._graphql("graphql_webhooks_read", WEBHOOK_LIST, {}, "webhookSubscriptions")
        return [self._subscription(node) for node in payload.get("nodes") or []]

    def delete_webhook(self, subscription_id: str) -> None:
        """Remove one subscription by its id (``gid://shopify/WebhookSubscription/<n>``)."""
        self._graphql(
            "graphql_webhooks_write", WEBHOOK_DELETE, {"id": subscription_id}, "webhookSubscriptionDelete"
        )

    # -- pushes -------------------------------------------------------------------------------------------

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        """Through the order's fulfillment orders, on the shared template: ``platforms.shopify.pushes``."""
        return pushes.push_shopify_shipment(self, push)

    def set_stock(self, push: StockPush) -> PushResult:
        """GraphQL ``inventorySetQuantities`` with compare-and-set: ``platforms.shopify.pushes.set_stock``."""
        return pushes.set_stock(self, push)

    def listed_stock(self, listing: StockPush) -> int | None:
        """What Shopify lists as available for the listing's inventory item at its location (None: no level
        there yet). ``listing.quantity`` is ignored."""
        [result] = self.listed_stocks([listing])
        if isinstance(result, ConnectorError):
            raise result
        return result

    def listed_stocks(self, listings: Sequence[StockPush]) -> list[int | ConnectorError | None]:
        """``listed_stock`` of many listings: one ``inventory_levels.json`` read per 50 inventory items of a
        location instead of one per listing, so a deep reconciliation makes about half the requests (what
        remains is one variant lookup per listing, for its inventory item id), under a bucket that refills
        2 requests a second. A listing whose item or location cannot be resolved, or whose read failed,
        holds the error; the others are still read."""
        results: list[int | ConnectorError | None] = [None] * len(listings)
        by_location: dict[int, list[tuple[int, int]]] = {}  # location id -> [(listing's index, item id)]
        for index, listing in enumerate(listings):
            try:
                location_id = self.location_id(listing)
                by_location.setdefault(location_id, []).append((index, self.inventory_item_id(listing)))
            except (ShipmentRefused, ConnectorError) as error:
                results[index] = self._as_error(error)
        for location_id, wanted in by_location.items():
            for start in range(0, len(wanted), ITEMS_PER_LEVELS_READ):
                chunk = wanted[start : start + ITEMS_PER_LEVELS_READ]
                try:
                    available = self.available_many({item for _, item in chunk}, location_id)
                except (ShipmentRefused, ConnectorError) as error:
                    for index, _ in chunk:
                        results[index] = self._as_error(error)
                    continue
                for index, item in chunk:
                    results[index] = available.get(item)
        return results

    def _as_error(self, error: ShipmentRefused | ConnectorError) -> ConnectorError:
        if isinstance(error, ShipmentRefused):
            return ApiError(error.result.detail, platform=self.platform)
        return error

    def inventory_item_id(self, push: StockPush) -> int:
        variant_id = push.channel_variant_id
        if not variant_id or not variant_id.isdigit():
            raise ShipmentRefused(
                "Shopify stock is set per inventory item: the push needs the channel_variant_id "
                f"(sku {push.merchant_sku!r}; the REST API has no lookup by SKU)"
            )
        cached = self._inventory_items.get(variant_id)
        if cached is None:
            variant = pushes.call(self, "variant", path_params={"variant_id": variant_id})
            cached = self._inventory_items[variant_id] = int(variant["inventory_item_id"])
        return cached

    def location_id(self, push: StockPush) -> int:
        if push.location_ref is not None:
            if not push.location_ref.isdigit():
                raise ShipmentRefused(f"Shopify location ids are numeric, got {push.location_ref!r}")
            return int(push.location_ref)
        if self._active_locations is None:
            locations = pushes.call(self, "locations")
            self._active_locations = [int(loc["id"]) for loc in locations if loc.get("active")]
        if len(self._active_locations) != 1:
            raise ShipmentRefused(
                f"the shop has {len(self._active_locations)} active locations: the push must name one "
                "(location_ref)"
            )
        return self._active_locations[0]

    def available(self, item_id: int, location_id: int) -> int | None:
        return self.available_many({item_id}, location_id).get(item_id)

    def available_many(self, item_ids: set[int], location_id: int) -> dict[int, int | None]:
        """Available per inventory item at the location (at most 50 items); an item without a level there
        is missing from the answer."""
        levels = pushes.call(
            self,
            "inventory_levels",
            params={
                "inventory_item_ids": ",".join(str(item) for item in sorted(item_ids)),
                "location_ids": location_id,
                "limit": ITEMS_PER_LEVELS_READ,  # one level per item at one location: a single page
            },
        )
        return {
            int(level["inventory_item_id"]): level.get("available")
            for level in levels
            if int(level["location_id"]) == location_id and int(level["inventory_item_id"]) in item_ids
        }


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> ShopifyConnector:
    """The connector for a configured channel: URL and token from its Airflow connection; the API version,
    the plan's leak rate and shipping e-mails may be set in the connection's extra (``api_version``,
    ``leak_per_second``, ``notify_customer``)."""
    return ShopifyConnector.from_connection(
        credentials.base_url,
        credentials.secret,
        api_version=credentials.extra.get("api_version") or None,
        page_size=channel.page_size,
        timeout=channel.http_timeout,
        leak_per_second=float(credentials.extra.get("leak_per_second", STANDARD_LEAK_PER_SECOND)),
        notify_customer=str(credentials.extra.get("notify_customer", "false")).lower()
        in ("1", "true", "yes"),
    )
