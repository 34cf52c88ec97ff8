"""What every part of the Shopify sandbox shares: the API versions, id bases and the shop's location,
the token's access, the carriers Shopify knows, the shop's clock, the JSON text fragments, JSON
answers and 422/400 refusals."""

from __future__ import annotations

import json
import json.encoder
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import Response

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


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status_code=status,
        media_type=JSON_MEDIA_TYPE,
        headers=headers,
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
