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

Pushes (section 1.7, 1.8): a shipment goes through the order's fulfillment orders (``POST fulfillments.json``
with ``line_items_by_fulfillment_order`` and ``tracking_info``), a changed number through
``update_tracking.json``; stock through ``inventory_levels/set.json``, or GraphQL ``inventorySetQuantities``
when the hub sends ``expected_current`` (compare-and-set exists only there). See ``push_shipment`` and
``set_stock`` for idempotency.

Window boundaries: ChannelHub windows are half-open ``[start, end)``, Shopify's ``updated_at_min`` and
``updated_at_max`` are both inclusive. We send ``updated_at_max = end`` (ceiled to the second) rather than
``end - 1s``: an order updated exactly at ``end`` is then returned by this window *and* by the next one
(which starts at ``end``). That duplicate is harmless because ingest is idempotent, whereas ``end - 1s``
would lose any update Shopify stores with sub-second precision between the two. No window limit applies,
so a window is one listing however long it is.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests

from connectors.auth import HeaderToken, Secret
from connectors.errors import ApiError, AuthError, ConnectorError, MalformedResponse, RateLimited
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import (
    ErrorPolicy,
    ErrorShape,
    HttpClient,
    LeakyBucketThrottle,
    RateLimitSignal,
    RetryPolicy,
    dig,
)
from connectors.paginators import LinkHeaderPaginator
from connectors.pushes import PushResult, ShipmentPush, StockPush
from connectors.windows import ISO8601_UTC, WindowSpec

DEFAULT_API_VERSION = "2024-10"
MAX_PAGE_SIZE = 250
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
STANDARD_LEAK_PER_SECOND = 2.0  # Standard plan; Advanced 4, Plus 20
ITEMS_PER_LEVELS_READ = 50  # inventory_levels.json takes at most 50 inventory_item_ids

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
            record_key="id",
            paginator=LinkHeaderPaginator(),
            window=UPDATED_AT,
        ),
        "orders_count": Endpoint(
            "/orders/count.json", params={"status": "any"}, records_path="count", window=UPDATED_AT
        ),
        "order": Endpoint("/orders/{order_id}.json", records_path="order"),
        # Pushes (platform-contracts.md §1.7, §1.8).
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
        # An absolute set: replaying it lands on the same level, so it is safe to replay.
        "set_inventory_level": Endpoint(
            "/inventory_levels/set.json", method="POST", records_path="inventory_level", idempotent=True
        ),
        # inventorySetQuantities with compareQuantity. A replay of an applied set fails the compare, and
        # set_stock then reads the level back, so replaying cannot apply anything twice.
        "graphql_set_quantities": Endpoint("/graphql.json", method="POST", idempotent=True),
    },
)

# The hub's carrier names (as warehouses report them) -> the company names Shopify knows, for which it
# builds tracking links. Anything else is sent as given: Shopify keeps unknown companies ("Other" carrier)
# without a link, it does not reject them.
CARRIER_COMPANIES: dict[str, str] = {
    "UPS": "UPS",
    "USPS": "USPS",
    "FEDEX": "FedEx",
    "DHL": "DHL Express",
    "DHL EXPRESS": "DHL Express",
    "SF": "SF Express",
    "SF EXPRESS": "SF Express",
    "SHUNFENG": "SF Express",
    "YTO": "YTO Express",
    "ZTO": "ZTO Express",
    "CHINA POST": "China Post",
    "CHINAPOST": "China Post",
}

SET_QUANTITIES_MUTATION = """
mutation SetAvailable($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { createdAt reason changes { name delta quantityAfterChange } }
    userErrors { code field message }
  }
}
""".strip()

if TYPE_CHECKING:
    from channelhub.config import ChannelConfig
    from channelhub.credentials import ChannelCredentials
    from connectors.auth import TokenStore

_API_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")


STALE_RETRIES = 3  # compare-and-set attempts while sales keep changing the level


class _Refused(Exception):
    """A push Shopify (or the push's own data) refuses: retrying the same push cannot help."""

    def __init__(self, detail: str, extra: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.result = PushResult("rejected", detail=detail, extra=extra or {})


def carrier_company(carrier: str) -> str:
    """The tracking company to send for the hub's carrier name (unknown names go as given)."""
    name = carrier.strip()
    return CARRIER_COMPANIES.get(name.upper(), name)


def platform_words(error: ApiError) -> str:
    """Shopify's own error text from an ``{"errors": ...}`` body ("..." / ["..."] / {field: [...]})."""
    try:
        errors = json.loads(error.body).get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, str):
        return errors
    if isinstance(errors, list) and errors:
        return "; ".join(str(item) for item in errors)
    if isinstance(errors, dict) and errors:
        parts = []
        for field_name, messages in errors.items():
            texts = messages if isinstance(messages, list) else [messages]
            parts.append(f"{field_name}: {', '.join(str(text) for text in texts)}")
        return "; ".join(parts)
    return error.message


_ORDER_FIELDS = "id,name,cancelled_at,line_items,fulfillments"


def _tracking_numbers(fulfillment: dict[str, Any]) -> set[str]:
    numbers = {str(n) for n in fulfillment.get("tracking_numbers") or [] if n}
    if fulfillment.get("tracking_number"):
        numbers.add(str(fulfillment["tracking_number"]))
    return numbers


def _fulfilled_lines(fulfillment: dict[str, Any]) -> Counter[str]:
    return Counter(
        {str(item["id"]): int(item.get("quantity") or 0) for item in fulfillment.get("line_items") or []}
    )


def _fulfillment_extra(fulfillment: dict[str, Any]) -> dict[str, str]:
    return {
        "name": str(fulfillment.get("name") or ""),
        "tracking_company": str(fulfillment.get("tracking_company") or ""),
        "tracking_url": str(fulfillment.get("tracking_url") or ""),
    }


def _allocate(
    order_id: str, fulfillment_orders: list[dict[str, Any]], wanted: Counter[str]
) -> list[dict[str, Any]]:
    """``line_items_by_fulfillment_order`` for the wanted {line item id: quantity}: open fulfillment order
    lines first, up to what each can still ship. What does not fit goes to the first candidate anyway, so
    Shopify answers with its own refusal (over quantity, closed fulfillment order)."""
    placed: dict[int, Counter[int]] = {}
    for line_id, quantity in wanted.items():
        candidates = [
            (fo, item)
            for fo in fulfillment_orders
            for item in fo.get("line_items") or []
            if str(item.get("line_item_id")) == line_id
        ]
        if not candidates:
            raise _Refused(f"line item {line_id} is not on Shopify order {order_id}")
        open_ones = [(fo, item) for fo, item in candidates if fo.get("status") in ("open", "in_progress")]
        left = quantity
        for fo, item in open_ones:
            take = min(left, int(item.get("fulfillable_quantity") or 0))
            if take > 0:
                placed.setdefault(int(fo["id"]), Counter())[int(item["id"])] += take
                left -= take
        if left > 0:
            fo, item = (open_ones or candidates)[0]
            placed.setdefault(int(fo["id"]), Counter())[int(item["id"])] += left
    return [
        {
            "fulfillment_order_id": fo_id,
            "fulfillment_order_line_items": [
                {"id": item_id, "quantity": qty} for item_id, qty in items.items()
            ],
        }
        for fo_id, items in placed.items()
    ]


def _graphql_payload(answer: Any, field_name: str, platform: str) -> dict[str, Any]:
    """The mutation's payload; top-level GraphQL errors become a throttle (retry later) or a refusal."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if errors:
        codes = {
            str((error.get("extensions") or {}).get("code")) for error in errors if isinstance(error, dict)
        }
        words = "; ".join(str(error.get("message")) for error in errors if isinstance(error, dict))
        if "THROTTLED" in codes:
            raise RateLimited(f"GraphQL throttled: {words}", platform=platform)
        raise _Refused(words or "GraphQL error", {"code": ",".join(sorted(codes))})
    payload = dig(answer, f"data.{field_name}")
    if not isinstance(payload, dict):
        raise MalformedResponse(f"GraphQL answer has no data.{field_name}", platform=platform)
    return payload


class ShopifyConnector(Connector):
    spec = SHOPIFY

    page_size: int = MAX_PAGE_SIZE
    notify_customer: bool = False  # Shopify's default; a channel's extra may turn shipping e-mails on

    def __init__(self, client: HttpClient) -> None:
        super().__init__(client)
        self._inventory_items: dict[str, int] = {}  # variant id -> inventory item id (fixed for a variant)
        self._active_locations: list[int] | None = None

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
        notify_customer: bool = False,
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
        connector.notify_customer = notify_customer
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

    # -- pushes -------------------------------------------------------------------------------------------

    def push_shipment(self, push: ShipmentPush) -> PushResult:
        """Ship ``push.lines`` with their tracking, through the order's fulfillment orders.

        Idempotency comes from reading the order first (Shopify keeps no caller key on a fulfillment):
        - a successful fulfillment with this tracking number that covers every pushed line -> ``already_done``
          (so a retry after a lost answer records nothing twice);
        - the pushed lines no longer fit in what is left to ship and an earlier fulfillment holds exactly
          these lines under another number -> the tracking number changed: ``update_tracking.json``;
        - otherwise a new fulfillment. Quantities beyond what is left, or a closed fulfillment order (a
          cancelled or fully shipped order), are sent anyway so Shopify refuses them in its own words.
        """
        try:
            return self._push_shipment(push)
        except _Refused as refused:
            return refused.result

    def set_stock(self, push: StockPush) -> PushResult:
        """Set the available quantity of the variant's inventory item at one location.

        ``expected_current`` set: GraphQL ``inventorySetQuantities`` with ``compareQuantity`` (Shopify's only
        compare-and-set); a stale compare is ``rejected`` unless the level already is the wanted one
        (``already_done``: a replay of an applied set). Otherwise REST ``inventory_levels/set.json``.
        The inventory item comes from ``GET variants/{channel_variant_id}.json`` (cached per connector); the
        location is ``location_ref`` or, when the shop has exactly one active location, that one.
        """
        try:
            return self._set_stock(push)
        except _Refused as refused:
            return refused.result

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
                location_id = self._location_id(listing)
                by_location.setdefault(location_id, []).append((index, self._inventory_item_id(listing)))
            except (_Refused, ConnectorError) as error:
                results[index] = self._as_error(error)
        for location_id, wanted in by_location.items():
            for start in range(0, len(wanted), ITEMS_PER_LEVELS_READ):
                chunk = wanted[start : start + ITEMS_PER_LEVELS_READ]
                try:
                    available = self._available_many({item for _, item in chunk}, location_id)
                except (_Refused, ConnectorError) as error:
                    for index, _ in chunk:
                        results[index] = self._as_error(error)
                    continue
                for index, item in chunk:
                    results[index] = available.get(item)
        return results

    def _as_error(self, error: _Refused | ConnectorError) -> ConnectorError:
        if isinstance(error, _Refused):
            return ApiError(error.result.detail, platform=self.platform)
        return error

    def _push_shipment(self, push: ShipmentPush) -> PushResult:
        order_id = push.external_order_id
        if not order_id.isdigit():
            raise _Refused(f"Shopify order ids are numeric, got {order_id!r}")
        number = push.tracking_number.strip()
        if not number:
            raise _Refused("a shipment push needs a tracking number")
        wanted: Counter[str] = Counter()
        for line in push.lines:
            if line.quantity <= 0 or not line.external_line_id.isdigit():
                raise _Refused(f"bad shipment line {line.external_line_id!r} x {line.quantity}")
            wanted[line.external_line_id] += line.quantity
        company = carrier_company(push.carrier)

        order = self._call("order", path_params={"order_id": order_id}, params={"fields": _ORDER_FIELDS})
        fulfillments = [f for f in order.get("fulfillments") or [] if f.get("status") == "success"]
        same_number = [f for f in fulfillments if number in _tracking_numbers(f)]
        covered = sum((_fulfilled_lines(f) for f in same_number), Counter())
        if same_number and all(covered[line_id] >= qty for line_id, qty in wanted.items()):
            ids = ", ".join(str(f["id"]) for f in same_number)
            return PushResult(
                "already_done",
                detail=f"Shopify already has fulfillment {ids} with tracking number {number}",
                platform_ref=str(same_number[-1]["id"]),
                extra={"name": str(same_number[-1].get("name") or "")},
            )

        left = {str(item["id"]): int(item.get("fulfillable_quantity") or 0) for item in order["line_items"]}
        if any(qty > left.get(line_id, 0) for line_id, qty in wanted.items()):
            earlier = [f for f in fulfillments if _fulfilled_lines(f) == wanted]
            if earlier:
                return self._update_tracking(earlier[-1], number, company)

        fulfillment_orders = self._call("fulfillment_orders", path_params={"order_id": order_id})
        groups = _allocate(order_id, fulfillment_orders, wanted)
        created = self._call(
            "create_fulfillment",
            body={
                "fulfillment": {
                    "notify_customer": self.notify_customer,
                    "tracking_info": {"number": number, "company": company},
                    "line_items_by_fulfillment_order": groups,
                }
            },
        )
        return PushResult(
            "pushed",
            detail=f"fulfillment {created.get('name')} created with tracking number {number}",
            platform_ref=str(created["id"]),
            extra=_fulfillment_extra(created),
        )

    def _update_tracking(self, fulfillment: dict[str, Any], number: str, company: str) -> PushResult:
        previous = fulfillment.get("tracking_number") or ""
        updated = self._call(
            "update_tracking",
            path_params={"fulfillment_id": fulfillment["id"]},
            body={
                "fulfillment": {
                    "notify_customer": self.notify_customer,
                    "tracking_info": {"number": number, "company": company},
                }
            },
        )
        return PushResult(
            "pushed",
            detail=f"fulfillment {updated.get('name')}: tracking number {previous or '(none)'} -> {number}",
            platform_ref=str(updated["id"]),
            extra={
                **_fulfillment_extra(updated),
                "action": "update_tracking",
                "previous_tracking_number": previous,
            },
        )

    def _set_stock(self, push: StockPush) -> PushResult:
        item_id = self._inventory_item_id(push)
        location_id = self._location_id(push)
        if push.expected_current is None:
            return self._set_stock_against_current(push, item_id, location_id)
        return self._compare_and_set(push, item_id, location_id)

    def _set_stock_against_current(self, push: StockPush, item_id: int, location_id: int) -> PushResult:
        """Compare-and-set against what Shopify holds right now: a sale landing between the read and the
        write fails the compare instead of being overwritten; the next read sees it and the set is retried.
        (The hub's sellable quantity already counts every order it has ingested; the compare only guards
        the moment between the read and the write.)"""
        for _ in range(STALE_RETRIES):
            current = self._available(item_id, location_id)
            if current is None:  # no level yet at that location: nothing to compare with
                return self._plain_set(push, item_id, location_id)
            try:
                return self._compare_and_set(replace(push, expected_current=current), item_id, location_id)
            except _Refused as refused:
                if "COMPARE_QUANTITY_STALE" not in refused.result.extra.get("code", ""):
                    raise
        raise _Refused(f"available kept changing during {STALE_RETRIES} compare-and-set attempts")

    def _plain_set(self, push: StockPush, item_id: int, location_id: int) -> PushResult:
        level = self._call(
            "set_inventory_level",
            body={"location_id": location_id, "inventory_item_id": item_id, "available": push.quantity},
        )
        return PushResult(
            "pushed",
            detail=f"available set to {level.get('available')}",
            platform_ref=str(item_id),
            extra={
                "inventory_item_id": str(item_id),
                "location_id": str(location_id),
                "available": str(level.get("available")),
            },
        )

    def _compare_and_set(self, push: StockPush, item_id: int, location_id: int) -> PushResult:
        extra = {"inventory_item_id": str(item_id), "location_id": str(location_id)}
        answer = self._call(
            "graphql_set_quantities",
            body={
                "query": SET_QUANTITIES_MUTATION,
                "variables": {
                    "input": {
                        "name": "available",
                        "reason": "correction",
                        "ignoreCompareQuantity": False,
                        "quantities": [
                            {
                                "inventoryItemId": f"gid://shopify/InventoryItem/{item_id}",
                                "locationId": f"gid://shopify/Location/{location_id}",
                                "quantity": push.quantity,
                                "compareQuantity": push.expected_current,
                            }
                        ],
                    }
                },
            },
        )
        payload = _graphql_payload(answer, "inventorySetQuantities", self.platform)
        errors = payload.get("userErrors") or []
        if not errors:
            return PushResult(
                "pushed",
                detail=f"available set to {push.quantity} (was {push.expected_current})",
                platform_ref=str(item_id),
                extra={**extra, "available": str(push.quantity)},
            )
        words = "; ".join(str(error.get("message")) for error in errors)
        codes = ",".join(str(error.get("code")) for error in errors)
        if "COMPARE_QUANTITY_STALE" in codes:
            current = self._available(item_id, location_id)
            if current == push.quantity:
                return PushResult(
                    "already_done",
                    detail=f"available is already {current}",
                    platform_ref=str(item_id),
                    extra=extra,
                )
            words = f"{words} (expected {push.expected_current}, Shopify has {current})"
            extra["current"] = str(current)
        raise _Refused(words, {**extra, "code": codes})

    def _inventory_item_id(self, push: StockPush) -> int:
        variant_id = push.channel_variant_id
        if not variant_id or not variant_id.isdigit():
            raise _Refused(
                "Shopify stock is set per inventory item: the push needs the channel_variant_id "
                f"(sku {push.merchant_sku!r}; the REST API has no lookup by SKU)"
            )
        cached = self._inventory_items.get(variant_id)
        if cached is None:
            variant = self._call("variant", path_params={"variant_id": variant_id})
            cached = self._inventory_items[variant_id] = int(variant["inventory_item_id"])
        return cached

    def _location_id(self, push: StockPush) -> int:
        if push.location_ref is not None:
            if not push.location_ref.isdigit():
                raise _Refused(f"Shopify location ids are numeric, got {push.location_ref!r}")
            return int(push.location_ref)
        if self._active_locations is None:
            locations = self._call("locations")
            self._active_locations = [int(loc["id"]) for loc in locations if loc.get("active")]
        if len(self._active_locations) != 1:
            raise _Refused(
                f"the shop has {len(self._active_locations)} active locations: the push must name one "
                "(location_ref)"
            )
        return self._active_locations[0]

    def _available(self, item_id: int, location_id: int) -> int | None:
        return self._available_many({item_id}, location_id).get(item_id)

    def _available_many(self, item_ids: set[int], location_id: int) -> dict[int, int | None]:
        """Available per inventory item at the location (at most 50 items); an item without a level there
        is missing from the answer."""
        levels = self._call(
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

    def _call(self, name: str, **options: Any) -> Any:
        """``get`` where a refusal by Shopify (a 4xx other than auth and throttling) becomes a rejection."""
        try:
            return self.get(name, **options)
        except AuthError:
            raise
        except ApiError as error:
            raise _Refused(platform_words(error), {"status": str(error.status)}) from None


def connector_for_channel(
    credentials: ChannelCredentials, channel: ChannelConfig, *, token_store: TokenStore | None = None
) -> ShopifyConnector:
    """The connector for a configured channel: URL and token from its Airflow connection; the API version,
    the plan's leak rate and shipping e-mails may be set in the connection's extra (``api_version``,
    ``leak_per_second``, ``notify_customer``)."""
    return ShopifyConnector.from_connection(
        credentials.base_url,
        credentials.secret,
        api_version=credentials.extra.get("api_version", DEFAULT_API_VERSION),
        page_size=channel.page_size,
        timeout=channel.http_timeout,
        leak_per_second=float(credentials.extra.get("leak_per_second", STANDARD_LEAK_PER_SECOND)),
        notify_customer=str(credentials.extra.get("notify_customer", "false")).lower()
        in ("1", "true", "yes"),
    )
