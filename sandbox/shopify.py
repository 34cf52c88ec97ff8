"""A faithful Shopify Admin API simulator (REST orders and fulfillments, GraphQL stock) over the sandbox
world, for the versions 2026-04 to 2026-10 (docs/platform-notes.md, Shopify, records the sources).

What it reproduces, quirks included:
- Versions: ``/admin/api/{version}/...`` for each version in ``VERSIONS``; a dated quarterly version older
  than those is answered as the oldest of them, as Shopify "falls forward" from a version past support
  (``X-Shopify-API-Version`` names the version that answered); any other version is a 404.
- ``GET /admin/api/{v}/orders.json`` with ``status`` (default ``open``), ``created_at_*``, ``updated_at_*``,
  ``processed_at_*`` (ISO-8601 with an offset; anything else is a 400), ``since_id``, ``ids``,
  ``financial_status``, ``fulfillment_status``, ``limit`` (default 50, max 250) and ``fields``;
  ``orders/{id}.json``; ``orders/count.json``. Orders created more than 60 days ago (by the platform's
  clock) are left out of all three, silently, unless the token has ``read_all_orders``; the token's scopes
  are served at ``GET /admin/oauth/access_scopes.json`` (``DEFAULT_ACCESS_SCOPES`` unless set through
  ``POST /_sandbox/access_scopes``).
- Cursor pagination: a ``Link`` header with ``rel="previous"``/``rel="next"`` URLs carrying an opaque
  ``page_info`` (base64 JSON of the first request's filters, last id and direction, plus a signature).
  With ``page_info`` only ``limit`` and ``fields`` may be sent; anything else is Shopify's 400
  ``"... cannot be passed when page_info is present"``. No ``Link`` header on the last page.
  Orders are sorted by id ascending (ids grow with creation).
- Payloads shaped like the docs' example order 450789469: times in the shop's UTC offset (DST-aware),
  money as 2-decimal strings with ``*_set`` shop/presentment money, ``sku`` sometimes ``""``, refund line
  ``subtotal``/``total_tax`` as JSON numbers (a real quirk), no ``customer`` key on guest orders.
- ``X-Shopify-Access-Token`` auth (401 body); REST: a leaky bucket per token
  (``X-Shopify-Shop-Api-Call-Limit: n/40``, 429 with ``Retry-After: 2.0``); GraphQL: a cost bucket per
  token (2000 points, 100 restored a second: the Standard plan), a throttled call answered HTTP 200 with
  ``errors[{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]`` and ``extensions.cost``;
  ``X-Request-Id`` on every response, and injectable faults (``Faults``), Shopify's way: a rate-limit
  storm is a 429 on REST and THROTTLED on GraphQL (``POST /_sandbox/graphql_throttle {"next": n}``
  throttles exactly the next n GraphQL calls), a duplicated page is the previous ``page_info``'s answer
  again (its ``Link`` pointing at the cursor just asked for), a shuffled page keeps the cursors of the
  sorted one, ``credentials_revoked`` is the 401 (an uninstalled app), ``token_expiry_rate`` does nothing
  (an admin token does not expire); hangs, clock steps and skew as in every simulator.
- What the hub pushes: ``orders/{id}/fulfillment_orders.json`` (one fulfillment order per order at the
  shop's one location: ``open``, ``in_progress`` once partly shipped, ``closed`` when nothing is left or the
  order was cancelled); ``POST fulfillments.json`` (201; recorded in the world's overlay, so the order's
  ``updated_at`` moves and every renderer shows it) refusing with Shopify's 422 words: over quantity ->
  "Invalid fulfillment order line item quantity requested.", closed -> "Fulfillment order N has an
  unfulfillable status= closed."; ``fulfillments/{id}/update_tracking.json`` (replaces the tracking, kept
  by the renderer and listed in ``app.state.tracking_updates``; it does not move the order's
  ``updated_at``); ``locations.json``, ``variants/{id}.json``, ``inventory_levels.json`` and
  ``inventory_levels/set.json`` over the overlay's stock levels; and a ``graphql.json`` that implements
  only ``inventorySetQuantities`` as 2026-04 defines it: ``changeFromQuantity`` required on every quantity
  (``null`` skips the check; a mismatch is ``CHANGE_FROM_QUANTITY_STALE``), ``compareQuantity`` and
  ``ignoreCompareQuantity`` refused like any field the schema does not define, the ``@idempotent(key:)``
  directive required, and the key honoured (the same key and variables: the first answer again, applied
  once; other variables: ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``).
  Unknown tracking companies are stored as given with no tracking URL (Shopify has no such refusal).
- ``/_sandbox/*``: faults, clock and state for the demo and for humans (no auth).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import json.encoder
import math
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import RequestStats, add_admin_routes, hold_back_answers
from sandbox.faults import Faults, ServedPages
from sandbox.world import (
    ZERO,
    Address,
    Customer,
    Fulfillment,
    OrderLine,
    OrderQuery,
    OrderState,
    Refund,
    ShippingMethod,
    World,
)
from sandbox.world import money as round_money

# The versions served, oldest first: each with 2026-04's inventorySetQuantities contract (changeFromQuantity,
# @idempotent); an older quarterly version falls forward to the first.
VERSIONS = ("2026-04", "2026-07", "2026-10")
API_VERSION = VERSIONS[-1]
API_PREFIX = f"/admin/api/{API_VERSION}"
_VERSIONED_PATH = re.compile(r"^/admin/api/([^/]+)(/.*)?$")
_QUARTERLY_VERSION = re.compile(r"^\d{4}-(01|04|07|10)$")
ORDER_VISIBILITY_DAYS = 60  # older orders need read_all_orders
# What the hub's custom app is granted (docs/platform-notes.md lists why each); only read_all_orders changes
# what the sandbox serves.
DEFAULT_ACCESS_SCOPES = (
    "read_orders",
    "read_all_orders",
    "read_products",
    "read_locations",
    "read_inventory",
    "write_inventory",
    "read_merchant_managed_fulfillment_orders",
    "write_merchant_managed_fulfillment_orders",
    "write_fulfillments",
)
# GraphQL cost limits of the Standard plan; every call here is the one mutation, requested cost 10.
GRAPHQL_BUCKET_POINTS = 2000.0
GRAPHQL_RESTORE_PER_SECOND = 100.0
MUTATION_COST = 10
# A sandbox test credential (not a secret): real runs pass their own token.
DEFAULT_ACCESS_TOKEN = "shpat_sandbox_00000000000000000000000000000000"
DEFAULT_SHOP_TIMEZONE = "America/New_York"
JSON_MEDIA_TYPE = "application/json; charset=utf-8"
DEFAULT_LIMIT = 50
MAX_LIMIT = 250

# Id spaces. Order ids grow with the world index (stable cursors) with a hashed gap so they look real.
ORDER_ID_BASE = 5_600_000_000_000
ORDER_ID_STRIDE = 1_000
LINE_ITEM_ID_BASE = 13_500_000_000_000
FULFILLMENT_ID_BASE = 4_800_000_000_000
REFUND_ID_BASE = 905_000_000_000
REFUND_LINE_ID_BASE = 480_000_000_000
TRANSACTION_ID_BASE = 6_100_000_000_000
SHIPPING_LINE_ID_BASE = 4_300_000_000_000
ADJUSTMENT_ID_BASE = 260_000_000_000
CUSTOMER_ID_BASE = 6_900_000_000_000
SHOP_LOCATION_ID = 71_234_567_890
SHOP_OWNER_USER_ID = 91_234_567_890
FULFILLMENTS_PER_ORDER = 16  # fulfillment ids are FULFILLMENT_ID_BASE + index * 16 + seq
FULFILLMENT_ORDER_ID_BASE = 6_400_000_000_000
FULFILLMENT_ORDER_LINE_ID_BASE = 14_700_000_000_000
SHOP_LOCATION = {
    "name": "Main Warehouse",
    "address1": "1 Dock Street",
    "city": "Brooklyn",
    "zip": "11201",
    "province": "New York",
    "province_code": "NY",
    "country": "US",
    "country_code": "US",
    "country_name": "United States",
    "phone": "+17185550100",
}
MAX_INVENTORY_QUANTITY = 1_000_000_000

# Carriers Shopify knows: it fills in the tracking URL for them and detects them from the number when the
# company is left out (the docs' example detects "UPS" from a 1Z number). Any other company name is kept as
# given ("Other" carrier) with no URL unless the caller sends one; Shopify does not reject it.
KNOWN_CARRIER_URLS = {
    "UPS": "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums={}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr={}",
    "DHL Express": "https://www.dhl.com/en/express/tracking.html?AWB={}&brand=DHL",
    "SF Express": "https://www.sf-express.com/us/en/dynamic_function/waybill/#search/bill-number/{}",
    "YTO Express": "https://www.yto.net.cn/en/track?number={}",
    "ZTO Express": "https://www.zto.com/express/expressCheck.html?txtBill={}",
    "China Post": "https://track.chinapost.com.cn/?no={}",
}
_UPS_NUMBER = re.compile(r"1Z[0-9A-Z]{16}")
_USPS_NUMBER = re.compile(r"9[2-5]\d{20}")
_SF_NUMBER = re.compile(r"SF\d{12,13}")

UNAUTHORIZED_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
THROTTLED_BODY = {
    "errors": "Exceeded 2 calls per second for api client. "
    "Reduce request rates to resume uninterrupted service."
}
NOT_FOUND_BODY = {"errors": "Not Found"}
_LISTING_FILTERS = (
    "ids",
    "since_id",
    "created_at_min",
    "created_at_max",
    "updated_at_min",
    "updated_at_max",
    "processed_at_min",
    "processed_at_max",
    "attribution_app_id",
    "status",
    "financial_status",
    "fulfillment_status",
)
_TIME_FILTERS = (
    "created_at_min",
    "created_at_max",
    "updated_at_min",
    "updated_at_max",
    "processed_at_min",
    "processed_at_max",
)
_ISO_WITH_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_STATUSES = ("open", "closed", "cancelled", "any")
_FINANCIAL_FILTERS = {
    "authorized": {"authorized"},
    "pending": {"pending"},
    "paid": {"paid"},
    "partially_paid": {"partially_paid"},
    "refunded": {"refunded"},
    "voided": {"voided"},
    "partially_refunded": {"partially_refunded"},
    "unpaid": {"pending", "authorized", "partially_paid"},
}
_FULFILLMENT_FILTERS: dict[str, set[str | None]] = {
    "shipped": {"fulfilled"},
    "partial": {"partial"},
    "unshipped": {None},
    "unfulfilled": {None, "partial"},
}


# --------------------------------------------------------------------------------------------------
# Faults and rate limits
# --------------------------------------------------------------------------------------------------


class LeakyBucket:
    """Shopify's REST limiter: each request adds 1, the bucket leaks ``leak_per_second``; full -> 429."""

    def __init__(
        self, size: int = 40, leak_per_second: float = 2.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if size < 1 or leak_per_second <= 0:
            raise ValueError("bucket size must be >= 1 and leak rate > 0")
        self.size = size
        self.leak_per_second = leak_per_second
        self._monotonic = monotonic
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (level, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, at = self._levels.get(key, (0.0, now))
        return max(0.0, level - (now - at) * self.leak_per_second)

    def acquire(self, key: str) -> tuple[bool, int]:
        """Take one slot. Returns (allowed, used slots to report in the call-limit header)."""
        with self._lock:
            now = self._monotonic()
            level = self._level(key, now)
            if level + 1 > self.size:
                self._levels[key] = (level, now)
                return False, self.size
            level += 1
            self._levels[key] = (level, now)
            return True, min(self.size, math.ceil(level))

    def used(self, key: str) -> int:
        with self._lock:
            return min(self.size, math.ceil(self._level(key, self._monotonic())))


class CostBucket:
    """Shopify's GraphQL limiter: a bucket of points per token, restored continuously; a call whose requested
    cost is more than what is left is throttled (nothing taken)."""

    def __init__(
        self,
        points: float = GRAPHQL_BUCKET_POINTS,
        restore_per_second: float = GRAPHQL_RESTORE_PER_SECOND,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.points = points
        self.restore_per_second = restore_per_second
        self._monotonic = monotonic
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (available, at)
        self._lock = threading.Lock()

    def take(self, key: str, cost: float) -> tuple[bool, float]:
        """(allowed, points available after the call)."""
        with self._lock:
            now = self._monotonic()
            available, at = self._levels.get(key, (self.points, now))
            available = min(self.points, available + (now - at) * self.restore_per_second)
            allowed = available >= cost
            if allowed:
                available -= cost
            self._levels[key] = (available, now)
            return allowed, available

    def cost_extension(self, available: float, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": MUTATION_COST,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": self.points,
                "currentlyAvailable": round(available, 1),
                "restoreRate": self.restore_per_second,
            },
        }


class ShopAccess:
    """What the app's token may see and how hard GraphQL pushes back: its access scopes, and how many of the
    next GraphQL calls are throttled whatever the bucket holds (``/_sandbox/graphql_throttle``)."""

    def __init__(self, scopes: tuple[str, ...] = DEFAULT_ACCESS_SCOPES) -> None:
        self.scopes = tuple(scopes)
        self.throttle_next = 0
        self._lock = threading.Lock()

    @property
    def reads_all_orders(self) -> bool:
        return "read_all_orders" in self.scopes

    def forced_throttle(self) -> bool:
        with self._lock:
            if self.throttle_next > 0:
                self.throttle_next -= 1
                return True
            return False


@dataclass(frozen=True, slots=True)
class Tracking:
    company: str  # "" when unknown (rendered null)
    number: str
    url: str
    at: int  # when it was set: the fulfillment's updated_at


def detect_carrier(number: str) -> str:
    """The company Shopify infers from a tracking number alone ("" when it cannot tell)."""
    if _UPS_NUMBER.fullmatch(number):
        return "UPS"
    if _USPS_NUMBER.fullmatch(number):
        return "USPS"
    if _SF_NUMBER.fullmatch(number):
        return "SF Express"
    return ""


def tracking_url_for(company: str, number: str) -> str:
    template = KNOWN_CARRIER_URLS.get(company)
    return template.format(number) if template and number else ""


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


class ShopTime:
    """Formats world times (UTC seconds) as Shopify does: ISO-8601 in the shop's offset, DST included."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self._suffix_by_quarter: dict[int, tuple[int, str]] = {}
        self._hour_prefixes: dict[int, str] = {}  # local hour -> "2024-11-01T09:" (gmtime per call was 7 %)

    def _offset(self, ts: int) -> tuple[int, str]:
        quarter = ts // 900  # zone transitions fall on quarter hours
        cached = self._suffix_by_quarter.get(quarter)
        if cached is None:
            delta = datetime.fromtimestamp(quarter * 900, self.zone).utcoffset() or timedelta(0)
            seconds = int(delta.total_seconds())
            sign = "+" if seconds >= 0 else "-"
            minutes = abs(seconds) // 60
            cached = (seconds, f"{sign}{minutes // 60:02d}:{minutes % 60:02d}")
            if len(self._suffix_by_quarter) > 200_000:
                self._suffix_by_quarter.clear()
            self._suffix_by_quarter[quarter] = cached
        return cached

    def format(self, ts: int | None) -> str | None:
        if ts is None:
            return None
        seconds, suffix = self._offset(ts)
        if type(ts) is not int:  # world times are whole seconds; anything else takes the slow road
            t = time.gmtime(ts + seconds)
            date = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            return f"{date}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}{suffix}"
        hour, rest = divmod(ts + seconds, 3600)
        prefix = self._hour_prefixes.get(hour)
        if prefix is None:
            t = time.gmtime(hour * 3600)
            prefix = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:"
            if len(self._hour_prefixes) > 100_000:
                self._hour_prefixes.clear()
            self._hour_prefixes[hour] = prefix
        return f"{prefix}{_MINUTE_SECOND[rest]}{suffix}"

    def json(self, ts: int | None) -> str:
        """``format`` as JSON text (the text needs no escaping)."""
        return "null" if ts is None else f'"{self.format(ts)}"'


_MINUTE_SECOND = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))  # "MM:SS" by second of hour


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


# Payloads are written as JSON text from small pre-encoded fragments (an order is ~10 KB and a benchmark
# pulls a million of them; json.dumps over nested dicts was 3-4x slower). ``render`` gives the dict view.
_encode_str = json.encoder.encode_basestring  # C-accelerated; keeps non-ASCII as is, like Shopify's UTF-8


def _s(value: str | None) -> str:
    return "null" if value is None else _encode_str(value)


def _n(value: int | float | None) -> str:
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)


def _b(value: bool) -> str:
    return "true" if value else "false"


def _obj(pairs: list[tuple[str, str]]) -> str:
    """A JSON object from (key, already-encoded value) pairs; keys are plain identifiers."""
    return "{" + ",".join([f'"{key}":{value}' for key, value in pairs]) + "}"


_NULL, _EMPTY_LIST = "null", "[]"


class ShopifyRenderer:
    """World states -> Shopify REST order JSON; world indices <-> Shopify ids."""

    def __init__(
        self, world: World, *, shop_timezone: str = DEFAULT_SHOP_TIMEZONE, shop_name: str = ""
    ) -> None:
        self.world = world
        self.time = ShopTime(shop_timezone)
        self.shop_name = shop_name or f"channelhub-sandbox-{world.seed}"
        self.shop_domain = f"{self.shop_name}.myshopify.com"
        self.shop_id = 54_838_000 + world.seed % 1000
        self.currency = world.currency
        self._currency_json = _s(world.currency)
        self._money_cache: dict[str, tuple[str, str]] = {}
        self._variant_cache: dict[tuple[int, Decimal], tuple[str, str]] = {}
        self._customer_cache: dict[int, tuple[str, str]] = {}  # customer index -> (customer, address)
        self._tax_tails: dict[tuple[Decimal, str], str] = {}
        self._shipping_tails: dict[tuple[str, str, str], str] = {}
        # order_status_url up to the token (encoded once: the shop name is the caller's)
        self._status_url_head = _s(f"https://{self.shop_domain}/{self.shop_id}/orders/")[:-1]
        self._tracking_overrides: dict[tuple[int, int], Tracking] = {}
        self._tracking_lock = threading.Lock()

    # ---------------------------------------------------------------- ids
    def order_id(self, index: int) -> int:
        gap = zlib.crc32(f"{self.world.seed}:{index}".encode()) % ORDER_ID_STRIDE
        return ORDER_ID_BASE + index * ORDER_ID_STRIDE + gap

    def index_of(self, order_id: int) -> int | None:
        """The world index of a Shopify order id, or None when no order has that id."""
        if order_id < ORDER_ID_BASE:
            return None
        index = (order_id - ORDER_ID_BASE) // ORDER_ID_STRIDE
        return index if self.order_id(index) == order_id else None

    def first_index_after_id(self, order_id: int) -> int:
        """The first world index whose order id is > ``order_id`` (for ``since_id`` and cursors)."""
        if order_id < ORDER_ID_BASE:
            return 0
        index = (order_id - ORDER_ID_BASE) // ORDER_ID_STRIDE
        return index if self.order_id(index) > order_id else index + 1

    def line_item_id(self, index: int, line_index: int) -> int:
        return LINE_ITEM_ID_BASE + index * 8 + line_index

    def customer_id(self, customer: Customer) -> int:
        return CUSTOMER_ID_BASE + customer.index * 1_009 + self.world.seed % 1_000

    def _token(self, index: int) -> str:
        return hashlib.md5(
            f"{self.world.seed}:order-token:{index}".encode(), usedforsecurity=False
        ).hexdigest()

    def _time(self, ts: int | None) -> str:
        return self.time.json(ts)

    # ---------------------------------------------------------------- pieces
    def _money(self, value: Decimal) -> tuple[str, str]:
        """``value`` as a JSON amount (``"12.50"``) and its ``*_set`` object. Cached by the Decimal's text
        (amounts repeat: prices, shipping, subtotals; formatting a Decimal, or hashing a new one, is slow)."""
        key = str(value)
        cached = self._money_cache.get(key)
        if cached is None:
            text = _amount(value)
            money_json = f'{{"amount":"{text}","currency_code":{self._currency_json}}}'
            cached = (f'"{text}"', f'{{"shop_money":{money_json},"presentment_money":{money_json}}}')
            if len(self._money_cache) > 20_000:
                self._money_cache.clear()
            self._money_cache[key] = cached
        return cached

    def _money_set(self, value: Decimal) -> str:
        return self._money(value)[1]

    @staticmethod
    def _address_fields(address: Address) -> str:
        """An address's JSON members (without braces), in Shopify's key order."""
        return (
            f'"first_name":{_s(address.first_name)},"address1":{_s(address.address1)},'
            f'"phone":{_s(address.phone)},"city":{_s(address.city)},"zip":{_s(address.zip)},'
            f'"province":{_s(address.province)},"country":{_s(address.country)},'
            f'"last_name":{_s(address.last_name)},"address2":{_s(address.address2)},'
            f'"company":{_s(address.company)},"latitude":{_n(address.latitude)},'
            f'"longitude":{_n(address.longitude)},"name":{_s(address.name)},'
            f'"country_code":{_s(address.country_code)},"province_code":{_s(address.province_code)}'
        )

    def _address(self, address: Address, customer: Customer | None) -> str:
        """An order's address; most are the customer's default one, rendered once per customer."""
        if customer is not None and address is customer.default_address:
            return self._customer_entry(customer)[1]
        return f"{{{self._address_fields(address)}}}"

    def _customer(self, customer: Customer) -> str:
        return self._customer_entry(customer)[0]

    def _customer_entry(self, customer: Customer) -> tuple[str, str]:
        """A customer's JSON and their default address's JSON as an order address. Customers come from a
        bounded pool and never change, so both are cached."""
        cached = self._customer_cache.get(customer.index)
        if cached is None:
            address = f"{{{self._address_fields(customer.default_address)}}}"
            cached = self._customer_cache[customer.index] = (self._render_customer(customer), address)
        return cached

    def _render_customer(self, customer: Customer) -> str:
        customer_id = self.customer_id(customer)
        created = self._time(customer.created_ts)
        address = (
            f'{{"id":{customer_id + 3},"customer_id":{customer_id},'
            f"{self._address_fields(customer.default_address)},"
            f'"country_name":{_s(customer.default_address.country)},"default":true}}'
        )
        if customer.accepts_marketing:
            email_consent = (
                f'{{"state":"subscribed","opt_in_level":"single_opt_in","consent_updated_at":{created}}}'
            )
        else:
            email_consent = '{"state":"not_subscribed","opt_in_level":null,"consent_updated_at":null}'
        sms_consent = (
            _NULL
            if customer.phone is None
            else '{"state":"not_subscribed","opt_in_level":"single_opt_in","consent_updated_at":null,'
            '"consent_collected_from":"OTHER"}'
        )
        state = '"enabled"' if customer.index % 3 else '"disabled"'
        return (
            f'{{"id":{customer_id},"email":{_s(customer.email)},"created_at":{created},'
            f'"updated_at":{created},"first_name":{_s(customer.first_name)},'
            f'"last_name":{_s(customer.last_name)},"state":{state},"note":null,'
            f'"verified_email":true,"multipass_identifier":null,"tax_exempt":false,'
            f'"phone":{_s(customer.phone)},"email_marketing_consent":{email_consent},'
            f'"sms_marketing_consent":{sms_consent},"tags":"","currency":{self._currency_json},'
            f'"tax_exemptions":[],"admin_graphql_api_id":"gid://shopify/Customer/{customer_id}",'
            f'"default_address":{address}}}'
        )

    def _tax_lines(self, amount: Decimal, state: OrderState) -> str:
        order = state.order
        if order.tax_rate == 0:
            return _EMPTY_LIST
        key = (order.tax_rate, order.tax_title)
        tail = self._tax_tails.get(key)
        if tail is None:  # a handful of places: their rate and title, once
            tail = self._tax_tails[key] = (
                f'"rate":{_n(float(order.tax_rate))},"title":{_s(order.tax_title)}}}]'
            )
        price, price_set = self._money(amount)
        return f'[{{"channel_liable":null,"price":{price},"price_set":{price_set},{tail}'

    def _line_item_parts(self, state: OrderState, line: OrderLine) -> tuple[str, str]:
        """A line item's JSON split around its ``quantity`` value: fulfillments repeat the line with their
        own quantity, refunds and ``line_items`` with the ordered one."""
        line_id = LINE_ITEM_ID_BASE + state.order.index * 8 + line.index  # line_item_id(), inlined
        if line.discount == 0:
            discount_allocations = _EMPTY_LIST
        else:
            amount, amount_set = self._money(line.discount)
            discount_allocations = (
                f'[{{"amount":{amount},"amount_set":{amount_set},"discount_application_index":0}}]'
            )
        before_quantity, after_quantity = self._variant_fragments(line)
        head = (
            f'{{"id":{line_id},"admin_graphql_api_id":"gid://shopify/LineItem/{line_id}",'
            f'"attributed_staffs":[],"current_quantity":{line.quantity - state.refunded[line.index]},'
            f'"fulfillable_quantity":{state.fulfillable(line.index)},"fulfillment_service":"manual",'
            f'"fulfillment_status":{_s(state.line_fulfillment_status(line.index))},"gift_card":false,'
            f'{before_quantity},"quantity":'
        )
        tail = (
            f',{after_quantity},"tax_lines":{self._tax_lines(line.tax, state)},"duties":[],'
            f'"discount_allocations":{discount_allocations}}}'
        )
        return head, tail

    def _variant_fragments(self, line: OrderLine) -> tuple[str, str]:
        """The parts of a line item that only depend on its variant and price (cached: a catalog is small)."""
        key = (line.variant.index, line.unit_price)
        cached = self._variant_cache.get(key)
        if cached is None:
            variant = line.variant
            listing = variant.listing("shopify")
            before = _obj(
                [
                    ("grams", _n(variant.grams)),
                    ("name", _s(variant.title)),
                    ("price", _s(_amount(line.unit_price))),
                    ("price_set", self._money_set(line.unit_price)),
                    ("product_exists", "true"),
                    ("product_id", _n(listing.product_id)),
                    ("properties", _EMPTY_LIST),
                ]
            )
            after = _obj(
                [
                    ("requires_shipping", "true"),
                    ("sku", _s(listing.sku)),
                    ("taxable", "true"),
                    ("title", _s(variant.product_title)),
                    ("total_discount", '"0.00"'),
                    ("total_discount_set", self._money_set(ZERO)),
                    ("variant_id", _n(listing.variant_id)),
                    ("variant_inventory_management", '"shopify"'),
                    ("variant_title", _s(variant.variant_title)),
                    ("vendor", _s(variant.vendor)),
                ]
            )
            cached = (before[1:-1], after[1:-1])
            self._variant_cache[key] = cached
        return cached

    def fulfillment_id(self, index: int, seq: int) -> int:
        return FULFILLMENT_ID_BASE + index * FULFILLMENTS_PER_ORDER + seq

    def fulfillment_ref(self, fulfillment_id: int) -> tuple[int, int] | None:
        """(world index, seq) of a fulfillment id, or None when the id cannot be one of ours."""
        if fulfillment_id < FULFILLMENT_ID_BASE:
            return None
        index, seq = divmod(fulfillment_id - FULFILLMENT_ID_BASE, FULFILLMENTS_PER_ORDER)
        return (index, seq) if seq >= 1 else None

    def fulfillment_order_id(self, index: int) -> int:
        """One fulfillment order per order: every order ships from the shop's one location."""
        return FULFILLMENT_ORDER_ID_BASE + index * 4

    def index_of_fulfillment_order(self, fulfillment_order_id: int) -> int | None:
        offset = fulfillment_order_id - FULFILLMENT_ORDER_ID_BASE
        return offset // 4 if offset >= 0 and offset % 4 == 0 else None

    def fulfillment_order_line_id(self, index: int, line_index: int) -> int:
        return FULFILLMENT_ORDER_LINE_ID_BASE + index * 8 + line_index

    def set_tracking(self, index: int, seq: int, tracking: Tracking) -> None:
        """``update_tracking.json``: the fulfillment keeps its lines, its tracking is replaced."""
        with self._tracking_lock:
            self._tracking_overrides[(index, seq)] = tracking

    def tracking_of(self, index: int, fulfillment: Fulfillment) -> Tracking:
        override = (
            self._tracking_overrides.get((index, fulfillment.seq)) if self._tracking_overrides else None
        )
        if override is not None:
            return override
        return Tracking(
            fulfillment.tracking_company,
            fulfillment.tracking_number,
            fulfillment.tracking_url,
            fulfillment.at,
        )

    def fulfillment_json(self, state: OrderState, fulfillment: Fulfillment) -> str:
        """One fulfillment as ``POST fulfillments.json`` and ``update_tracking.json`` answer it."""
        parts = [self._line_item_parts(state, line) for line in state.order.lines]
        return self._fulfillment(state, fulfillment, f"#{1000 + state.order.number}", parts)

    def fulfillment_orders(self, state: OrderState) -> list[dict[str, Any]]:
        """``GET orders/{id}/fulfillment_orders.json``: the order's one fulfillment order at the shop's
        location. Partly shipped -> ``in_progress``; nothing left, or the order cancelled -> ``closed``
        (Shopify closes, rather than cancels, the fulfillment orders of a cancelled order; their lines keep
        ``quantity == fulfillable_quantity`` as the community reports)."""
        order = state.order
        index = order.index
        fo_id = self.fulfillment_order_id(index)
        lines = []
        for line in order.lines:
            assigned = line.quantity - state.removed[line.index]
            remaining = state.fulfillable(line.index)
            if state.cancelled:
                remaining = assigned = max(0, assigned - state.shipped[line.index])
            listing = line.variant.listing("shopify")
            lines.append(
                {
                    "id": self.fulfillment_order_line_id(index, line.index),
                    "shop_id": self.shop_id,
                    "fulfillment_order_id": fo_id,
                    "quantity": assigned,
                    "line_item_id": self.line_item_id(index, line.index),
                    "inventory_item_id": listing.inventory_item_id,
                    "fulfillable_quantity": remaining,
                    "variant_id": listing.variant_id,
                }
            )
        left = sum(state.fulfillable(i) for i in range(len(order.lines)))
        if state.cancelled or left == 0:
            status = "closed"
        elif any(state.shipped):
            status = "in_progress"
        else:
            status = "open"
        updated = max([order.created_ts, *(f.at for f in state.fulfillments), state.cancelled_ts or 0])
        address = order.shipping_address
        return [
            {
                "id": fo_id,
                "created_at": self.time.format(order.created_ts),
                "updated_at": self.time.format(updated),
                "shop_id": self.shop_id,
                "order_id": self.order_id(index),
                "assigned_location_id": SHOP_LOCATION_ID,
                "request_status": "unsubmitted",
                "status": status,
                "fulfill_at": None,
                "fulfill_by": None,
                "supported_actions": ["create_fulfillment", "move"] if status != "closed" else [],
                "destination": {
                    "id": fo_id + 1,
                    "address1": address.address1,
                    "address2": address.address2,
                    "city": address.city,
                    "company": address.company,
                    "country": address.country,
                    "email": order.email,
                    "first_name": address.first_name,
                    "last_name": address.last_name,
                    "phone": address.phone,
                    "province": address.province,
                    "zip": address.zip,
                },
                "line_items": lines,
                "international_duties": None,
                "fulfillment_holds": [],
                "delivery_method": {
                    "id": fo_id + 2,
                    "method_type": "shipping",
                    "min_delivery_date_time": None,
                    "max_delivery_date_time": None,
                },
                "assigned_location": {
                    "address1": SHOP_LOCATION["address1"],
                    "address2": None,
                    "city": SHOP_LOCATION["city"],
                    "country_code": SHOP_LOCATION["country_code"],
                    "location_id": SHOP_LOCATION_ID,
                    "name": SHOP_LOCATION["name"],
                    "phone": SHOP_LOCATION["phone"],
                    "province": SHOP_LOCATION["province"],
                    "zip": SHOP_LOCATION["zip"],
                },
                "merchant_requests": [],
            }
        ]

    def _fulfillment(
        self, state: OrderState, fulfillment: Fulfillment, name: str, line_parts: list[tuple[str, str]]
    ) -> str:
        index = state.order.index
        fulfillment_id = self.fulfillment_id(index, fulfillment.seq)
        tracking = self.tracking_of(index, fulfillment)
        # Shopify keeps null (not "") where no company or URL is known, and empty lists beside them.
        number = _s(tracking.number) if tracking.number else _NULL
        url = _s(tracking.url) if tracking.url else _NULL
        line_items = ",".join([f"{line_parts[i][0]}{q}{line_parts[i][1]}" for i, q in fulfillment.lines])
        return (
            f'{{"id":{fulfillment_id},"admin_graphql_api_id":"gid://shopify/Fulfillment/{fulfillment_id}",'
            f'"created_at":{self._time(fulfillment.at)},"location_id":{SHOP_LOCATION_ID},'
            f'"name":"{name}.{fulfillment.seq}","order_id":{self.order_id(index)},"origin_address":{{}},'
            f'"receipt":{{}},"service":"manual","shipment_status":null,"status":"success",'
            f'"tracking_company":{_s(tracking.company or None)},"tracking_number":{number},'
            f'"tracking_numbers":{f"[{number}]" if tracking.number else _EMPTY_LIST},"tracking_url":{url},'
            f'"tracking_urls":{f"[{url}]" if tracking.url else _EMPTY_LIST},'
            f'"updated_at":{self._time(tracking.at)},"line_items":[{line_items}]}}'
        )

    def _refund(self, state: OrderState, refund: Refund, name: str, line_parts: list[tuple[str, str]]) -> str:
        order = state.order
        index = order.index
        order_id = self.order_id(index)
        refund_id = REFUND_ID_BASE + index * 8 + refund.seq
        at = self._time(refund.at)
        zero_set = self._money_set(ZERO)
        transactions = ""
        if refund.amount > 0:
            transaction_id = TRANSACTION_ID_BASE + index * 16 + refund.seq
            transactions = (
                f'{{"id":{transaction_id},'
                f'"admin_graphql_api_id":"gid://shopify/OrderTransaction/{transaction_id}",'
                f'"amount":{self._money(refund.amount)[0]},"authorization":null,"created_at":{at},'
                f'"currency":{self._currency_json},"device_id":null,"error_code":null,'
                f'"gateway":{_s(order.gateway)},"kind":"refund","location_id":null,"message":"Refunded",'
                f'"order_id":{order_id},"parent_id":{TRANSACTION_ID_BASE + index * 16},'
                f'"payment_id":"{name}.{refund.seq + 1}","processed_at":{at},"receipt":{{}},'
                f'"source_name":"web","status":"success","test":false,"user_id":null}}'
            )
        adjustments = ""
        if refund.shipping > 0:
            amount, amount_set = self._money(-refund.shipping)
            adjustments = (
                f'{{"id":{ADJUSTMENT_ID_BASE + index * 8 + refund.seq},"amount":{amount},'
                f'"amount_set":{amount_set},"kind":"shipping_refund","order_id":{order_id},'
                f'"reason":"Shipping refund","refund_id":{refund_id},"tax_amount":"0.00",'
                f'"tax_amount_set":{zero_set}}}'
            )
        refund_lines = []
        for position, refund_line in enumerate(refund.lines):
            line = order.lines[refund_line.line_index]
            location = SHOP_LOCATION_ID if refund_line.restock_type != "no_restock" else _NULL
            head, tail = line_parts[line.index]
            # Shopify sends subtotal and total_tax as JSON numbers, unlike every other amount.
            refund_lines.append(
                f'{{"id":{REFUND_LINE_ID_BASE + index * 32 + refund.seq * 8 + position},'
                f'"line_item_id":{self.line_item_id(index, line.index)},"location_id":{location},'
                f'"quantity":{refund_line.quantity},"restock_type":{_s(refund_line.restock_type)},'
                f'"subtotal":{_n(float(refund_line.subtotal))},'
                f'"subtotal_set":{self._money_set(refund_line.subtotal)},'
                f'"total_tax":{_n(float(refund_line.tax))},"total_tax_set":{self._money_set(refund_line.tax)},'
                f'"line_item":{head}{line.quantity}{tail}}}'
            )
        return (
            f'{{"id":{refund_id},"admin_graphql_api_id":"gid://shopify/Refund/{refund_id}",'
            f'"created_at":{at},"note":{_s(refund.note)},"order_id":{order_id},"processed_at":{at},'
            f'"restock":{_b(refund.restock)},"total_additional_fees_set":{zero_set},'
            f'"total_duties_set":{zero_set},"user_id":{SHOP_OWNER_USER_ID},'
            f'"order_adjustments":[{adjustments}],"transactions":[{transactions}],'
            f'"refund_line_items":[{",".join(refund_lines)}],"duties":[],"additional_fees":[]}}'
        )

    def _shipping_line(self, index: int, shipping: ShippingMethod) -> str:
        key = (shipping.code, shipping.title, str(shipping.price))
        tail = self._shipping_tails.get(key)
        if tail is None:  # a handful of methods: everything but the id, once
            price, price_set = self._money(shipping.price)
            tail = self._shipping_tails[key] = (
                f'"carrier_identifier":null,"code":{_s(shipping.code)},"discounted_price":{price},'
                f'"discounted_price_set":{price_set},"is_removed":false,"phone":null,"price":{price},'
                f'"price_set":{price_set},"requested_fulfillment_service_id":null,"source":"shopify",'
                f'"title":{_s(shipping.title)},"tax_lines":[],"discount_allocations":[]}}'
            )
        return f'{{"id":{SHIPPING_LINE_ID_BASE + index},{tail}'

    # ---------------------------------------------------------------- the order
    def render(self, state: OrderState, wanted: frozenset[str] | None = None) -> dict[str, Any]:
        """The order as a dict (parsed from ``render_json``, so both views always agree)."""
        return json.loads(self.render_json(state, wanted))

    def render_json(self, state: OrderState, wanted: frozenset[str] | None = None) -> str:
        """The order as Shopify's JSON text; ``wanted`` keeps only those top-level fields (``fields=``).

        Written as JSON text members (``"key":value``) in Shopify's key order: f-strings over pre-encoded
        values cost a fraction of building (key, value) pairs and joining them, and the sandbox renders a
        million orders per benchmark. The nested parts are built only when wanted (``fields=id,updated_at``
        does not pay for them)."""
        order = state.order
        index = order.index
        order_id = self.order_id(index)
        number = order.number
        name = f"#{1000 + number}"
        created = self._time(order.created_ts)
        token = self._token(index)
        customer = order.customer
        discount = order.discount
        money = self._money

        refunded_subtotal = refunded_tax = refunded_discount = refunded_shipping = ZERO
        for refund in state.refunds:
            refunded_shipping += refund.shipping
            for refund_line in refund.lines:
                line = order.lines[refund_line.line_index]
                refunded_subtotal += refund_line.subtotal
                refunded_tax += refund_line.tax
                refunded_discount += round_money(line.discount * refund_line.quantity / line.quantity)
        current_subtotal_value = order.subtotal - refunded_subtotal
        current_tax_value = order.total_tax - refunded_tax
        current_total_value = (
            current_subtotal_value + current_tax_value + order.shipping.price - refunded_shipping
        )
        current_subtotal, current_subtotal_set = money(current_subtotal_value)
        current_tax, current_tax_set = money(current_tax_value)
        current_discounts, current_discounts_set = money(order.total_discount - refunded_discount)
        current_total, current_total_set = money(current_total_value)
        outstanding = money(order.total if state.financial_status in ("pending", "authorized") else ZERO)[0]
        subtotal, subtotal_set = money(order.subtotal)
        total_discounts, total_discounts_set = money(order.total_discount)
        total_line_items, total_line_items_set = money(order.total_line_items)
        total, total_set = money(order.total)
        total_tax, total_tax_set = money(order.total_tax)
        browser_ip = f'"203.0.113.{index % 250 + 1}"'
        discount_codes = (
            _EMPTY_LIST
            if discount is None
            else f'[{{"code":{_s(discount.code)},"amount":{money(discount.amount)[0]},'
            f'"type":{_s(discount.kind)}}}]'
        )
        members = [
            f'"id":{order_id}',
            f'"admin_graphql_api_id":"gid://shopify/Order/{order_id}"',
            '"app_id":580111',
            f'"browser_ip":{browser_ip}',
            f'"buyer_accepts_marketing":{_b(bool(customer and customer.accepts_marketing))}',
            f'"cancel_reason":{_s(state.cancel_reason)}',
            f'"cancelled_at":{self._time(state.cancelled_ts)}',
            f'"cart_token":"{token[::-1]}"',
            f'"checkout_id":{30_100_000_000_000 + index * 4}',
            f'"checkout_token":"{token[16:]}{token[:16]}"',
            f'"client_details":{{"accept_language":"en-US","browser_height":null,"browser_ip":{browser_ip},'
            '"browser_width":null,"session_hash":null,"user_agent":"Mozilla/5.0"}',
            f'"closed_at":{self._time(state.closed_ts)}',
            f'"confirmation_number":"{token[:9].upper()}"',
            '"confirmed":true',
            f'"contact_email":{_s(order.email)}',
            f'"created_at":{created}',
            f'"currency":{self._currency_json}',
            f'"current_subtotal_price":{current_subtotal}',
            f'"current_subtotal_price_set":{current_subtotal_set}',
            '"current_total_additional_fees_set":null',
            f'"current_total_discounts":{current_discounts}',
            f'"current_total_discounts_set":{current_discounts_set}',
            '"current_total_duties_set":null',
            f'"current_total_price":{current_total}',
            f'"current_total_price_set":{current_total_set}',
            f'"current_total_tax":{current_tax}',
            f'"current_total_tax_set":{current_tax_set}',
            '"customer_locale":"en"',
            '"device_id":null',
            f'"discount_codes":{discount_codes}',
            f'"email":{_s(order.email or "")}',
            '"estimated_taxes":false',
            f'"financial_status":{_s(state.financial_status)}',
            f'"fulfillment_status":{_s(state.fulfillment_status)}',
            '"landing_site":"/"',
            '"landing_site_ref":null',
            f'"location_id":{SHOP_LOCATION_ID if order.source_name == "pos" else _NULL}',
            '"merchant_of_record_app_id":null',
            f'"name":"{name}"',
            f'"note":{_s(order.note)}',
            '"note_attributes":[]',
            f'"number":{number}',
            f'"order_number":{1000 + number}',
            f'"order_status_url":{self._status_url_head}{token}/authenticate?key={token[8:24]}"',
            '"original_total_additional_fees_set":null',
            '"original_total_duties_set":null',
            f'"payment_gateway_names":[{_s(order.gateway)}]',
            f'"phone":{_s(order.phone)}',
            '"po_number":null',
            f'"presentment_currency":{self._currency_json}',
            f'"processed_at":{created}',
            '"reference":null',
            '"referring_site":null',
            '"source_identifier":null',
            f'"source_name":{_s(order.source_name)}',
            '"source_url":null',
            f'"subtotal_price":{subtotal}',
            f'"subtotal_price_set":{subtotal_set}',
            f'"tags":{_s(order.tags)}',
            '"tax_exempt":false',
            f'"tax_lines":{self._tax_lines(order.total_tax, state)}',
            '"taxes_included":false',
            '"test":false',
            f'"token":"{token}"',
            f'"total_discounts":{total_discounts}',
            f'"total_discounts_set":{total_discounts_set}',
            f'"total_line_items_price":{total_line_items}',
            f'"total_line_items_price_set":{total_line_items_set}',
            f'"total_outstanding":{outstanding}',
            f'"total_price":{total}',
            f'"total_price_set":{total_set}',
            f'"total_shipping_price_set":{money(order.shipping.price)[1]}',
            f'"total_tax":{total_tax}',
            f'"total_tax_set":{total_tax_set}',
            '"total_tip_received":"0.00"',
            f'"total_weight":{order.total_grams}',
            f'"updated_at":{self._time(state.updated_ts)}',
            '"user_id":null',
        ]
        if wanted is None or "billing_address" in wanted:
            members.append(f'"billing_address":{self._address(order.billing_address, customer)}')
        if customer is not None and (wanted is None or "customer" in wanted):
            members.append(f'"customer":{self._customer(customer)}')  # guest orders have no customer key
        members.append(
            '"discount_applications":[]'
            if discount is None
            else '"discount_applications":[{"target_type":"line_item","type":"discount_code",'
            f'"value":{_s(str(discount.value))},"value_type":{_s(discount.kind)},'
            f'"allocation_method":"across","target_selection":"all","code":{_s(discount.code)}}}]'
        )
        want_lines = wanted is None or not wanted.isdisjoint(("fulfillments", "line_items", "refunds"))
        parts = [self._line_item_parts(state, line) for line in order.lines] if want_lines else []
        if wanted is None or "fulfillments" in wanted:
            fulfillments = [self._fulfillment(state, f, name, parts) for f in state.fulfillments]
            members.append(f'"fulfillments":[{",".join(fulfillments)}]')
        if wanted is None or "line_items" in wanted:
            lines = [
                f"{head}{line.quantity}{tail}" for line, (head, tail) in zip(order.lines, parts, strict=True)
            ]
            members.append(f'"line_items":[{",".join(lines)}]')
        members.append('"payment_terms":null')
        if wanted is None or "refunds" in wanted:
            refunds = [self._refund(state, r, name, parts) for r in state.refunds]
            members.append(f'"refunds":[{",".join(refunds)}]')
        if wanted is None or "shipping_address" in wanted:
            members.append(f'"shipping_address":{self._address(order.shipping_address, customer)}')
        if wanted is None or "shipping_lines" in wanted:
            members.append(f'"shipping_lines":[{self._shipping_line(index, order.shipping)}]')
        if wanted is not None:  # members start with '"key":' and keys hold no quote
            members = [member for member in members if member[1 : member.index('"', 1)] in wanted]
        return f"{{{','.join(members)}}}"


# --------------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------------


UNREADABLE_NESTING = 2000  # past msgspec's 999 levels and json's recursion limit


def render_order(
    faults: Faults, renderer: ShopifyRenderer, state: OrderState, wanted: frozenset[str] | None
) -> str:
    """The order's JSON, broken the way the fault profile says (decoded only when it must be)."""
    text = renderer.render_json(state, wanted)
    if faults.order_is_unreadable(state.order.index):
        # Written as text: no encoder would write a lone surrogate escape or 1e400 from a Python value, and
        # no decoder follows 2,000 levels of nesting.
        order = json.loads(text)
        for key in ("note", "total_weight", "note_attributes"):
            order.pop(key, None)
        body = json.dumps(order)[1:-1]
        nest = "[" * UNREADABLE_NESTING + "]" * UNREADABLE_NESTING
        text = (
            '{"note":"half an emoji \\ud83d","total_weight":1e400,'
            f'"note_attributes":[{{"name":"gift wrap","value":{nest}}}],{body}}}'
        )
    if not faults.order_is_malformed(state.order.index):
        return text
    order = json.loads(text)
    for line in order.get("line_items", [])[:1]:
        line["quantity"] = f"{line['quantity']} pcs"
    return json.dumps(order)


class BadRequest(Exception):
    def __init__(self, errors: Any, status: int = 400) -> None:
        super().__init__(str(errors))
        self.errors = errors
        self.status = status


def parse_shopify_time(name: str, value: str) -> float:
    """Strict ISO-8601 with an offset ("Z" allowed) -> POSIX seconds; anything else is a 400."""
    if not _ISO_WITH_OFFSET.fullmatch(value):
        raise BadRequest({name: f"{name} must be an ISO-8601 time with a UTC offset, got {value!r}"})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest({name: f"{name} is not a valid time: {value!r}"}) from None
    return parsed.timestamp()


def _parse_int(name: str, value: str) -> int:
    if not re.fullmatch(r"\d{1,19}", value):
        raise BadRequest({name: f"{name} must be a positive integer, got {value!r}"})
    return int(value)


@dataclass(frozen=True)
class ListFilters:
    """The filters of a listing request, as they travel inside ``page_info`` (JSON-safe values)."""

    status: str = "open"
    created_min: float | None = None
    created_max: float | None = None
    updated_min: float | None = None
    updated_max: float | None = None
    since_index: int = 0
    ids: tuple[int, ...] | None = None  # world indices
    financial_status: str | None = None
    fulfillment_status: str | None = None

    def to_query(self, min_index: int = 0, stop_index: int = 2**62) -> OrderQuery:
        predicate = None
        if self.financial_status not in (None, "any") or self.fulfillment_status not in (None, "any"):
            financial = _FINANCIAL_FILTERS.get(self.financial_status or "any")
            fulfilment = _FULFILLMENT_FILTERS.get(self.fulfillment_status or "any")

            def predicate(state: OrderState | None) -> bool:
                if state is None:
                    return False
                if financial is not None and state.financial_status not in financial:
                    return False
                return fulfilment is None or state.fulfillment_status in fulfilment

        return OrderQuery(
            status=self.status,  # type: ignore[arg-type]
            created_min=self.created_min,
            created_max=self.created_max,
            updated_min=self.updated_min,
            updated_max=self.updated_max,
            min_index=max(min_index, self.since_index),
            stop_index=stop_index,
            predicate=predicate,
        )


def parse_filters(
    params: dict[str, str], renderer: ShopifyRenderer, *, for_count: bool = False
) -> ListFilters:
    status = params.get("status", "open")
    if status not in _STATUSES:
        raise BadRequest({"status": f"status must be one of {', '.join(_STATUSES)}, got {status!r}"})
    times = {name: parse_shopify_time(name, params[name]) for name in _TIME_FILTERS if name in params}
    created_min = _tighter(max, times.get("created_at_min"), times.get("processed_at_min"))
    created_max = _tighter(min, times.get("created_at_max"), times.get("processed_at_max"))
    since_index = 0
    if "since_id" in params:
        since_index = renderer.first_index_after_id(_parse_int("since_id", params["since_id"]))
    ids: tuple[int, ...] | None = None
    if "ids" in params and not for_count:
        indices = set()
        for part in params["ids"].split(","):
            if part.strip():
                index = renderer.index_of(_parse_int("ids", part.strip()))
                if index is not None:
                    indices.add(index)
        ids = tuple(sorted(indices))
    financial = params.get("financial_status")
    if financial is not None and financial != "any" and financial not in _FINANCIAL_FILTERS:
        raise BadRequest({"financial_status": f"unknown financial_status {financial!r}"})
    fulfilment = params.get("fulfillment_status")
    if fulfilment is not None and fulfilment != "any" and fulfilment not in _FULFILLMENT_FILTERS:
        raise BadRequest({"fulfillment_status": f"unknown fulfillment_status {fulfilment!r}"})
    return ListFilters(
        status=status,
        created_min=created_min,
        created_max=created_max,
        updated_min=times.get("updated_at_min"),
        updated_max=times.get("updated_at_max"),
        since_index=since_index,
        ids=ids,
        financial_status=financial,
        fulfillment_status=fulfilment,
    )


def _tighter(pick: Callable[..., float], a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else pick(a, b)


class PageInfoCodec:
    """``page_info``: base64url of JSON {filters, last_id, last_value, direction, signature}.

    The signature makes it tamper-evident: any edit is a 400, as Shopify rejects cursors it did not issue.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, body: dict[str, Any]) -> str:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._secret, canonical, hashlib.sha256).hexdigest()[:24]

    def encode(self, filters: ListFilters, last_id: int, direction: str) -> str:
        body: dict[str, Any] = {
            "filters": {k: v for k, v in asdict(filters).items() if v is not None},
            "last_id": last_id,
            "last_value": str(last_id),
            "direction": direction,
        }
        body["signature"] = self._sign(body)
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, value: str) -> tuple[ListFilters, int, str]:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            body = json.loads(raw)
            signature = body.pop("signature")
            if not hmac.compare_digest(signature, self._sign(body)):
                raise ValueError("bad signature")
            raw_filters = dict(body["filters"])
            if raw_filters.get("ids") is not None:
                raw_filters["ids"] = tuple(raw_filters["ids"])
            filters = ListFilters(**raw_filters)
            last_id, direction = int(body["last_id"]), body["direction"]
            if direction not in ("next", "prev"):
                raise ValueError("bad direction")
        except Exception:
            raise BadRequest({"page_info": "Invalid value."}) from None
        return filters, last_id, direction


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status_code=status,
        media_type=JSON_MEDIA_TYPE,
        headers=headers,
    )


def _iter_matching(
    world: World, filters: ListFilters, query: OrderQuery, now_ts: float, reverse: bool
) -> Iterator[int]:
    if filters.ids is None:
        yield from world.scan(query, now_ts, reverse=reverse)
        return
    indices = [i for i in filters.ids if query.min_index <= i < query.stop_index]
    for index in reversed(indices) if reverse else indices:
        if query.matches_timeline(world.timeline(index), now_ts) and (
            query.predicate is None or query.predicate(world.state(index, now_ts))
        ):
            yield index


def _take(iterator: Iterator[int], count: int) -> list[int]:
    taken = []
    for index in iterator:
        taken.append(index)
        if len(taken) == count:
            break
    return taken


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    bucket_size: int = 40,
    leak_per_second: float = 2.0,
    shop_timezone: str = DEFAULT_SHOP_TIMEZONE,
) -> FastAPI:
    """The Shopify simulator as an ASGI app over ``world`` (see the module docstring)."""
    if not access_token:
        raise ValueError("access_token must not be empty")
    renderer = ShopifyRenderer(world, shop_timezone=shop_timezone)
    bucket = LeakyBucket(bucket_size, leak_per_second)
    codec = PageInfoCodec(hashlib.sha256(f"channelhub-sandbox-page-info:{world.seed}".encode()).digest())
    stats = RequestStats("api_requests", "throttled", "unauthorized", "injected_errors")
    count = stats.count
    access = ShopAccess()
    costs = CostBucket()

    app = FastAPI(title="ChannelHub Shopify sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.bucket = bucket
    app.state.costs = costs
    app.state.access = access
    app.state.renderer = renderer
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)

    def served_version(requested: str) -> str | None:
        """The version that answers a request for ``requested``: itself, or the oldest served one for a
        quarterly version past support (Shopify falls forward); None: no such version (404)."""
        if requested in VERSIONS:
            return requested
        if _QUARTERLY_VERSION.match(requested) and requested < VERSIONS[0]:
            return VERSIONS[0]
        return None

    def throttled_answer(available: float, headers: dict[str, str]) -> Response:
        count("throttled")
        body = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": {"cost": costs.cost_extension(available, None)},
        }
        return _json_response(body, 200, headers)

    @app.middleware("http")
    async def shopify_gateway(request: Request, call_next: Callable[[Request], Any]) -> Response:
        request_id = str(uuid.uuid4())
        if not request.url.path.startswith("/admin/"):
            response = await call_next(request)
            response.headers["X-Request-Id"] = request_id
            return response
        count("api_requests")
        token = request.headers.get("X-Shopify-Access-Token", "")
        if faults.credentials_revoked or not hmac.compare_digest(token.encode(), access_token.encode()):
            count("unauthorized")  # a wrong token, or the right one revoked (the app uninstalled)
            return _json_response(UNAUTHORIZED_BODY, 401, {"X-Request-Id": request_id})
        headers = {"X-Request-Id": request_id}
        versioned = _VERSIONED_PATH.match(request.url.path)
        if versioned:
            version = served_version(versioned.group(1))
            if version is None:
                return _json_response(NOT_FOUND_BODY, 404, headers)
            headers["X-Shopify-API-Version"] = version
            # Routes live under API_PREFIX; the version the client asked for stays in its Link headers.
            request.scope["shopify_api_prefix"] = f"/admin/api/{versioned.group(1)}"
            request.scope["path"] = API_PREFIX + (versioned.group(2) or "")
        bucket_key = hashlib.sha256(token.encode()).hexdigest()  # never keep the token itself around
        graphql = bool(versioned) and versioned.group(2) == "/graphql.json"  # the cost bucket, not REST's
        if not graphql:
            allowed, used = bucket.acquire(bucket_key)
            headers["X-Shopify-Shop-Api-Call-Limit"] = f"{used}/{bucket.size}"
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if graphql:
            if faults.roll(faults.rate_limit_storm) or access.forced_throttle():
                return throttled_answer(0.0, headers)  # a storm says the bucket is empty, whatever it holds
            allowed, available = costs.take(bucket_key, MUTATION_COST)
            if not allowed:
                return throttled_answer(available, headers)
            request.scope["shopify_points_left"] = available
        elif not allowed or faults.roll(faults.rate_limit_storm):
            count("throttled")
            return _json_response(THROTTLED_BODY, 429, {**headers, "Retry-After": "2.0"})
        if faults.roll(faults.server_error_rate):
            count("injected_errors")
            status = faults.choose((500, 502, 503))
            if status == 500:
                return _json_response({"errors": "Internal Server Error"}, 500, headers)
            page = (
                f"<html><body><h1>{status} {'Bad Gateway' if status == 502 else 'Service Unavailable'}</h1>"
            )
            return Response(page + "</body></html>", status, headers=headers, media_type="text/html")
        response = await call_next(request)
        for name, value in headers.items():
            response.headers[name] = value
        if response.status_code == 200 and faults.roll(faults.truncated_body_rate):
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            cut = body[: max(1, len(body) // 2)]
            kept = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            return Response(cut, 200, headers=kept)
        return response

    hold_back_answers(app, faults, ("/admin/",))

    def horizon(now_ts: float) -> float:
        """Orders created before this are hidden from the token (none without ``read_all_orders``)."""
        return -math.inf if access.reads_all_orders else now_ts - ORDER_VISIBILITY_DAYS * 86400

    def visible(query: OrderQuery, now_ts: float) -> OrderQuery:
        """``query`` limited to the orders the token may see; Shopify leaves the others out silently."""
        oldest = horizon(now_ts)
        if oldest == -math.inf or (query.created_min is not None and query.created_min >= oldest):
            return query
        return replace(query, created_min=oldest)

    def params_of(request: Request) -> dict[str, str]:
        return dict(request.query_params)

    def wanted_fields(params: dict[str, str]) -> frozenset[str] | None:
        raw = params.get("fields")
        if not raw:
            return None
        return frozenset(part.strip() for part in raw.split(",") if part.strip())

    def parse_limit(params: dict[str, str]) -> int:
        if "limit" not in params:
            return DEFAULT_LIMIT
        raw = params["limit"]
        limit = int(raw) if re.fullmatch(r"\d{1,6}", raw) else -1
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest({"limit": f"limit must be between 1 and {MAX_LIMIT}, got {params['limit']!r}"})
        return limit

    def link(request: Request, limit: int, params: dict[str, str], page_info: str, rel: str) -> str:
        query = {"limit": str(limit), "page_info": page_info}
        if params.get("fields"):
            query["fields"] = params["fields"]
        base = str(request.base_url).rstrip("/")
        prefix = request.scope.get("shopify_api_prefix", API_PREFIX)
        return f'<{base}{prefix}/orders.json?{urlencode(query)}>; rel="{rel}"'

    @app.get(f"{API_PREFIX}/orders.json")
    def list_orders(request: Request) -> Response:
        faults.step_clock(world.clock)
        params = params_of(request)
        try:
            limit = parse_limit(params)
            wanted = wanted_fields(params)
            if "page_info" in params:
                passed = [name for name in _LISTING_FILTERS if name in params]
                if passed:
                    raise BadRequest(
                        {
                            passed[0]: f"{passed[0]} cannot be passed when page_info is present. "
                            "See https://shopify.dev/api/usage/pagination-rest for more information."
                        }
                    )
                filters, cursor_id, direction = codec.decode(params["page_info"])
            else:
                filters, cursor_id, direction = parse_filters(params, renderer), None, "next"
        except BadRequest as error:
            return _json_response({"errors": error.errors}, error.status)

        # A lagging cache: the answer to the previous cursor again (its Link still points at this cursor).
        listing = ServedPages.key([asdict(filters), limit, params.get("fields")])
        cursor = params.get("page_info", "")
        if (replayed := served.replay(listing, cursor, first=not cursor)) is not None:
            body, headers = replayed
            return Response(body, 200, headers=headers, media_type=JSON_MEDIA_TYPE)

        now_ts = world.now_ts()
        if direction == "next":
            start = 0 if cursor_id is None else renderer.first_index_after_id(cursor_id)
            query = visible(filters.to_query(min_index=start), now_ts)
            page = _take(_iter_matching(world, filters, query, now_ts, reverse=False), limit + 1)
            has_next, has_prev = len(page) > limit, cursor_id is not None
            page = page[:limit]
        else:
            stop = renderer.first_index_after_id(cursor_id - 1)  # indices strictly before the cursor
            query = visible(filters.to_query(stop_index=stop), now_ts)
            page = _take(_iter_matching(world, filters, query, now_ts, reverse=True), limit + 1)
            has_prev, has_next = len(page) > limit, True
            page = sorted(page[:limit])

        # The body is one join of encoded orders: a page is ~2.5 MB, and each extra copy of it (a str join, a
        # concatenation, encoding a str that one accented name made non-ASCII) cost milliseconds per page.
        pieces = [b'{"orders":[']
        for index in faults.shuffled(page):  # the cursors below still come from the sorted page
            state = world.state(index, now_ts)
            if state is not None:
                pieces += (render_order(faults, renderer, state, wanted).encode(), b",")
        if len(pieces) > 1:
            pieces.pop()  # the comma after the last order
        pieces.append(b"]}")
        links = []
        if page and has_prev:
            links.append(
                link(
                    request,
                    limit,
                    params,
                    codec.encode(filters, renderer.order_id(page[0]), "prev"),
                    "previous",
                )
            )
        if page and has_next:
            links.append(
                link(
                    request, limit, params, codec.encode(filters, renderer.order_id(page[-1]), "next"), "next"
                )
            )
        headers = {"Link": ", ".join(links)} if links else None
        body = b"".join(pieces)
        served.remember(listing, cursor, (body, headers))
        return Response(body, 200, headers=headers, media_type=JSON_MEDIA_TYPE)

    @app.get(f"{API_PREFIX}/orders/count.json")
    def count_orders(request: Request) -> Response:
        params = params_of(request)
        try:
            filters = parse_filters(params, renderer, for_count=True)
        except BadRequest as error:
            return _json_response({"errors": error.errors}, error.status)
        now_ts = world.now_ts()
        return _json_response({"count": world.count(visible(filters.to_query(), now_ts), now_ts)})

    @app.get(API_PREFIX + "/orders/{order_ref}.json")
    def get_order(request: Request, order_ref: str) -> Response:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        now_ts = world.now_ts()
        state = world.state(index, now_ts) if index is not None else None
        if state is None or state.order.created_ts < horizon(now_ts):
            return _json_response(NOT_FOUND_BODY, 404)
        body = '{"order":' + render_order(faults, renderer, state, wanted_fields(params_of(request))) + "}"
        return Response(body.encode(), 200, media_type=JSON_MEDIA_TYPE)

    add_push_routes(app, world, renderer, count)

    @app.get("/admin/oauth/access_scopes.json")
    def list_access_scopes() -> Response:
        return _json_response({"access_scopes": [{"handle": handle} for handle in access.scopes]})

    @app.get("/_sandbox/access_scopes")
    def get_access_scopes() -> Response:
        return _json_response({"access_scopes": list(access.scopes)})

    @app.post("/_sandbox/access_scopes")
    async def set_access_scopes(request: Request) -> Response:
        """Body: {"access_scopes": ["read_orders", ...]}: what the app's token is granted from now on."""
        try:
            body = await request.json()
            scopes = body.get("access_scopes") if isinstance(body, dict) else None
            if not isinstance(scopes, list) or not all(isinstance(x, str) and x for x in scopes):
                raise ValueError('send {"access_scopes": ["read_orders", ...]}')
        except ValueError as error:
            return _json_response({"errors": str(error)}, 400)
        access.scopes = tuple(scopes)
        return _json_response({"access_scopes": list(access.scopes)})

    @app.post("/_sandbox/graphql_throttle")
    async def throttle_graphql(request: Request) -> Response:
        """Body: {"next": n}: the next n GraphQL calls are answered THROTTLED, whatever the bucket holds."""
        try:
            body = await request.json()
            wanted = body.get("next") if isinstance(body, dict) else None
            if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
                raise ValueError('send {"next": n} with n >= 0')
        except ValueError as error:
            return _json_response({"errors": str(error)}, 400)
        access.throttle_next = wanted
        return _json_response({"next": access.throttle_next})

    @app.api_route("/admin/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    def unknown_admin_route(rest: str) -> Response:
        return _json_response(NOT_FOUND_BODY, 404)

    add_admin_routes(
        app,
        platform="shopify",
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "api_version": API_VERSION,
            "api_versions": list(VERSIONS),
            "access_scopes": list(access.scopes),
            "graphql_throttle_next": access.throttle_next,
            "shop_domain": renderer.shop_domain,
            "shop_timezone": shop_timezone,
            "rate_limit": {"bucket_size": bucket.size, "leak_per_second": bucket.leak_per_second},
        },
    )

    return app


# --------------------------------------------------------------------------------------------------
# What the hub pushes: fulfillments with tracking, stock levels (docs/platform-notes.md, Shopify)
# --------------------------------------------------------------------------------------------------

INVALID_QUANTITY = "Invalid fulfillment order line item quantity requested."
INVENTORY_REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)


class Unprocessable(Exception):
    """A Shopify refusal: ``status`` and the body's ``errors`` value."""

    def __init__(self, errors: Any, status: int = 422) -> None:
        super().__init__(str(errors))
        self.errors = errors
        self.status = status


def _missing(name: str) -> Unprocessable:
    return Unprocessable({name: "Required parameter missing or invalid"}, 400)


def _int_field(data: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not re.fullmatch(r"-?\d{1,19}", str(value))
    ):
        raise _missing(name)
    return int(value)


def _gid_tail(value: Any, kind: str) -> int | None:
    match = re.fullmatch(rf"gid://shopify/{kind}/(\d{{1,19}})", value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


class ShopStock:
    """The shop's stock: one location; levels live in the world's overlay (the catalog's opening stock until
    the hub sets one). Reads and compare-and-set run under one lock, so a CAS is atomic."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lock = threading.Lock()
        self.by_item = {v.listing("shopify").inventory_item_id: v for v in world.catalog.variants}
        self.by_variant_id = {v.listing("shopify").variant_id: v for v in world.catalog.variants}
        self._set_at: dict[tuple[int, int], int] = {}

    def available(self, variant_index: int, location_id: int) -> int:
        level = self.world.overlay.stock_levels.get(("shopify", variant_index, location_id))
        if level is not None:
            return level
        return (
            self.world.catalog.variants[variant_index].opening_stock if location_id == SHOP_LOCATION_ID else 0
        )

    def set(self, variant_index: int, location_id: int, available: int, at: int) -> None:
        self.world.overlay.record_stock_set("shopify", variant_index, location_id, available, at)
        self._set_at[(variant_index, location_id)] = at

    def updated_ts(self, variant_index: int, location_id: int) -> int:
        return self._set_at.get((variant_index, location_id), int(self.world.start_ts))


def add_push_routes(
    app: FastAPI, world: World, renderer: ShopifyRenderer, count: Callable[[str], None]
) -> None:
    """Fulfillment orders, fulfillments (create, update tracking), locations, variants, inventory levels and
    the GraphQL ``inventorySetQuantities`` mutation (the one place Shopify offers compare-and-set). ``count``
    notes what was served (``/_sandbox/state``'s ``requests``)."""
    push_lock = threading.Lock()  # validate-then-record must not interleave between two pushes
    stock = ShopStock(world)
    app.state.stock = stock
    tracking_updates: list[dict[str, Any]] = []  # every update_tracking.json applied, in order
    app.state.tracking_updates = tracking_updates
    answers_by_key: dict[str, tuple[str, dict[str, Any]]] = {}  # @idempotent key -> (variables, payload)

    def refusal(error: Unprocessable) -> Response:
        return _json_response({"errors": error.errors}, error.status)

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise Unprocessable({"error": "822: unexpected token"}, 400) from None
        if not isinstance(body, dict):
            raise Unprocessable({"error": "822: unexpected token"}, 400)
        return body

    def current_state(index: int) -> OrderState | None:
        return world.state(index, world.now_ts())

    @app.get(API_PREFIX + "/orders/{order_ref}/fulfillment_orders.json")
    def list_fulfillment_orders(order_ref: str) -> Response:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        state = current_state(index) if index is not None else None
        if state is None:
            return _json_response(NOT_FOUND_BODY, 404)
        return _json_response({"fulfillment_orders": renderer.fulfillment_orders(state)})

    def tracking_from(info: Any, previous: Tracking | None, at: int) -> Tracking:
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise _missing("tracking_info")
        number = info.get("number")
        if number is None and isinstance(info.get("numbers"), list) and info["numbers"]:
            number = info["numbers"][0]
        number = "" if number is None else str(number).strip()
        company = str(info.get("company") or "").strip() or detect_carrier(number)
        if not company and previous is not None and not number:
            company = previous.company
        url = info.get("url")
        if url is None and isinstance(info.get("urls"), list) and info["urls"]:
            url = info["urls"][0]
        url = str(url).strip() if url else tracking_url_for(company, number)
        return Tracking(company, number, url, at)

    def requested_lines(fulfillment: dict[str, Any]) -> tuple[int, dict[int, int] | None]:
        """(world index, {line index: quantity}) of a create request; None quantities: everything left."""
        groups = fulfillment.get("line_items_by_fulfillment_order")
        if not isinstance(groups, list) or not groups:
            raise _missing("line_items_by_fulfillment_order")
        index: int | None = None
        wanted: dict[int, int] | None = {}
        for group in groups:
            if not isinstance(group, dict):
                raise _missing("line_items_by_fulfillment_order")
            fo_id = _int_field(group, "fulfillment_order_id")
            assert fo_id is not None
            fo_index = renderer.index_of_fulfillment_order(fo_id)
            if fo_index is None or current_state(fo_index) is None:
                raise Unprocessable(NOT_FOUND_BODY["errors"], 404)
            if index is not None and fo_index != index:
                raise Unprocessable(["All fulfillment orders must belong to the same order."])
            index = fo_index
            items = group.get("fulfillment_order_line_items")
            if items is None:
                wanted = None  # the whole fulfillment order
                continue
            if not isinstance(items, list):
                raise _missing("fulfillment_order_line_items")
            for item in items:
                if not isinstance(item, dict):
                    raise _missing("fulfillment_order_line_items")
                line_id, quantity = _int_field(item, "id"), _int_field(item, "quantity")
                assert line_id is not None and quantity is not None
                line_index = line_id - renderer.fulfillment_order_line_id(fo_index, 0)
                if not 0 <= line_index < len(world.get(fo_index).lines) or quantity <= 0:
                    raise Unprocessable([INVALID_QUANTITY])
                if wanted is not None:
                    wanted[line_index] = wanted.get(line_index, 0) + quantity
        assert index is not None
        return index, wanted

    @app.post(API_PREFIX + "/fulfillments.json")
    async def create_fulfillment(request: Request) -> Response:
        try:
            body = await json_body(request)
            fulfillment = body.get("fulfillment")
            if not isinstance(fulfillment, dict):
                raise _missing("fulfillment")
            with push_lock:
                index, wanted = requested_lines(fulfillment)
                now = int(world.now_ts())
                state = current_state(index)
                assert state is not None
                fo = renderer.fulfillment_orders(state)[0]
                if fo["status"] == "closed":
                    raise Unprocessable(
                        [f"Fulfillment order {fo['id']} has an unfulfillable status= closed."]
                    )
                remaining = {i: state.fulfillable(i) for i in range(len(state.order.lines))}
                if wanted is None:
                    wanted = {i: q for i, q in remaining.items() if q > 0}
                if any(quantity > remaining[i] for i, quantity in wanted.items()):
                    raise Unprocessable([INVALID_QUANTITY])
                tracking = tracking_from(fulfillment.get("tracking_info"), None, now)
                lines = tuple(sorted(wanted.items()))
                world.overlay.record_fulfillment(
                    index, now, lines, tracking.company, tracking.number, tracking.url
                )
                after = current_state(index)
                assert after is not None
                made = [
                    f
                    for f in after.fulfillments
                    if f.pushed and f.at == now and f.lines == lines and f.tracking_number == tracking.number
                ][-1]
        except Unprocessable as error:
            return refusal(error)
        body_text = '{"fulfillment":' + renderer.fulfillment_json(after, made) + "}"
        return Response(body_text.encode(), 201, media_type=JSON_MEDIA_TYPE)

    @app.post(API_PREFIX + "/fulfillments/{fulfillment_ref}/update_tracking.json")
    async def update_tracking(request: Request, fulfillment_ref: str) -> Response:
        ref = renderer.fulfillment_ref(int(fulfillment_ref)) if fulfillment_ref.isdigit() else None
        state = current_state(ref[0]) if ref is not None else None
        found = [f for f in state.fulfillments if ref and f.seq == ref[1]] if state is not None else []
        if ref is None or state is None or not found:
            return _json_response(NOT_FOUND_BODY, 404)
        try:
            body = await json_body(request)
            fulfillment = body.get("fulfillment")
            if not isinstance(fulfillment, dict) or not isinstance(fulfillment.get("tracking_info"), dict):
                raise _missing("tracking_info")
            with push_lock:
                previous = renderer.tracking_of(ref[0], found[0])
                tracking = tracking_from(fulfillment["tracking_info"], previous, int(world.now_ts()))
                renderer.set_tracking(ref[0], ref[1], tracking)
                tracking_updates.append(
                    {
                        "fulfillment_id": int(fulfillment_ref),
                        "previous_number": previous.number,
                        "number": tracking.number,
                        "company": tracking.company,
                        "at": tracking.at,
                    }
                )
                count("tracking_updates")
        except Unprocessable as error:
            return refusal(error)
        return Response(
            ('{"fulfillment":' + renderer.fulfillment_json(state, found[0]) + "}").encode(),
            200,
            media_type=JSON_MEDIA_TYPE,
        )

    # ---------------------------------------------------------------- stock
    def location_json() -> dict[str, Any]:
        created = renderer.time.format(int(world.start_ts))
        return {
            "id": SHOP_LOCATION_ID,
            "name": SHOP_LOCATION["name"],
            "address1": SHOP_LOCATION["address1"],
            "address2": None,
            "city": SHOP_LOCATION["city"],
            "zip": SHOP_LOCATION["zip"],
            "province": SHOP_LOCATION["province"],
            "country": SHOP_LOCATION["country"],
            "phone": SHOP_LOCATION["phone"],
            "created_at": created,
            "updated_at": created,
            "country_code": SHOP_LOCATION["country_code"],
            "country_name": SHOP_LOCATION["country_name"],
            "province_code": SHOP_LOCATION["province_code"],
            "legacy": False,
            "active": True,
            "admin_graphql_api_id": f"gid://shopify/Location/{SHOP_LOCATION_ID}",
            "localized_country_name": SHOP_LOCATION["country_name"],
            "localized_province_name": SHOP_LOCATION["province"],
        }

    def level_json(variant_index: int, location_id: int) -> dict[str, Any]:
        item_id = world.catalog.variants[variant_index].listing("shopify").inventory_item_id
        return {
            "inventory_item_id": item_id,
            "location_id": location_id,
            "available": stock.available(variant_index, location_id),
            "updated_at": renderer.time.format(stock.updated_ts(variant_index, location_id)),
            "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item_id}",
        }

    @app.get(API_PREFIX + "/locations.json")
    def list_locations() -> Response:
        return _json_response({"locations": [location_json()]})

    @app.get(API_PREFIX + "/variants/{variant_ref}.json")
    def get_variant(variant_ref: str) -> Response:
        variant = stock.by_variant_id.get(int(variant_ref)) if variant_ref.isdigit() else None
        if variant is None:
            return _json_response(NOT_FOUND_BODY, 404)
        listing = variant.listing("shopify")
        created = renderer.time.format(int(world.start_ts))
        options = (variant.variant_title or "Default Title").split(" / ")
        quantity = stock.available(variant.index, SHOP_LOCATION_ID)
        return _json_response(
            {
                "variant": {
                    "id": listing.variant_id,
                    "product_id": listing.product_id,
                    "title": variant.variant_title or "Default Title",
                    "price": _amount(variant.price),
                    "sku": listing.sku,
                    "position": 1,
                    "inventory_policy": "deny",
                    "compare_at_price": None,
                    "fulfillment_service": "manual",
                    "inventory_management": "shopify",
                    "option1": options[0],
                    "option2": options[1] if len(options) > 1 else None,
                    "option3": None,
                    "created_at": created,
                    "updated_at": created,
                    "taxable": True,
                    "barcode": None,
                    "grams": variant.grams,
                    "weight": variant.grams / 1000,
                    "weight_unit": "kg",
                    "inventory_item_id": listing.inventory_item_id,
                    "inventory_quantity": quantity,
                    "old_inventory_quantity": quantity,
                    "requires_shipping": True,
                    "admin_graphql_api_id": f"gid://shopify/ProductVariant/{listing.variant_id}",
                    "image_id": None,
                }
            }
        )

    def id_list(raw: str | None, name: str) -> list[int] | None:
        if raw is None:
            return None
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if not parts or not all(re.fullmatch(r"\d{1,19}", part) for part in parts) or len(parts) > 50:
            raise _missing(name)
        return [int(part) for part in parts]

    @app.get(API_PREFIX + "/inventory_levels.json")
    def list_inventory_levels(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            items = id_list(params.get("inventory_item_ids"), "inventory_item_ids")
            locations = id_list(params.get("location_ids"), "location_ids")
            if items is None and locations is None:
                raise Unprocessable(["inventory_item_ids, location_ids, or both are required"])  # [U] wording
        except Unprocessable as error:
            return refusal(error)
        variants = [stock.by_item[i] for i in items if i in stock.by_item] if items is not None else None
        if variants is None:
            variants = list(world.catalog.variants)
        wanted_locations = (
            [SHOP_LOCATION_ID] if locations is None else [x for x in locations if x == SHOP_LOCATION_ID]
        )
        with stock.lock:
            levels = [level_json(v.index, loc) for v in variants for loc in wanted_locations]
        return _json_response({"inventory_levels": levels})

    @app.post(API_PREFIX + "/inventory_levels/set.json")
    async def set_inventory_level(request: Request) -> Response:
        try:
            body = await json_body(request)
            location_id = _int_field(body, "location_id")
            item_id = _int_field(body, "inventory_item_id")
            available = _int_field(body, "available")
            assert location_id is not None and item_id is not None and available is not None
            variant = stock.by_item.get(item_id)
            if variant is None or location_id != SHOP_LOCATION_ID:
                raise Unprocessable(NOT_FOUND_BODY["errors"], 404)
            if abs(available) > MAX_INVENTORY_QUANTITY:
                raise Unprocessable(
                    {"available": [f"must be less than or equal to {MAX_INVENTORY_QUANTITY}"]}
                )
            with stock.lock:
                stock.set(variant.index, location_id, available, int(world.now_ts()))
                level = level_json(variant.index, location_id)
        except Unprocessable as error:
            return refusal(error)
        return _json_response({"inventory_level": level})

    @app.post(API_PREFIX + "/graphql.json")
    async def graphql(request: Request) -> Response:
        """Only ``inventorySetQuantities`` with its input in a variable (anything else: a GraphQL error), as
        2026-04 defines it (the module docstring); HTTP 200 whatever GraphQL says, like Shopify."""
        try:
            body = await json_body(request)
        except Unprocessable as error:
            return refusal(error)
        query = body.get("query")
        variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
        if not isinstance(query, str) or not query.strip():
            return _json_response({"errors": [{"message": "No query string was present"}]}, 400)
        mutation = _SET_QUANTITIES_CALL.search(query)
        if not re.search(r"\bmutation\b", query) or mutation is None:
            return graphql_error(
                "The sandbox's GraphQL endpoint implements only the inventorySetQuantities mutation, with "
                "its input in a variable",
                "NOT_IMPLEMENTED",
            )
        input_variable = mutation.group("input")
        given = variables.get(input_variable)
        if problems := input_problems(given):
            return variable_error(query, input_variable, "InventorySetQuantitiesInput!", given, problems)
        directive = _IDEMPOTENT_DIRECTIVE.match(query, mutation.end())
        if directive is None:
            return graphql_error(
                "The @idempotent directive is required for this mutation but was not provided.", "BAD_REQUEST"
            )
        key = directive.group("literal")
        if directive.group("variable"):
            key = variables.get(directive.group("variable"))
            if not isinstance(key, str) or not key:
                return variable_error(
                    query,
                    directive.group("variable"),
                    "String!",
                    key,
                    [{"path": [], "explanation": "Expected value to not be null"}],
                )
        if any("changeFromQuantity" not in quantity for quantity in given["quantities"]):
            return graphql_error(
                "InventorySetQuantityInput must include the following argument: changeFromQuantity.",
                "INVALID_FIELD_ARGUMENTS",
            )
        payload = set_quantities(str(key), given)
        points = request.scope.get("shopify_points_left", app.state.costs.points)
        cost = app.state.costs.cost_extension(points, MUTATION_COST)
        return _json_response({"data": {"inventorySetQuantities": payload}, "extensions": {"cost": cost}})

    def graphql_error(message: str, code: str) -> Response:
        return _json_response({"errors": [{"message": message, "extensions": {"code": code}}]})

    def variable_error(
        query: str, name: str, type_name: str, value: Any, problems: list[dict[str, Any]]
    ) -> Response:
        """graphql-ruby's answer to a variable the schema refuses (an unknown field, a wrong type, a null)."""
        message = f"Variable ${name} of type {type_name} was provided invalid value"
        where = [
            f"{'.'.join(str(part) for part in problem['path'])} ({problem['explanation']})"
            for problem in problems
            if problem["path"]
        ]
        if where:
            message += " for " + ", ".join(where)
        at = query.find(f"${name}")  # the variable's definition comes first
        line = query.count("\n", 0, at) + 1
        column = at - query.rfind("\n", 0, at)
        error = {
            "message": message,
            "locations": [{"line": line, "column": column}],
            "extensions": {"value": value, "problems": problems},
        }
        return _json_response({"errors": [error]})

    def input_problems(given: Any) -> list[dict[str, Any]]:
        """What GraphQL refuses in an ``InventorySetQuantitiesInput`` before the mutation runs: fields the
        schema does not define (2026-04 removed ``ignoreCompareQuantity`` and ``compareQuantity``), nulls
        in non-null fields, values that are not Ints."""
        if not isinstance(given, dict):
            return [{"path": [], "explanation": "Expected value to not be null"}]
        problems: list[dict[str, Any]] = [
            {"path": [name], "explanation": "Field is not defined on InventorySetQuantitiesInput"}
            for name in given
            if name not in _SET_QUANTITIES_INPUT_FIELDS
        ]
        problems += [
            {"path": [name], "explanation": "Expected value to not be null"}
            for name in ("name", "reason", "quantities")
            if given.get(name) is None
        ]
        quantities = given.get("quantities")
        if quantities is not None and not isinstance(quantities, list):
            problems.append({"path": ["quantities"], "explanation": "Expected a list"})
        for position, quantity in enumerate(quantities if isinstance(quantities, list) else []):
            if not isinstance(quantity, dict):
                problems.append(
                    {
                        "path": ["quantities", position],
                        "explanation": "Expected value to be a key-value object",
                    }
                )
                continue
            for name in quantity:
                if name not in _SET_QUANTITY_FIELDS:
                    problems.append(
                        {
                            "path": ["quantities", position, name],
                            "explanation": "Field is not defined on InventorySetQuantityInput",
                        }
                    )
            for name in ("inventoryItemId", "locationId", "quantity"):
                if quantity.get(name) is None:
                    problems.append(
                        {
                            "path": ["quantities", position, name],
                            "explanation": "Expected value to not be null",
                        }
                    )
            for name in ("quantity", "changeFromQuantity"):
                value = quantity.get(name)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    problems.append(
                        {
                            "path": ["quantities", position, name],
                            "explanation": f"Could not coerce value {json.dumps(value)} to Int",
                        }
                    )
        return problems

    def set_quantities(key: str, given: dict[str, Any]) -> dict[str, Any]:
        """The mutation under its idempotency key: the first request with a key decides; the same key with
        the same input gets that answer again (applied once), with another input a mismatch."""
        variables = json.dumps(given, sort_keys=True)
        with stock.lock:
            known = answers_by_key.get(key)
            if known is not None:
                first_variables, first_payload = known
                if first_variables != variables:
                    return _user_error(
                        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        None,
                        "The same idempotency key cannot be used with different operation parameters.",
                    )
                if first_payload["userErrors"]:  # [U] a refused first attempt: Shopify asks for a new key
                    return _user_error(
                        "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
                        None,
                        "A previous request with this idempotency key failed. "
                        "Retry with a new idempotency key.",
                    )
                count("idempotent_replays")
                return first_payload
            payload = apply_quantities(given)
            answers_by_key[key] = (variables, payload)
            codes = {error["code"] for error in payload["userErrors"]}
            count("stale_sets" if "CHANGE_FROM_QUANTITY_STALE" in codes else "inventory_sets")
            return payload

    def apply_quantities(given: dict[str, Any]) -> dict[str, Any]:
        """Validate every quantity, then set them all (all or nothing). Called under ``stock.lock``."""
        if not given["quantities"]:
            return _user_error(
                "INVALID_INVENTORY_ITEM",
                ["input", "quantities"],
                "The specified inventory item could not be found.",
            )
        if given["name"] not in ("available", "on_hand"):
            return _user_error(
                "INVALID_NAME",
                ["input", "name"],
                "The quantity name must be either 'available' or 'on_hand'.",
            )
        if given["reason"] not in INVENTORY_REASONS:
            return _user_error("INVALID_REASON", ["input", "reason"], "The specified reason is invalid.")
        planned = []
        for position, quantity in enumerate(given["quantities"]):
            path = ["input", "quantities", str(position)]
            item_id = _gid_tail(quantity["inventoryItemId"], "InventoryItem")
            location_id = _gid_tail(quantity["locationId"], "Location")
            variant = stock.by_item.get(item_id) if item_id is not None else None
            if variant is None:
                return _user_error(
                    "INVALID_INVENTORY_ITEM",
                    [*path, "inventoryItemId"],
                    "The specified inventory item could not be found.",
                )
            if location_id != SHOP_LOCATION_ID:
                return _user_error(
                    "INVALID_LOCATION", [*path, "locationId"], "The specified location could not be found."
                )
            new = quantity["quantity"]
            if new < 0:
                return _user_error(
                    "INVALID_QUANTITY_NEGATIVE", [*path, "quantity"], "The quantity can't be negative."
                )
            if new > MAX_INVENTORY_QUANTITY:
                return _user_error(
                    "INVALID_QUANTITY_TOO_HIGH",
                    [*path, "quantity"],
                    "The total quantity can't be higher than 1,000,000,000.",
                )
            current = stock.available(variant.index, location_id)
            change_from = quantity["changeFromQuantity"]  # null: the caller opted out of the check
            if change_from is not None and change_from != current:
                return _user_error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    [*path, "changeFromQuantity"],
                    "The changeFromQuantity value does not match persisted value.",
                )
            planned.append((variant, location_id, new, current))
        now = int(world.now_ts())
        for variant, location_id, new, _ in planned:  # all or nothing: applied only once all passed
            stock.set(variant.index, location_id, new, now)
        return {
            "inventoryAdjustmentGroup": {
                "createdAt": datetime.fromtimestamp(now, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "reason": given["reason"],
                "referenceDocumentUri": given.get("referenceDocumentUri"),
                "changes": [
                    {
                        "name": given["name"],
                        "delta": new - current,
                        "quantityAfterChange": new,
                        "item": {
                            "id": f"gid://shopify/InventoryItem/{v.listing('shopify').inventory_item_id}"
                        },
                        "location": {"id": f"gid://shopify/Location/{loc}"},
                    }
                    for v, loc, new, current in planned
                ],
            },
            "userErrors": [],
        }


_SET_QUANTITIES_CALL = re.compile(r"inventorySetQuantities\s*\(\s*input\s*:\s*\$(?P<input>\w+)\s*\)")
_IDEMPOTENT_DIRECTIVE = re.compile(
    r'\s*@idempotent\s*\(\s*key\s*:\s*(?:\$(?P<variable>\w+)|"(?P<literal>[^"]*)")\s*\)'
)
_SET_QUANTITIES_INPUT_FIELDS = frozenset({"name", "reason", "referenceDocumentUri", "quantities"})
_SET_QUANTITY_FIELDS = frozenset({"inventoryItemId", "locationId", "quantity", "changeFromQuantity"})


def _user_error(code: str, field_path: list[str] | None, message: str) -> dict[str, Any]:
    return {
        "inventoryAdjustmentGroup": None,
        "userErrors": [{"code": code, "field": field_path, "message": message}],
    }
