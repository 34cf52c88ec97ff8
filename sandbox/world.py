"""A platform-neutral, seeded, deterministic shop world that every platform simulator renders.

- ``Catalog``: the merchant's products and variants (merchant SKU codes, prices) with stable per-platform
  listing ids; a few variants have a blank SKU on a channel (the hub resolves them by variant id) and a
  couple are not mapped in the hub at all (their orders become ``unknown_sku`` exceptions).
- A living order stream: order ``i`` is computed on demand from ``random.Random(f"{seed}:{i}")``, is created
  at ``start + i * interval`` (+ jitter below half an interval, so creation times never go backwards) and
  carries a timeline of events (paid, cancelled, fulfilled, refunded, closed) within ``MAX_ORDER_LIFETIME``
  of its creation. The state of an order at clock time ``now`` is its creation plus every event at or
  before ``now``; orders created after ``now`` do not exist yet.
- ``Overlay``: what the hub pushed back (fulfilments, stock levels), merged into the order states.

Everything is UTC inside; times are whole POSIX seconds (every platform here has second precision) and
money is ``Decimal``. Nothing here is O(total orders): windows become index ranges by arithmetic.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Literal, TypeVar

from platforms.registry import DECLARATIONS
from sandbox.clock import Clock

T = TypeVar("T")
MAX_ORDER_LIFETIME = timedelta(days=3)
MAX_LIFETIME_SECONDS = int(MAX_ORDER_LIFETIME.total_seconds())
DEFAULT_INTERVAL = timedelta(seconds=30)
DEFAULT_HISTORY = timedelta(days=7)
CUSTOMER_POOL_SIZE = 2000
_CHUNK = 1024  # orders per block of the updated-time index
CENT = Decimal("0.01")
ZERO = Decimal("0.00")

FinancialStatus = Literal["pending", "authorized", "paid", "partially_refunded", "refunded", "voided"]
RestockType = Literal["no_restock", "cancel", "return"]
EventKind = Literal["paid", "cancelled", "fulfilled", "refunded", "closed"]


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def to_datetime(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# --------------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelListing:
    """How one channel knows a variant: its ids there and the SKU string the merchant typed there."""

    platform: str
    product_id: int
    variant_id: int
    inventory_item_id: int
    sku: str  # "" when the merchant left the channel's SKU field blank

    def as_strings(self) -> dict[str, str]:
        """Ids as the canonical order carries them (strings: platform ids can exceed 2^53)."""
        return {
            "product_id": str(self.product_id),
            "variant_id": str(self.variant_id),
            "inventory_item_id": str(self.inventory_item_id),
            "sku": self.sku,
        }


@dataclass(frozen=True, slots=True)
class Variant:
    index: int
    sku: str  # the merchant's internal SKU code, e.g. "TSHIRT-RED-M"
    product_key: str
    product_title: str
    variant_title: str | None  # None for single-variant products
    price: Decimal
    grams: int
    vendor: str
    unmapped: bool  # True: the merchant has not mapped it in the hub (orders with it -> unknown_sku)
    opening_stock: int
    listings: Mapping[str, ChannelListing]

    @property
    def title(self) -> str:
        """What a person reads: "Classic Tee - Red / M"."""
        return f"{self.product_title} - {self.variant_title}" if self.variant_title else self.product_title

    def listing(self, platform: str) -> ChannelListing:
        try:
            return self.listings[platform]
        except KeyError:
            raise KeyError(f"variant {self.sku} has no listing on platform {platform!r}") from None

    def platform_ids(self, platform: str) -> dict[str, str]:
        """``{"product_id", "variant_id", "inventory_item_id", "sku"}`` on ``platform``, ids as strings."""
        return self.listing(platform).as_strings()


@dataclass(frozen=True, slots=True)
class _ProductSpec:
    key: str
    title: str
    price: str
    grams: int
    options: tuple[tuple[str, str], ...]  # (sku suffix, variant title); () for a single variant
    unmapped: bool = False


def _sizes(colours: tuple[str, ...], sizes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((f"{c.upper()}-{s}", f"{c} / {s}") for c in colours for s in sizes)


_PRODUCTS: tuple[_ProductSpec, ...] = (
    _ProductSpec("TSHIRT", "Classic Tee", "19.00", 180, _sizes(("Red", "Blue", "Black"), ("S", "M", "L"))),
    _ProductSpec("HOODIE", "Pullover Hoodie", "49.00", 520, _sizes(("Grey", "Navy"), ("M", "L", "XL"))),
    _ProductSpec("MUG", "Enamel Mug", "12.50", 300, (("WHITE", "White"), ("BLACK", "Black"))),
    _ProductSpec("TOTE", "Canvas Tote", "15.00", 150, ()),
    _ProductSpec("BEANIE", "Rib Beanie", "18.00", 90, (("RED", "Red"), ("GREY", "Grey"))),
    _ProductSpec("SOCKS", "Crew Socks 3-Pack", "14.99", 120, (("SM", "S-M"), ("LXL", "L-XL"))),
    _ProductSpec("BOTTLE", "Steel Bottle", "24.00", 350, (("500", "500 ml"), ("750", "750 ml"))),
    _ProductSpec("STICKERS", "Sticker Pack", "4.99", 20, ()),
    _ProductSpec(
        "POSTER", "Limited Edition Poster", "35.00", 200, (("A2", "A2"), ("A3", "A3")), unmapped=True
    ),
)

# Per platform: its declaration's sandbox_id_space (platforms/<name>/__init__.py).
_CHANNEL_ID_SPACES: dict[str, tuple[int, int, int, int]] = {
    name: declared.sandbox_id_space for name, declared in DECLARATIONS.items()
}
VENDOR = "ChannelHub Demo Co"


class Catalog:
    """The merchant's catalog; deterministic from ``seed``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        specs: list[tuple[_ProductSpec, str, str | None]] = []
        for product in _PRODUCTS:
            if product.options:
                specs.extend((product, f"{product.key}-{suffix}", title) for suffix, title in product.options)
            else:
                specs.append((product, product.key, None))
        listings = self._listings(seed, specs)
        stock_rng = random.Random(f"{seed}:catalog:stock")
        self.variants: list[Variant] = [
            Variant(
                index=index,
                sku=sku,
                product_key=product.key,
                product_title=product.title,
                variant_title=variant_title,
                price=Decimal(product.price),
                grams=product.grams,
                vendor=VENDOR,
                unmapped=product.unmapped,
                opening_stock=stock_rng.randrange(40, 400),
                listings=MappingProxyType({p: by_index[index] for p, by_index in listings.items()}),
            )
            for index, (product, sku, variant_title) in enumerate(specs)
        ]
        self._by_sku = {v.sku: v for v in self.variants}
        self._by_channel_variant = {
            (platform, listing.variant_id): v
            for v in self.variants
            for platform, listing in v.listings.items()
        }
        mapped = [v for v in self.variants if not v.unmapped]
        # Unmapped variants sell rarely, so a few orders (not most) land in the exception queue.
        self._variants_tuple = tuple(self.variants)
        self._cumulative_weights = tuple(
            itertools.accumulate(0.04 if v.unmapped else 1.0 for v in self.variants)
        )
        self.mapped_variants: list[Variant] = mapped
        self.unmapped_variants: list[Variant] = [v for v in self.variants if v.unmapped]

    @staticmethod
    def _listings(
        seed: int, specs: list[tuple[_ProductSpec, str, str | None]]
    ) -> dict[str, dict[int, ChannelListing]]:
        result: dict[str, dict[int, ChannelListing]] = {}
        for platform, (product_base, variant_base, item_base, blank_skus) in _CHANNEL_ID_SPACES.items():
            rng = random.Random(f"{seed}:catalog:{platform}")
            product_ids: dict[str, int] = {}
            next_product, next_variant, next_item = product_base, variant_base, item_base
            mapped_indices = [i for i, (product, _, _) in enumerate(specs) if not product.unmapped]
            blank = set(rng.sample(mapped_indices, blank_skus))
            by_index: dict[int, ChannelListing] = {}
            for index, (product, sku, _) in enumerate(specs):
                if product.key not in product_ids:
                    next_product += rng.randrange(1_000, 90_000)
                    product_ids[product.key] = next_product
                next_variant += rng.randrange(1_000, 90_000)
                next_item += rng.randrange(1_000, 90_000)
                by_index[index] = ChannelListing(
                    platform=platform,
                    product_id=product_ids[product.key],
                    variant_id=next_variant,
                    inventory_item_id=next_item,
                    sku="" if index in blank else sku,
                )
            result[platform] = by_index
        return result

    def by_sku(self, sku: str) -> Variant:
        return self._by_sku[sku]

    def by_channel_variant(self, platform: str, variant_id: int) -> Variant | None:
        return self._by_channel_variant.get((platform, variant_id))

    def pick_variant(self, rng: random.Random) -> Variant:
        return _weighted(rng, self._variants_tuple, self._cumulative_weights)


# --------------------------------------------------------------------------------------------------
# People and places
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    city: str
    province: str
    province_code: str
    country: str
    country_code: str
    zip_prefix: str
    latitude: float
    longitude: float
    tax_rate: Decimal
    tax_title: str


_PLACES: tuple[Place, ...] = (
    Place("New York", "New York", "NY", "United States", "US", "100", 40.7506, -73.9972, Decimal("0.08875"),
          "NY State Tax"),
    Place("Brooklyn", "New York", "NY", "United States", "US", "112", 40.6782, -73.9442, Decimal("0.08875"),
          "NY State Tax"),
    Place("Louisville", "Kentucky", "KY", "United States", "US", "402", 38.2527, -85.7585, Decimal("0.06"),
          "KY State Tax"),
    Place("Austin", "Texas", "TX", "United States", "US", "787", 30.2672, -97.7431, Decimal("0.0825"),
          "TX State Tax"),
    Place("Portland", "Oregon", "OR", "United States", "US", "972", 45.5152, -122.6784, Decimal("0"), ""),
    Place("Seattle", "Washington", "WA", "United States", "US", "981", 47.6062, -122.3321, Decimal("0.1025"),
          "WA State Tax"),
    Place("Chicago", "Illinois", "IL", "United States", "US", "606", 41.8781, -87.6298, Decimal("0.1025"),
          "IL State Tax"),
    Place("Denver", "Colorado", "CO", "United States", "US", "802", 39.7392, -104.9903, Decimal("0.0881"),
          "CO State Tax"),
    Place("Miami", "Florida", "FL", "United States", "US", "331", 25.7617, -80.1918, Decimal("0.07"),
          "FL State Tax"),
    Place("San Francisco", "California", "CA", "United States", "US", "941", 37.7749, -122.4194,
          Decimal("0.08625"), "CA State Tax"),
    Place("Boston", "Massachusetts", "MA", "United States", "US", "021", 42.3601, -71.0589, Decimal("0.0625"),
          "MA State Tax"),
    Place("Toronto", "Ontario", "ON", "Canada", "CA", "M5V", 43.6532, -79.3832, Decimal("0.13"), "HST"),
)  # fmt: skip

_FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kira", "Liam", "Maya",
    "Noah", "Olga", "Priya", "Quinn", "Ravi", "Sofia", "Tom", "Uma", "Victor", "Wen", "Yara", "Zoe", "Léa",
)  # fmt: skip
_LAST_NAMES = (
    "Anderson", "Brown", "Chen", "Dubois", "Evans", "Fischer", "García", "Hughes", "Ito", "Jensen",
    "Kowalski", "Lopez", "Martin", "Nguyen", "O'Brien", "Patel", "Rossi", "Schmidt", "Tanaka", "Walker",
    "Zhang",
)  # fmt: skip
_STREETS = (
    "Maple Avenue", "Oak Street", "Chestnut Street", "Pine Road", "Elm Court", "Cedar Lane", "Lakeview Drive",
    "Hillcrest Road", "Market Street", "Sunset Boulevard", "River Road", "Church Street",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Address:
    first_name: str
    last_name: str
    address1: str
    address2: str
    city: str
    province: str
    province_code: str
    country: str
    country_code: str
    zip: str
    phone: str | None
    company: str | None
    latitude: float
    longitude: float
    tax_rate: Decimal
    tax_title: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True, slots=True)
class Customer:
    index: int  # position in the world's customer pool; platforms derive their ids from it
    first_name: str
    last_name: str
    email: str
    phone: str | None
    accepts_marketing: bool
    created_ts: int
    default_address: Address

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def _phone(rng: random.Random, country_code: str) -> str:
    digits = f"{rng.randrange(200, 999)}{rng.randrange(200, 999)}{rng.randrange(0, 10_000):04d}"
    if country_code in ("US", "CA") and rng.random() < 0.5:
        return f"+1{digits}"
    return f"+1 ({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def _address(rng: random.Random, first: str, last: str, place: Place | None = None) -> Address:
    place = place or rng.choice(_PLACES)
    zip_code = (
        f"{place.zip_prefix} {rng.randrange(1, 9)}{rng.choice('ABCEGHJ')}{rng.randrange(1, 9)}"
        if place.country_code == "CA"
        else f"{place.zip_prefix}{rng.randrange(0, 100):02d}"
    )
    return Address(
        first_name=first,
        last_name=last,
        address1=f"{rng.randrange(1, 2500)} {rng.choice(_STREETS)}",
        address2=rng.choice(("", "", "", f"Apt {rng.randrange(1, 40)}{rng.choice('ABCD')}", "Suite 200")),
        city=place.city,
        province=place.province,
        province_code=place.province_code,
        country=place.country,
        country_code=place.country_code,
        zip=zip_code,
        phone=_phone(rng, place.country_code) if rng.random() < 0.7 else None,
        company=rng.choice(("Acme Corp", "Globex", "Initech")) if rng.random() < 0.08 else None,
        latitude=round(place.latitude + rng.uniform(-0.05, 0.05), 5),
        longitude=round(place.longitude + rng.uniform(-0.05, 0.05), 5),
        tax_rate=place.tax_rate,
        tax_title=place.tax_title,
    )


# --------------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderLine:
    index: int  # position in the order (platforms derive line ids from order index + this)
    variant: Variant
    quantity: int
    unit_price: Decimal
    discount: Decimal  # the order discount allocated to this line (all units)
    tax: Decimal  # tax on this line after its discount (all units)

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class DiscountCode:
    code: str
    kind: Literal["percentage", "fixed_amount"]
    value: Decimal  # 10 for 10 %, or the fixed amount
    amount: Decimal  # what it took off this order


@dataclass(frozen=True, slots=True)
class ShippingMethod:
    title: str
    code: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class Fulfillment:
    seq: int  # 1-based per order ("#1001.1")
    at: int
    lines: tuple[tuple[int, int], ...]  # (line index, quantity)
    tracking_company: str
    tracking_number: str
    tracking_url: str
    pushed: bool = False  # True when the hub pushed it (overlay), False when the world made it


@dataclass(frozen=True, slots=True)
class RefundLine:
    line_index: int
    quantity: int
    restock_type: RestockType
    subtotal: Decimal
    tax: Decimal


@dataclass(frozen=True, slots=True)
class Refund:
    seq: int  # 1-based per order
    at: int
    lines: tuple[RefundLine, ...]
    shipping: Decimal  # shipping refunded (an order adjustment)
    amount: Decimal  # the refund transaction; 0 when nothing had been paid (no transaction)
    note: str

    @property
    def restock(self) -> bool:
        return any(line.restock_type != "no_restock" for line in self.lines)


@dataclass(frozen=True, slots=True)
class Event:
    at: int
    kind: EventKind
    cancel_reason: str | None = None
    fulfillment: Fulfillment | None = None
    refund: Refund | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    """The cheap part of an order: when it was created and when it changes (for window queries)."""

    index: int
    created_ts: int
    event_times: tuple[int, ...]  # sorted, all > created_ts
    cancelled_ts: int | None
    closed_ts: int | None

    def updated_ts_at(self, now_ts: float) -> int | None:
        """The order's updated time as seen at ``now_ts``; None when it does not exist yet."""
        if self.created_ts > now_ts:
            return None
        updated = self.created_ts
        for at in self.event_times:
            if at > now_ts:
                break
            updated = at
        return updated

    def is_cancelled_at(self, now_ts: float) -> bool:
        return self.cancelled_ts is not None and self.cancelled_ts <= now_ts

    def is_closed_at(self, now_ts: float) -> bool:
        return self.closed_ts is not None and self.closed_ts <= now_ts


@dataclass(frozen=True, slots=True)
class WorldOrder:
    """An order's whole life: its content and every event (some still in the future of the clock)."""

    index: int
    seed: int
    created_ts: int
    currency: str
    lines: tuple[OrderLine, ...]
    customer: Customer | None
    email: str | None
    phone: str | None
    shipping_address: Address
    billing_address: Address
    discount: DiscountCode | None
    shipping: ShippingMethod
    tax_rate: Decimal
    tax_title: str
    initial_financial_status: FinancialStatus
    gateway: str
    source_name: str
    note: str | None
    tags: str
    events: tuple[Event, ...]  # sorted by time
    # Totals (computed once; shipping is not taxed in this world, taxes are not included in prices)
    total_line_items: Decimal
    total_discount: Decimal
    total_tax: Decimal
    subtotal: Decimal  # line items - discounts
    total: Decimal  # subtotal + shipping + tax
    total_grams: int

    @property
    def number(self) -> int:
        """1-based sequence number (Shopify shows 1000 + number as "#1001")."""
        return self.index + 1

    @property
    def created_at(self) -> datetime:
        return to_datetime(self.created_ts)


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order as it stands at ``as_of`` (the clock time of the request)."""

    order: WorldOrder
    as_of: int
    updated_ts: int
    financial_status: FinancialStatus
    paid_ts: int | None
    cancelled_ts: int | None
    cancel_reason: str | None
    closed_ts: int | None
    fulfillments: tuple[Fulfillment, ...]
    refunds: tuple[Refund, ...]
    shipped: tuple[int, ...]  # per line: units fulfilled
    refunded: tuple[int, ...]  # per line: units refunded (any restock type)
    removed: tuple[int, ...]  # per line: units refunded before shipping (no longer to fulfil)

    @property
    def index(self) -> int:
        return self.order.index

    @property
    def updated_at(self) -> datetime:
        return to_datetime(self.updated_ts)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_ts is not None

    @property
    def closed(self) -> bool:
        return self.closed_ts is not None

    def fulfillable(self, line_index: int) -> int:
        if self.cancelled_ts is not None:
            return 0
        line = self.order.lines[line_index]
        return max(0, line.quantity - self.shipped[line_index] - self.removed[line_index])

    def line_fulfillment_status(self, line_index: int) -> Literal["partial", "fulfilled"] | None:
        shipped = self.shipped[line_index]
        if shipped == 0:
            return None
        return "fulfilled" if self.fulfillable(line_index) == 0 else "partial"

    @property
    def fulfillment_status(self) -> Literal["partial", "fulfilled"] | None:
        """Shopify's order-level value: None (nothing shipped), "partial" or "fulfilled"."""
        if not any(self.shipped):
            return None
        remaining = sum(self.fulfillable(i) for i in range(len(self.order.lines)))
        return "partial" if remaining else "fulfilled"

    @property
    def refunded_amount(self) -> Decimal:
        return sum((refund.amount for refund in self.refunds), ZERO)


_FINANCIAL_STATUSES: tuple[FinancialStatus, ...] = (
    "pending",
    "authorized",
    "paid",
    "partially_refunded",
    "refunded",
    "voided",
)
_CARRIERS = (
    ("UPS", "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums={}"),
    ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={}"),
    ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={}"),
)
_CANCEL_REASONS_PAID = ("customer", "customer", "inventory", "fraud", "other")
_CANCEL_REASONS_UNPAID = ("customer", "declined", "other")
_NOTES = ("Please leave the parcel at the door.", "Gift - no invoice in the box please.", "Call on arrival.")


def _tracking_number(rng: random.Random, carrier: str) -> str:
    if carrier == "UPS":  # 1Z + 6-character shipper number + 2-digit service + 8-digit package
        return f"1Z{rng.getrandbits(24):06X}{rng.randrange(10**10):010d}"
    if carrier == "USPS":
        return f"9400{rng.randrange(10**18):018d}"
    return f"{rng.randrange(10**12):012d}"


def _weighted(rng: random.Random, values: Sequence[T], cumulative: tuple[float, ...]) -> T:
    """``rng.choices(values, cum_weights=cumulative)[0]`` without its per-call overhead."""
    return values[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]


_LINE_COUNTS, _LINE_COUNT_CUMULATIVE = (1, 2, 3, 4), tuple(itertools.accumulate((50, 30, 14, 6)))
_QUANTITIES, _QUANTITY_CUMULATIVE = (1, 2, 3), tuple(itertools.accumulate((75, 20, 5)))


@dataclass(slots=True)
class _Plan:
    """The order's shape before money and people: quantities and a timeline of abstract events."""

    created_ts: int
    quantities: list[int]
    initial_financial: FinancialStatus
    # (at, kind, data): paid -> None; cancelled -> reason; fulfilled -> ((line, qty), ...);
    # refunded -> (refund kind, ((line, qty, restock type), ...)); closed -> None
    events: list[tuple[int, EventKind, object]]


class World:
    """The seeded world. ``start`` defaults to midnight UTC ``DEFAULT_HISTORY`` ago (history to backfill)."""

    def __init__(
        self,
        seed: int = 1,
        *,
        start: datetime | None = None,
        interval: timedelta | float = DEFAULT_INTERVAL,
        clock: Clock | None = None,
        currency: str = "USD",
        customer_pool: int = CUSTOMER_POOL_SIZE,
    ) -> None:
        self.seed = seed
        self.clock = clock or Clock()
        if start is None:
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            start = today - DEFAULT_HISTORY
        if start.tzinfo is None:
            raise ValueError("World start must be timezone-aware")
        self.start = start.astimezone(UTC)
        self.interval_seconds = float(
            interval.total_seconds() if isinstance(interval, timedelta) else interval
        )
        if self.interval_seconds <= 0:
            raise ValueError("interval must be positive")
        self.start_ts = self.start.timestamp()
        # Jitter stays below half an interval, so creation times are non-decreasing in the index.
        self._jitter_span = min(self.interval_seconds * 0.5, 300.0)
        self.currency = currency
        self.customer_pool = customer_pool
        self.catalog = Catalog(seed)
        self.overlay = Overlay()
        self._timeline_cached = lru_cache(maxsize=131_072)(self._compute_timeline)
        self._order_cached = lru_cache(maxsize=8_192)(self._compute_order)
        self._customer_cached = lru_cache(maxsize=customer_pool)(self._compute_customer)
        self._chunk_event_index = lru_cache(maxsize=2_048)(self._compute_chunk_event_index)
        self._skew: Callable[[], float] = lambda: 0.0

    def __repr__(self) -> str:
        return f"World(seed={self.seed}, start={self.start.isoformat()}, interval={self.interval_seconds}s)"

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.interval_seconds)

    def now_ts(self) -> float:
        """The platform's "now": the clock plus the platform's skew (``follow_skew``)."""
        return self.clock.timestamp() + self._skew()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ts(), UTC)

    def follow_skew(self, source: Callable[[], float]) -> None:
        """Read the platform's clock skew (seconds; negative: behind the clock) from ``source`` on every
        reading (a simulator passes its ``Faults.clock_skew_seconds``)."""
        self._skew = source

    # ---------------------------------------------------------------- index arithmetic
    def created_ts(self, index: int) -> int:
        return self.timeline(index).created_ts

    def first_index_created_at_or_after(self, ts: float) -> int:
        """The smallest index whose creation time is >= ``ts`` (O(1): arithmetic plus a step or two)."""
        target = math.ceil(ts)  # creation times are whole seconds
        guess = math.ceil((target - self.start_ts - self._jitter_span) / self.interval_seconds) - 1
        index = max(0, guess)
        while self.created_ts(index) < target:
            index += 1
        return index

    def first_index_created_after(self, ts: float) -> int:
        return self.first_index_created_at_or_after(math.floor(ts) + 1)

    def orders_visible(self, now: datetime | None = None) -> range:
        """Indices of the orders that exist at ``now`` (created at or before it)."""
        now_ts = self._ts(now)
        return range(0, self.first_index_created_after(now_ts))

    def order_count(self, now: datetime | None = None) -> int:
        return len(self.orders_visible(now))

    def created_index_range(self, created_min: float | None, created_max: float | None) -> range:
        lo = 0 if created_min is None else self.first_index_created_at_or_after(created_min)
        if created_max is None:
            raise ValueError("created_max is required (the stream is endless)")
        return range(lo, max(lo, self.first_index_created_after(created_max)))

    def order_count_between(self, a: datetime, b: datetime, now: datetime | None = None) -> int:
        """Orders created in [a, b] that exist at ``now``."""
        now_ts = self._ts(now)
        return len(self.created_index_range(a.timestamp(), min(b.timestamp(), now_ts)))

    def _ts(self, value: datetime | None) -> float:
        if value is None:
            return self.now_ts()
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass aware UTC datetimes")
        return value.timestamp()

    # ---------------------------------------------------------------- orders
    def timeline(self, index: int) -> Timeline:
        natural = self._timeline_cached(index)
        extra = self.overlay.events_for(index)
        if not extra:
            return natural
        return Timeline(
            index=index,
            created_ts=natural.created_ts,
            event_times=tuple(sorted((*natural.event_times, *(e.at for e in extra)))),
            cancelled_ts=natural.cancelled_ts,
            closed_ts=natural.closed_ts,
        )

    def get(self, index: int) -> WorldOrder:
        """Order ``index`` with its whole timeline (future events included)."""
        if index < 0:
            raise IndexError(index)
        return self._order_cached(index)

    def state(self, index: int, now: datetime | float | None = None) -> OrderState | None:
        """The order at ``now``; None when it does not exist yet."""
        now_ts = float(now) if isinstance(now, float | int) else self._ts(now)
        if index < 0 or self.timeline(index).created_ts > now_ts:
            return None
        return _apply_events(self.get(index), self.overlay.events_for(index), now_ts)

    def customer(self, index: int) -> Customer:
        return self._customer_cached(index)

    def updated_between(
        self,
        a: datetime,
        b: datetime,
        now: datetime | None = None,
    ) -> Iterator[OrderState]:
        """States (at ``now``) of the orders whose current updated time falls in [a, b], by index."""
        now_ts = self._ts(now)
        query = OrderQuery(updated_min=a.timestamp(), updated_max=b.timestamp())
        for index in self.scan(query, now_ts):
            state = self.state(index, now_ts)
            if state is not None:
                yield state

    def candidate_range(self, query: OrderQuery, now_ts: float) -> range:
        """Indices that might match ``query`` at ``now_ts`` (before overlay-touched orders are added)."""
        created_max = now_ts if query.created_max is None else min(query.created_max, now_ts)
        if query.updated_max is not None:
            created_max = min(created_max, query.updated_max)
        created_min = query.created_min
        if query.updated_min is not None:
            # Natural events fall within the lifetime of creation, so older orders cannot have moved.
            floor = query.updated_min - MAX_LIFETIME_SECONDS
            created_min = floor if created_min is None else max(created_min, floor)
        candidates = self.created_index_range(created_min, created_max)
        return range(max(candidates.start, query.min_index), min(candidates.stop, query.stop_index))

    def scan(self, query: OrderQuery, now_ts: float, *, reverse: bool = False) -> Iterator[int]:
        """Indices matching ``query`` at ``now_ts``, ascending (or descending), lazily."""
        candidates = self.candidate_range(query, now_ts)
        natural: Iterable[int] = candidates if not reverse else reversed(candidates)
        if query.updated_min is not None and len(candidates) > _CHUNK:
            # Only orders with an event inside the window can have their updated time there.
            natural = self._orders_with_event_between(
                candidates, query.updated_min, query.updated_max, reverse
            )
        touched = [i for i in self.overlay.touched_indices() if query.min_index <= i < query.stop_index]
        for index in _merge_unique(natural, touched, reverse):
            timeline = self.timeline(index)
            if query.matches_timeline(timeline, now_ts) and (
                query.predicate is None or query.predicate(self.state(index, now_ts))
            ):
                yield index

    def _orders_with_event_between(
        self, candidates: range, low: float, high: float | None, reverse: bool
    ) -> Iterator[int]:
        """Indices in ``candidates`` having a natural event (creation included) in [low, high]."""
        first_chunk, last_chunk = candidates.start // _CHUNK, (candidates.stop - 1) // _CHUNK
        chunks = range(first_chunk, last_chunk + 1)
        for chunk in reversed(chunks) if reverse else chunks:
            times, owners = self._chunk_event_index(chunk)
            lo = bisect.bisect_left(times, low)
            hi = len(times) if high is None else bisect.bisect_right(times, high)
            hits = sorted({i for i in owners[lo:hi] if i in candidates}, reverse=reverse)
            yield from hits

    def _compute_chunk_event_index(self, chunk: int) -> tuple[array, array]:
        """Every natural event time of orders [chunk * _CHUNK, (chunk + 1) * _CHUNK), sorted, with owners.

        Built once per chunk (events never change), it turns an updated-time window into a few bisects
        instead of a walk over every order of the preceding ``MAX_ORDER_LIFETIME``.
        """
        # One int per event, time * _CHUNK + offset in the chunk: sorted, they are in (time, index) order
        # without a tuple per event to build, compare and collect.
        first = chunk * _CHUNK
        keys: list[int] = []
        for offset in range(_CHUNK):
            timeline = self._timeline_cached(first + offset)
            keys.append(timeline.created_ts * _CHUNK + offset)
            keys.extend([at * _CHUNK + offset for at in timeline.event_times])
        keys.sort()
        return array("q", [key // _CHUNK for key in keys]), array("q", [first + key % _CHUNK for key in keys])

    def count(self, query: OrderQuery, now_ts: float) -> int:
        plain = query.predicate is None and query.status in (None, "any") and query.updated_min is None
        if plain and query.updated_max is None and not self.overlay.touched_indices():
            return len(self.candidate_range(query, now_ts))  # pure arithmetic, no order generated
        return sum(1 for _ in self.scan(query, now_ts))

    # ---------------------------------------------------------------- generation
    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}:{index}")

    def _draw_plan(self, rng: random.Random, index: int) -> _Plan:
        created_ts = math.floor(
            self.start_ts + index * self.interval_seconds + rng.random() * self._jitter_span
        )
        n_lines = _weighted(rng, _LINE_COUNTS, _LINE_COUNT_CUMULATIVE)
        quantities = [_weighted(rng, _QUANTITIES, _QUANTITY_CUMULATIVE) for _ in range(n_lines)]
        events: list[tuple[int, EventKind, object]] = []
        t = created_ts

        def later(low: int, high: int) -> int:
            nonlocal t
            t += rng.randrange(low, high)
            return t

        roll = rng.random()
        if roll < 0.04:  # pending for good (manual payment never arrived, within the lifetime)
            return _Plan(created_ts, quantities, "pending", events)
        if roll < 0.07:  # pending, then cancelled: payment voided, items back to stock
            at = later(6 * 3600, 40 * 3600)
            events.append((at, "cancelled", rng.choice(_CANCEL_REASONS_UNPAID)))
            events.append(
                (at, "refunded", ("cancel", tuple((i, q, "cancel") for i, q in enumerate(quantities))))
            )
            return _Plan(created_ts, quantities, "pending", events)
        if roll < 0.27:
            initial: FinancialStatus = "pending"
            events.append((later(60, 90 * 60), "paid", None))
        elif roll < 0.35:
            initial = "authorized"  # captured when it ships
        else:
            initial = "paid"
        total_units = sum(quantities)

        if rng.random() < 0.06:  # cancelled before shipping
            at = later(10 * 60, 12 * 3600)
            events.append((at, "cancelled", rng.choice(_CANCEL_REASONS_PAID)))
            events.append(
                (at, "refunded", ("cancel", tuple((i, q, "cancel") for i, q in enumerate(quantities))))
            )
            return _Plan(created_ts, quantities, initial, events)
        if rng.random() < 0.10:  # paid, waiting to ship (backlog)
            return _Plan(created_ts, quantities, initial, events)

        remaining = list(quantities)
        if total_units >= 2 and rng.random() < 0.06:  # one unit out of stock: refunded before shipping
            line = rng.choice([i for i, q in enumerate(remaining) if q > 0])
            remaining[line] -= 1
            events.append((later(10 * 60, 3 * 3600), "refunded", ("pre_ship", ((line, 1, "cancel"),))))

        shippable = list(remaining)  # what will ship in the end, per line
        first_at = later(3600, 30 * 3600)
        if initial == "authorized":
            events.append((first_at, "paid", None))
        live = [i for i, q in enumerate(remaining) if q > 0]
        if sum(remaining) >= 2 and rng.random() < 0.35:  # partial shipment first, the rest later
            if len(live) >= 2:
                first = tuple((i, remaining[i]) for i in live[: rng.randrange(1, len(live))])
            else:
                first = ((live[0], remaining[live[0]] // 2),)
            events.append((first_at, "fulfilled", first))
            for i, q in first:
                remaining[i] -= q
            second = tuple((i, q) for i, q in enumerate(remaining) if q > 0)
            events.append((later(2 * 3600, 20 * 3600), "fulfilled", second))
        else:
            events.append((first_at, "fulfilled", tuple((i, remaining[i]) for i in live)))

        if rng.random() < 0.10:  # a return after delivery
            line = rng.choice(live)
            units = rng.randrange(1, min(2, shippable[line]) + 1)
            restock: RestockType = "return" if rng.random() < 0.7 else "no_restock"
            events.append((later(2 * 3600, 12 * 3600), "refunded", ("return", ((line, units, restock),))))
        if rng.random() < 0.5:  # archived after completion
            events.append((later(3600, 6 * 3600), "closed", None))
        return _Plan(created_ts, quantities, initial, events)

    def _compute_timeline(self, index: int) -> Timeline:
        plan = self._draw_plan(self._rng(index), index)
        cancelled = next((at for at, kind, _ in plan.events if kind == "cancelled"), None)
        closed = next((at for at, kind, _ in plan.events if kind == "closed"), cancelled)
        return Timeline(
            index=index,
            created_ts=plan.created_ts,
            event_times=tuple(sorted(at for at, _, _ in plan.events)),
            cancelled_ts=cancelled,
            closed_ts=closed,  # cancelling an order archives it (Shopify sets closed_at too)
        )

    def _compute_customer(self, index: int) -> Customer:
        rng = random.Random(f"{self.seed}:customer:{index}")
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        address = _address(rng, first, last)
        handle = f"{first}.{last}".lower().replace("'", "").replace("é", "e").replace("í", "i")
        return Customer(
            index=index,
            first_name=first,
            last_name=last,
            email=f"{handle}{index}@example.com",
            phone=_phone(rng, address.country_code) if rng.random() < 0.6 else None,
            accepts_marketing=rng.random() < 0.3,
            created_ts=int(self.start_ts) - 90 * 86400 + index * 3571,
            default_address=address,
        )

    def _compute_order(self, index: int) -> WorldOrder:
        rng = self._rng(index)
        plan = self._draw_plan(rng, index)
        variants = [self.catalog.pick_variant(rng) for _ in plan.quantities]

        customer = self.customer(rng.randrange(self.customer_pool)) if rng.random() < 0.88 else None
        if customer is not None and rng.random() < 0.8:
            shipping_address = customer.default_address
        else:
            first = customer.first_name if customer else rng.choice(_FIRST_NAMES)
            last = customer.last_name if customer else rng.choice(_LAST_NAMES)
            shipping_address = _address(rng, first, last)
        billing_address = (
            shipping_address
            if rng.random() < 0.85
            else _address(rng, shipping_address.first_name, shipping_address.last_name)
        )

        line_totals = [v.price * q for v, q in zip(variants, plan.quantities, strict=True)]
        items_total = sum(line_totals, ZERO)
        discount: DiscountCode | None = None
        discount_roll = rng.random()
        if discount_roll < 0.15:
            discount = DiscountCode("WELCOME10", "percentage", Decimal("10.0"), money(items_total / 10))
        elif discount_roll < 0.25 and items_total >= 20:
            discount = DiscountCode("FIVEOFF", "fixed_amount", Decimal("5.00"), Decimal("5.00"))
        allocations = _allocate(discount.amount if discount else ZERO, line_totals)
        rate = shipping_address.tax_rate
        lines = tuple(
            OrderLine(
                index=i,
                variant=v,
                quantity=q,
                unit_price=v.price,
                discount=allocations[i],
                tax=money((line_totals[i] - allocations[i]) * rate),
            )
            for i, (v, q) in enumerate(zip(variants, plan.quantities, strict=True))
        )
        subtotal = items_total - (discount.amount if discount else ZERO)
        if rng.random() < 0.2:
            shipping = ShippingMethod("Express", "EXPRESS", Decimal("15.00"))
        elif subtotal >= 75:
            shipping = ShippingMethod("Free Shipping", "FREE", ZERO)
        else:
            shipping = ShippingMethod("Standard Shipping", "STANDARD", Decimal("5.90"))

        total_tax = sum((line.tax for line in lines), ZERO)
        order_total = subtotal + shipping.price + total_tax
        events = self._materialise_events(rng, plan, lines, shipping, order_total)
        email = customer.email if customer else (None if rng.random() < 0.5 else f"guest{index}@example.com")
        return WorldOrder(
            index=index,
            seed=self.seed,
            created_ts=plan.created_ts,
            currency=self.currency,
            lines=lines,
            customer=customer,
            email=email,
            phone=customer.phone if customer else None,
            shipping_address=shipping_address,
            billing_address=billing_address,
            discount=discount,
            shipping=shipping,
            tax_rate=rate,
            tax_title=shipping_address.tax_title,
            initial_financial_status=plan.initial_financial,
            gateway="manual" if plan.initial_financial == "pending" else "shopify_payments",
            source_name=rng.choice(("web", "web", "web", "shopify_draft_order", "pos")),
            note=rng.choice(_NOTES) if rng.random() < 0.1 else None,
            tags=rng.choice(("", "", "", "vip", "wholesale", "gift")),
            events=events,
            total_line_items=items_total,
            total_discount=discount.amount if discount else ZERO,
            total_tax=total_tax,
            subtotal=subtotal,
            total=order_total,
            total_grams=sum(line.variant.grams * line.quantity for line in lines),
        )

    def _materialise_events(
        self,
        rng: random.Random,
        plan: _Plan,
        lines: tuple[OrderLine, ...],
        shipping: ShippingMethod,
        order_total: Decimal,
    ) -> tuple[Event, ...]:
        events: list[Event] = []
        fulfillment_seq = refund_seq = 0
        paid = plan.initial_financial == "paid"
        for at, kind, data in plan.events:
            if kind == "paid":
                paid = True
                events.append(Event(at, "paid"))
            elif kind == "cancelled":
                events.append(Event(at, "cancelled", cancel_reason=str(data)))
            elif kind == "closed":
                events.append(Event(at, "closed"))
            elif kind == "fulfilled":
                fulfillment_seq += 1
                carrier, url = rng.choice(_CARRIERS)
                number = _tracking_number(rng, carrier)
                fulfillment = Fulfillment(
                    seq=fulfillment_seq,
                    at=at,
                    lines=data,  # type: ignore[arg-type]
                    tracking_company=carrier,
                    tracking_number=number,
                    tracking_url=url.format(number),
                )
                events.append(Event(at, "fulfilled", fulfillment=fulfillment))
            elif kind == "refunded":
                refund_seq += 1
                refund_kind, refund_lines = data  # type: ignore[misc]
                rendered = tuple(
                    RefundLine(
                        line_index=i,
                        quantity=q,
                        restock_type=restock,
                        subtotal=money((lines[i].line_total - lines[i].discount) * q / lines[i].quantity),
                        tax=money(lines[i].tax * q / lines[i].quantity),
                    )
                    for i, q, restock in refund_lines
                )
                shipping_back = shipping.price if refund_kind == "cancel" else ZERO
                if not paid:
                    amount = ZERO  # nothing was captured: the cancel voids, no refund transaction
                elif refund_kind == "cancel":
                    amount = order_total
                else:
                    amount = sum((r.subtotal + r.tax for r in rendered), ZERO)
                note = {
                    "cancel": "Order canceled",
                    "pre_ship": "Item out of stock",
                    "return": "Customer return",
                }
                events.append(
                    Event(
                        at,
                        "refunded",
                        refund=Refund(refund_seq, at, rendered, shipping_back, amount, note[refund_kind]),
                    )
                )
        return tuple(events)


def _allocate(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split ``amount`` over lines in proportion to ``weights``; the last line takes the rounding rest."""
    total = sum(weights, ZERO)
    if amount == 0 or total == 0:
        return [ZERO for _ in weights]
    shares = [money(amount * w / total) for w in weights[:-1]]
    return [*shares, amount - sum(shares, ZERO)]


def _apply_events(order: WorldOrder, extra: tuple[Event, ...], now_ts: float) -> OrderState:
    """Fold the order's events up to ``now_ts`` (natural ones, then the hub's pushes) into a state."""
    events = sorted((*order.events, *extra), key=lambda e: e.at) if extra else order.events
    n = len(order.lines)
    shipped, refunded, removed = [0] * n, [0] * n, [0] * n
    status: FinancialStatus = order.initial_financial_status
    paid_ts = order.created_ts if status == "paid" else None
    updated = order.created_ts
    cancelled_ts: int | None = None
    cancel_reason: str | None = None
    closed_ts: int | None = None
    fulfillments: list[Fulfillment] = []
    refunds: list[Refund] = []
    for event in events:
        if event.at > now_ts:
            break
        updated = max(updated, event.at)
        if event.kind == "paid":
            if status in ("pending", "authorized"):
                status, paid_ts = "paid", event.at
        elif event.kind == "cancelled":
            cancelled_ts, cancel_reason = event.at, event.cancel_reason
            closed_ts = closed_ts or event.at
            if status in ("pending", "authorized"):
                status = "voided"
        elif event.kind == "closed":
            closed_ts = event.at
        elif event.kind == "fulfilled" and event.fulfillment is not None:
            # Whoever ships first wins: a natural shipment never re-ships what the hub already pushed.
            kept = []
            for line_index, qty in event.fulfillment.lines:
                open_qty = order.lines[line_index].quantity - shipped[line_index] - removed[line_index]
                qty = min(qty, open_qty)
                if qty > 0 and cancelled_ts is None:
                    shipped[line_index] += qty
                    kept.append((line_index, qty))
            if kept:
                fulfillments.append(
                    Fulfillment(
                        seq=len(fulfillments) + 1,
                        at=event.fulfillment.at,
                        lines=tuple(kept),
                        tracking_company=event.fulfillment.tracking_company,
                        tracking_number=event.fulfillment.tracking_number,
                        tracking_url=event.fulfillment.tracking_url,
                        pushed=event.fulfillment.pushed,
                    )
                )
        elif event.kind == "refunded" and event.refund is not None:
            refunds.append(event.refund)
            for line in event.refund.lines:
                refunded[line.line_index] += line.quantity
                if line.restock_type == "cancel":
                    removed[line.line_index] += line.quantity
            if event.refund.amount > 0:
                total_refunded = sum((r.amount for r in refunds), ZERO)
                status = "refunded" if total_refunded >= order.total else "partially_refunded"
    return OrderState(
        order=order,
        as_of=int(now_ts),
        updated_ts=updated,
        financial_status=status,
        paid_ts=paid_ts,
        cancelled_ts=cancelled_ts,
        cancel_reason=cancel_reason,
        closed_ts=closed_ts,
        fulfillments=tuple(fulfillments),
        refunds=tuple(refunds),
        shipped=tuple(shipped),
        refunded=tuple(refunded),
        removed=tuple(removed),
    )


def _merge_unique(ordered: Iterable[int], extra: list[int], reverse: bool) -> Iterator[int]:
    """Merge an ordered stream of indices with a few extra ones, in the same order, without repeats."""
    merged = heapq.merge(ordered, sorted(extra, reverse=reverse), reverse=reverse) if extra else ordered
    previous = None
    for index in merged:
        if index != previous:
            yield index
            previous = index


# --------------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------------

OrderStatusFilter = Literal["open", "closed", "cancelled", "any"]


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """A platform-neutral order filter; times are POSIX seconds (inclusive bounds)."""

    status: OrderStatusFilter | None = None  # None = any
    created_min: float | None = None
    created_max: float | None = None
    updated_min: float | None = None
    updated_max: float | None = None
    min_index: int = 0  # inclusive
    stop_index: int = 2**62  # exclusive
    predicate: Callable[[OrderState | None], bool] | None = None  # needs the full state (slower)

    def matches_timeline(self, timeline: Timeline, now_ts: float) -> bool:
        updated = timeline.updated_ts_at(now_ts)
        if updated is None:
            return False
        created = timeline.created_ts
        if self.created_min is not None and created < self.created_min:
            return False
        if self.created_max is not None and created > self.created_max:
            return False
        if self.updated_min is not None and updated < self.updated_min:
            return False
        if self.updated_max is not None and updated > self.updated_max:
            return False
        if self.status == "open":
            return not timeline.is_closed_at(now_ts) and not timeline.is_cancelled_at(now_ts)
        if self.status == "closed":
            return timeline.is_closed_at(now_ts)
        if self.status == "cancelled":
            return timeline.is_cancelled_at(now_ts)
        return True


# --------------------------------------------------------------------------------------------------
# What the hub pushed back
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockSet:
    platform: str
    variant_index: int
    location_id: int
    available: int
    at: int


@dataclass
class Overlay:
    """Mutations the hub made through a simulator's API, merged into the world's order states.

    Fulfilments become extra order events (they bump ``updated_at``); stock sets keep the latest level per
    (platform, variant, location) plus a history for tests and benchmarks.
    """

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _order_events: dict[int, tuple[Event, ...]] = field(default_factory=dict)
    stock_levels: dict[tuple[str, int, int], int] = field(default_factory=dict)
    stock_history: list[StockSet] = field(default_factory=list)

    def events_for(self, index: int) -> tuple[Event, ...]:
        if not self._order_events:
            return ()
        return self._order_events.get(index, ())

    def touched_indices(self) -> list[int]:
        if not self._order_events:
            return []
        with self._lock:
            return sorted(self._order_events)

    def add_order_event(self, index: int, event: Event) -> None:
        with self._lock:
            self._order_events[index] = (*self._order_events.get(index, ()), event)

    def record_fulfillment(
        self,
        index: int,
        at: int,
        lines: tuple[tuple[int, int], ...],
        tracking_company: str,
        tracking_number: str,
        tracking_url: str,
    ) -> Fulfillment:
        fulfillment = Fulfillment(
            seq=0,  # renumbered when the state is folded
            at=at,
            lines=lines,
            tracking_company=tracking_company,
            tracking_number=tracking_number,
            tracking_url=tracking_url,
            pushed=True,
        )
        self.add_order_event(index, Event(at, "fulfilled", fulfillment=fulfillment))
        return fulfillment

    def record_stock_set(
        self, platform: str, variant_index: int, location_id: int, available: int, at: int
    ) -> None:
        with self._lock:
            self.stock_levels[(platform, variant_index, location_id)] = available
            self.stock_history.append(StockSet(platform, variant_index, location_id, available, at))

    def summary(self) -> dict[str, int]:
        with self._lock:
            return {
                "orders_touched": len(self._order_events),
                "pushed_fulfillments": sum(len(events) for events in self._order_events.values()),
                "stock_sets": len(self.stock_history),
            }
