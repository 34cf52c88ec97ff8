"""A WooCommerce REST API v3 simulator (``/wp-json/wc/v3``) over the sandbox world (platform-contracts.md §2).

What it reproduces, quirks included:
- Auth: HTTP Basic with the consumer key as user name and the consumer secret as password, or (when a server
  strips the Authorization header) ``?consumer_key=..&consumer_secret=..``. A wrong key or secret is a 401
  ``{"code":"woocommerce_rest_authentication_error","message":"Consumer key is invalid.",
  "data":{"status":401}}`` ("Consumer secret is invalid." for the secret); no credentials at all is
  WordPress's 401 ``woocommerce_rest_cannot_view`` "Sorry, you cannot list resources.".
- ``GET /wp-json/wc/v3/orders`` with ``page`` (default 1), ``per_page`` (default 10, 1..100: anything else is
  WP core's 400 ``rest_invalid_param``), ``offset``, ``after``/``before`` (created) and
  ``modified_after``/``modified_before`` (ISO-8601; both bounds *exclusive*, as ``WP_Date_Query`` with
  ``inclusive`` false), ``dates_are_gmt`` (without it, offset-less times are read as the *site's local time*),
  ``order`` (asc|desc, default desc), ``orderby`` (date|id|include|title|slug, default date), ``status``
  (any or a list; default any, which like WordPress's ``any`` leaves ``trash`` out), ``include``/``exclude``.
  Sorting is by (creation date, id), so the order of a listing never changes while an order is modified.
- ``X-WP-Total`` and ``X-WP-TotalPages`` on every listing, and a ``Link`` header with ``first``/``prev``/
  ``next``/``last`` URLs carrying the request's own query (credentials left out). A page past the end is
  ``[]``.
- ``GET /wp-json/wc/v3/orders/{id}`` (404 ``woocommerce_rest_shop_order_invalid_id`` "Invalid ID.");
  unknown routes are WordPress's 404 ``rest_no_route``.
- Order JSON shaped like the docs' example orders 727/723: ``date_created``/``date_modified``/``date_paid``/
  ``date_completed`` as naive *site-local* times next to their ``_gmt`` (UTC) twins; totals as 2-decimal
  strings; ``line_items[].price`` as a JSON *number* (the line's discounted total / quantity, integral values
  without a fraction as in the docs); ``sku`` "" where the merchant left it blank; ``variation_id`` 0 for
  simple products; ``refunds[] {id, reason, total}`` with a *negative* total; ``customer_id`` 0 for guests.
- Status from the world's state: pending (awaiting payment), on-hold (payment authorized, not captured),
  processing (paid, not shipped in full: core WooCommerce has no partial shipment), completed (everything
  shipped), refunded (the whole amount refunded: WooCommerce moves a fully refunded order there), cancelled,
  failed (an unpaid order whose payment was declined). ``trash`` never shows in ``status=any``.
- Money: the world's amounts in its currency (USD by default). Line ids, refund ids and order ids are
  WordPress-style small integers.
- No rate limiting in WooCommerce core: ``Faults.rate_limit_storm`` injects a *host-level* 429 (an HTML page
  from the web server or WAF, with ``Retry-After``); ``server_error_rate`` a WordPress critical-error 500
  or an nginx 502/503 page; plus latency, truncated bodies and malformed orders (a line quantity as text).
- ``/_sandbox/*``: faults, clock, state and catalog (sandbox.admin).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.admin import RequestStats, add_admin_routes, json_response
from sandbox.faults import Faults
from sandbox.world import Address, OrderLine, OrderQuery, OrderState, World, money

PLATFORM = "woocommerce"
API_PREFIX = "/wp-json/wc/v3"
# Sandbox test credentials (not secrets): real runs pass their own. The key is the connection's login.
SANDBOX_LOGIN = "ck_sandbox0000000000000000000000000000000000"
DEFAULT_CONSUMER_SECRET = "cs_sandbox0000000000000000000000000000000000"
DEFAULT_SITE_TIMEZONE = "America/Chicago"
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
RETRY_AFTER_SECONDS = "1"
WC_VERSION = "9.4.2"

# WordPress post ids: orders, their refunds and line items come from small sequences.
ORDER_ID_BASE = 1_000
ORDER_ID_STRIDE = 4  # an order id, then room for up to three refund ids
LINE_ITEM_ID_BASE = 50_000
LINE_ITEM_STRIDE = 8  # lines, then a shipping line, a tax line and a coupon line
CUSTOMER_ID_BASE = 2
TAX_RATE_ID_BASE = 70

STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash")
ORDERBY = ("date", "id", "include", "title", "slug")


def _error(code: str, message: str, status: int, **data: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {"status": status, **data}}


CANNOT_VIEW = _error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
BAD_KEY = _error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
BAD_SECRET = _error("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401)
NO_ROUTE = _error("rest_no_route", "No route was found matching the URL and request method.", 404)
INVALID_ID = _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
CRITICAL_ERROR = {
    "code": "internal_server_error",
    "message": "<p>There has been a critical error on this website.</p>"
    '<p><a href="https://wordpress.org/documentation/article/faq-troubleshooting/">'
    "Learn more about troubleshooting WordPress.</a></p>",
    "data": {"status": 500},
    "additional_errors": [],
}
HOST_THROTTLE_PAGE = (
    "<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1>"
    "</center><hr><center>nginx</center></body></html>"
)
_ISO_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE
)


class BadRequest(Exception):
    """WordPress's 400 ``rest_invalid_param`` naming each bad parameter."""

    def __init__(self, params: dict[str, str]) -> None:
        super().__init__(", ".join(params))
        self.params = params

    def body(self) -> dict[str, Any]:
        return _error(
            "rest_invalid_param",
            f"Invalid parameter(s): {', '.join(self.params)}",
            400,
            params=self.params,
            details={
                name: {"code": "rest_invalid_param", "message": msg} for name, msg in self.params.items()
            },
        )


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def _price_number(value: Decimal) -> int | float:
    """``line_items[].price``: a JSON number (PHP float), written without a fraction when it is whole."""
    return int(value) if value == value.to_integral_value() else float(value)


class SiteTime:
    """Times as WooCommerce writes them: naive site-local ``date_*`` and naive UTC ``date_*_gmt``."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def local(self, ts: int | None) -> str | None:
        if ts is None:
            return None
        return datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%dT%H:%M:%S")

    @staticmethod
    def gmt(ts: int | None) -> str | None:
        if ts is None:
            return None
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def wc_status(state: OrderState) -> str:
    """The WooCommerce status of a world order state (see the module docstring)."""
    if state.cancelled:
        if state.financial_status == "refunded":
            return "refunded"
        if state.financial_status == "voided" and state.cancel_reason == "declined":
            return "failed"
        return "cancelled"
    if state.financial_status == "refunded":
        return "refunded"
    if state.fulfillment_status == "fulfilled":
        return "completed"
    if state.financial_status == "pending":
        return "pending"
    if state.financial_status == "authorized":
        return "on-hold"
    return "processing"


class WooRenderer:
    """World states -> WooCommerce order JSON; world indices <-> order ids."""

    def __init__(
        self, world: World, *, site_timezone: str = DEFAULT_SITE_TIMEZONE, base_url: str = ""
    ) -> None:
        self.world = world
        self.time = SiteTime(site_timezone)
        self.site_timezone = site_timezone
        self.base_url = base_url or "https://shop.example.com"

    # ---------------------------------------------------------------- ids
    def order_id(self, index: int) -> int:
        return ORDER_ID_BASE + index * ORDER_ID_STRIDE

    def index_of(self, order_id: int) -> int | None:
        offset = order_id - ORDER_ID_BASE
        if offset < 0 or offset % ORDER_ID_STRIDE:
            return None
        return offset // ORDER_ID_STRIDE

    def line_item_id(self, index: int, line_index: int) -> int:
        return LINE_ITEM_ID_BASE + index * LINE_ITEM_STRIDE + line_index

    # ---------------------------------------------------------------- pieces
    def _address(
        self, address: Address, *, email: str | None = None, billing: bool = False
    ) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "first_name": address.first_name,
            "last_name": address.last_name,
            "company": address.company or "",
            "address_1": address.address1,
            "address_2": address.address2,
            "city": address.city,
            "state": address.province_code,
            "postcode": address.zip,
            "country": address.country_code,
        }
        if billing:
            rendered["email"] = email or ""
        rendered["phone"] = address.phone or ""  # shipping.phone exists since WC 5.6
        return rendered

    def _line_item(self, state: OrderState, line: OrderLine, tax_rate_id: int) -> dict[str, Any]:
        variant = line.variant
        listing = variant.listing(PLATFORM)
        is_variation = variant.variant_title is not None
        subtotal = line.line_total
        total = line.line_total - line.discount
        subtotal_tax = money(subtotal * state.order.tax_rate)
        taxes = (
            []
            if state.order.tax_rate == 0
            else [{"id": tax_rate_id, "total": _amount(line.tax), "subtotal": _amount(subtotal_tax)}]
        )
        meta_data: list[dict[str, Any]] = []
        if is_variation:
            attribute = "pa_size" if "/" not in (variant.variant_title or "") else "pa_color-size"
            meta_data.append(
                {
                    "id": self.line_item_id(state.index, line.index) * 10 + 1,
                    "key": attribute,
                    "value": (variant.variant_title or "").lower().replace(" / ", "-").replace(" ", "-"),
                    "display_key": "Size" if attribute == "pa_size" else "Color / Size",
                    "display_value": variant.variant_title,
                }
            )
        return {
            "id": self.line_item_id(state.index, line.index),
            "name": variant.title,
            "product_id": listing.product_id,
            "variation_id": listing.variant_id if is_variation else 0,
            "quantity": line.quantity,
            "tax_class": "",
            "subtotal": _amount(subtotal),
            "subtotal_tax": _amount(subtotal_tax),
            "total": _amount(total),
            "total_tax": _amount(line.tax),
            "taxes": taxes,
            "meta_data": meta_data,
            "sku": listing.sku,
            "price": _price_number(total / line.quantity),
            "image": {
                "id": listing.product_id + 1,
                "src": f"{self.base_url}/wp-content/uploads/{variant.sku}.jpg",
            },
            "parent_name": variant.product_title if is_variation else None,
        }

    def render(self, state: OrderState) -> dict[str, Any]:
        order = state.order
        index = order.index
        order_id = self.order_id(index)
        status = wc_status(state)
        customer = order.customer
        gateway_paid = order.gateway != "manual"
        tax_rate_id = TAX_RATE_ID_BASE + sum(map(ord, order.tax_title)) % 50
        completed_ts = (
            max((f.at for f in state.fulfillments), default=None) if status == "completed" else None
        )
        if status in ("refunded", "cancelled") and state.fulfillment_status == "fulfilled":
            completed_ts = max(f.at for f in state.fulfillments)
        lines = [self._line_item(state, line, tax_rate_id) for line in order.lines]
        base = self.base_url.rstrip("/")
        refunds = [
            {
                "id": order_id + refund.seq,
                "reason": refund.note,
                "total": "-" + _amount(refund.amount),
            }
            for refund in reversed(state.refunds)  # newest first, as WooCommerce lists them
            if refund.amount > 0 and refund.seq < ORDER_ID_STRIDE
        ]
        line_base = self.line_item_id(index, 0)
        place = order.shipping_address
        tax_lines = (
            []
            if order.tax_rate == 0
            else [
                {
                    "id": line_base + 5,
                    "rate_code": f"{place.country_code}-{place.province_code}-{order.tax_title.upper()}-1",
                    "rate_id": tax_rate_id,
                    "label": order.tax_title,
                    "compound": False,
                    "tax_total": _amount(order.total_tax),
                    "shipping_tax_total": "0.00",
                    "rate_percent": float(order.tax_rate * 100),
                    "meta_data": [],
                }
            ]
        )
        transaction_id = ""
        if gateway_paid and state.paid_ts is not None:
            digest = hashlib.sha1(str(order_id).encode(), usedforsecurity=False).hexdigest()
            transaction_id = f"ch_{digest[:24]}"
        shipping_method = {"FREE": "free_shipping", "EXPRESS": "flat_rate", "STANDARD": "flat_rate"}
        payload: dict[str, Any] = {
            "id": order_id,
            "parent_id": 0,
            "status": status,
            "currency": order.currency,
            "version": WC_VERSION,
            "prices_include_tax": False,
            "date_created": self.time.local(order.created_ts),
            "date_modified": self.time.local(state.updated_ts),
            "discount_total": _amount(order.total_discount),
            "discount_tax": "0.00",
            "shipping_total": _amount(order.shipping.price),
            "shipping_tax": "0.00",
            "cart_tax": _amount(order.total_tax),
            "total": _amount(order.total),
            "total_tax": _amount(order.total_tax),
            "customer_id": CUSTOMER_ID_BASE + customer.index if customer else 0,
            "order_key": "wc_order_"
            + hashlib.md5(f"{self.world.seed}:{index}".encode(), usedforsecurity=False).hexdigest()[:13],
            "billing": self._address(order.billing_address, email=order.email, billing=True),
            "shipping": self._address(order.shipping_address),
            "payment_method": "stripe" if gateway_paid else "bacs",
            "payment_method_title": "Credit Card (Stripe)" if gateway_paid else "Direct bank transfer",
            "transaction_id": transaction_id,
            "customer_ip_address": f"203.0.113.{index % 250 + 1}",
            "customer_user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "created_via": "admin" if order.source_name == "shopify_draft_order" else "checkout",
            "customer_note": order.note or "",
            "date_completed": self.time.local(completed_ts),
            "date_paid": self.time.local(state.paid_ts),
            "cart_hash": hashlib.md5(f"cart:{index}".encode(), usedforsecurity=False).hexdigest(),
            "number": str(order_id),
            "meta_data": [],
            "line_items": lines,
            "tax_lines": tax_lines,
            "shipping_lines": [
                {
                    "id": line_base + 4,
                    "method_title": order.shipping.title,
                    "method_id": shipping_method.get(order.shipping.code, "flat_rate"),
                    "instance_id": "1" if order.shipping.code == "FREE" else "2",
                    "total": _amount(order.shipping.price),
                    "total_tax": "0.00",
                    "taxes": [],
                    "meta_data": [],
                }
            ],
            "fee_lines": [],
            "coupon_lines": []
            if order.discount is None
            else [
                {
                    "id": line_base + 6,
                    "code": order.discount.code.lower(),  # WooCommerce stores coupon codes lower-cased
                    "discount": _amount(order.discount.amount),
                    "discount_tax": "0.00",
                    "meta_data": [],
                }
            ],
            "refunds": refunds,
            "payment_url": f"{base}/checkout/order-pay/{order_id}/",
            "is_editable": status in ("pending", "on-hold"),
            "needs_payment": status in ("pending", "failed"),
            "needs_processing": True,
            "date_created_gmt": self.time.gmt(order.created_ts),
            "date_modified_gmt": self.time.gmt(state.updated_ts),
            "date_completed_gmt": self.time.gmt(completed_ts),
            "date_paid_gmt": self.time.gmt(state.paid_ts),
            "currency_symbol": "$" if order.currency == "USD" else order.currency,
            "_links": {
                "self": [{"href": f"{base}{API_PREFIX}/orders/{order_id}"}],
                "collection": [{"href": f"{base}{API_PREFIX}/orders"}],
                **(
                    {
                        "customer": [
                            {"href": f"{base}{API_PREFIX}/customers/{CUSTOMER_ID_BASE + customer.index}"}
                        ]
                    }
                    if customer
                    else {}
                ),
            },
        }
        return payload


def render_order(faults: Faults, renderer: WooRenderer, state: OrderState) -> dict[str, Any]:
    """The order as served, broken the way the fault profile says (a line quantity as text)."""
    payload = renderer.render(state)
    if faults.order_is_malformed(state.index):
        for line in payload["line_items"][:1]:
            line["quantity"] = f"{line['quantity']} pcs"
    return payload


# --------------------------------------------------------------------------------------------------
# Request parsing (WordPress REST argument validation)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    page: int
    per_page: int
    offset: int | None
    descending: bool
    statuses: frozenset[str] | None  # None: any
    created_after: float | None
    created_before: float | None
    modified_after: float | None
    modified_before: float | None
    include: frozenset[int] | None
    exclude: frozenset[int]


def _integer(name: str, raw: str, minimum: int, maximum: int | None = None) -> int:
    if not re.fullmatch(r"-?\d{1,9}", raw.strip()):
        raise BadRequest({name: f"{name} is not of type integer."})
    value = int(raw)
    if maximum is not None and not minimum <= value <= maximum:
        raise BadRequest({name: f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)"})
    if value < minimum:
        raise BadRequest({name: f"{name} must be greater than or equal to {minimum}"})
    return value


def _boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false", ""):
        return False
    raise BadRequest({name: f"{name} is not of type boolean."})


def _list_param(request: Request, name: str) -> list[str]:
    """WordPress arrays: ``status=a,b``, ``status[]=a&status[]=b`` or ``status[0]=a``."""
    values: list[str] = []
    for key, value in request.query_params.multi_items():
        if key == name or key == f"{name}[]" or re.fullmatch(rf"{re.escape(name)}\[\d+\]", key):
            values.extend(part.strip() for part in value.split(",") if part.strip())
    return values


def parse_time(name: str, raw: str, *, gmt: bool, site_zone: ZoneInfo) -> float:
    """A date-time parameter: with an offset it is that instant; without, UTC when ``dates_are_gmt`` is
    true, else the site's local time (the WooCommerce behaviour that makes offset-less calls drift)."""
    match = _ISO_DATE_TIME.fullmatch(raw.strip())
    if not match:
        raise BadRequest({name: "Invalid date."})
    date, clock, fraction, zone = match.groups()
    try:
        naive = datetime.fromisoformat(f"{date}T{clock}{fraction or ''}")
    except ValueError:
        raise BadRequest({name: "Invalid date."}) from None
    if zone:
        offset = "+00:00" if zone.upper() == "Z" else zone
        return datetime.fromisoformat(f"{date}T{clock}{fraction or ''}{offset}").timestamp()
    return naive.replace(tzinfo=UTC if gmt else site_zone).timestamp()


def parse_listing(request: Request, renderer: WooRenderer) -> Listing:
    params = request.query_params
    page = _integer("page", params["page"], 1) if "page" in params else 1
    per_page = (
        _integer("per_page", params["per_page"], 1, MAX_PER_PAGE)
        if "per_page" in params
        else DEFAULT_PER_PAGE
    )
    offset = _integer("offset", params["offset"], 0) if "offset" in params else None
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest({"order": "order is not one of asc and desc."})
    orderby = params.get("orderby", "date")
    if orderby not in ORDERBY:
        raise BadRequest({"orderby": f"orderby is not one of {', '.join(ORDERBY[:-1])} and {ORDERBY[-1]}."})
    statuses = _list_param(request, "status") or ["any"]
    for position, status in enumerate(statuses):
        if status != "any" and status not in STATUSES:
            allowed = ", ".join(("any", *STATUSES[:-1]))
            raise BadRequest({"status": f"status[{position}] is not one of {allowed} and {STATUSES[-1]}."})
    gmt = _boolean("dates_are_gmt", params["dates_are_gmt"]) if "dates_are_gmt" in params else False
    zone = renderer.time.zone
    times = {
        name: parse_time(name, params[name], gmt=gmt, site_zone=zone)
        for name in ("after", "before", "modified_after", "modified_before")
        if name in params
    }

    def ids(name: str) -> frozenset[int]:
        found = set()
        for value in _list_param(request, name):
            if not value.isdigit():
                raise BadRequest({name: f"{name}[0] is not of type integer."})
            index = renderer.index_of(int(value))
            if index is not None:
                found.add(index)
        return frozenset(found)

    return Listing(
        page=page,
        per_page=per_page,
        offset=offset,
        descending=order == "desc",
        statuses=None if "any" in statuses else frozenset(statuses),
        created_after=times.get("after"),
        created_before=times.get("before"),
        modified_after=times.get("modified_after"),
        modified_before=times.get("modified_before"),
        include=ids("include") if _list_param(request, "include") else None,
        exclude=ids("exclude"),
    )


def matching_indices(world: World, listing: Listing, now_ts: float) -> list[int]:
    """World indices of the listing, ascending by (creation date, id): stable while orders change."""

    # WP_Date_Query bounds are exclusive; the world's are inclusive, in whole seconds.
    def above(ts: float | None) -> float | None:
        return None if ts is None else float(math.floor(ts) + 1)

    def below(ts: float | None) -> float | None:
        return None if ts is None else float(math.ceil(ts) - 1)

    query = OrderQuery(
        created_min=above(listing.created_after),
        created_max=below(listing.created_before),
        updated_min=above(listing.modified_after),
        updated_max=below(listing.modified_before),
    )
    if listing.include is not None:
        candidates: Iterator[int] = (
            i for i in sorted(listing.include) if query.matches_timeline(world.timeline(i), now_ts)
        )
    else:
        candidates = world.scan(query, now_ts)
    found = []
    for index in candidates:
        if index in listing.exclude:
            continue
        if listing.statuses is not None:
            state = world.state(index, now_ts)
            if state is None or wc_status(state) not in listing.statuses:
                continue
        found.append(index)
    return found


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password
    key, secret = request.query_params.get("consumer_key"), request.query_params.get("consumer_secret")
    if key is not None or secret is not None:
        return key or "", secret or ""
    return None


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    consumer_key: str = SANDBOX_LOGIN,
    site_timezone: str = DEFAULT_SITE_TIMEZONE,
) -> FastAPI:
    """The WooCommerce simulator over ``world``; ``access_token`` is the consumer secret it accepts."""
    if not access_token or not consumer_key:
        raise ValueError("the consumer key and secret must not be empty")
    renderer = WooRenderer(world, site_timezone=site_timezone)
    stats = RequestStats("api_requests", "throttled", "unauthorized", "injected_errors")
    count = stats.count

    app = FastAPI(title="ChannelHub WooCommerce sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer

    @app.middleware("http")
    async def wordpress(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if not request.url.path.startswith("/wp-json/"):
            return await call_next(request)
        count("api_requests")
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        # The host sits in front of WordPress: its throttling and gateway errors come before any auth.
        if faults.roll(faults.rate_limit_storm):
            count("throttled")
            return Response(
                HOST_THROTTLE_PAGE, 429, headers={"Retry-After": RETRY_AFTER_SECONDS}, media_type="text/html"
            )
        if faults.roll(faults.server_error_rate):
            count("injected_errors")
            status = faults.choose((500, 502, 503))
            if status == 500:
                return json_response(CRITICAL_ERROR, 500)
            title = "502 Bad Gateway" if status == 502 else "503 Service Temporarily Unavailable"
            page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
            page += "</body></html>"
            return Response(page, status, media_type="text/html")
        supplied = _credentials(request)
        if supplied is None:
            count("unauthorized")
            return json_response(CANNOT_VIEW, 401)
        key, secret = supplied
        if not hmac.compare_digest(key.encode(), consumer_key.encode()):
            count("unauthorized")
            return json_response(BAD_KEY, 401)
        if not hmac.compare_digest(secret.encode(), access_token.encode()):
            count("unauthorized")
            return json_response(BAD_SECRET, 401)
        response = await call_next(request)
        if response.status_code == 200 and faults.roll(faults.truncated_body_rate):
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            kept = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            return Response(body[: max(1, len(body) // 2)], 200, headers=kept)
        return response

    def link_header(request: Request, page: int, total_pages: int) -> str:
        query = [
            (k, v)
            for k, v in request.query_params.multi_items()
            if k not in ("page", "consumer_key", "consumer_secret")
        ]
        base = str(request.base_url).rstrip("/") + request.url.path

        def url(number: int) -> str:
            return f"<{base}?{urlencode([*query, ('page', str(number))])}>"

        links = []
        if page > 1:
            links.append(f'{url(min(page - 1, max(total_pages, 1)))}; rel="prev"')
        if page < total_pages:
            links.append(f'{url(page + 1)}; rel="next"')
        links.append(f'{url(1)}; rel="first"')
        links.append(f'{url(max(total_pages, 1))}; rel="last"')
        return ", ".join(links)

    @app.get(API_PREFIX + "/orders")
    def list_orders(request: Request) -> Response:
        try:
            listing = parse_listing(request, renderer)
        except BadRequest as error:
            return json_response(error.body(), 400)
        now_ts = world.now_ts()
        indices = matching_indices(world, listing, now_ts)
        if listing.descending:
            indices.reverse()
        total = len(indices)
        start = listing.offset if listing.offset is not None else (listing.page - 1) * listing.per_page
        total_pages = math.ceil(total / listing.per_page)
        orders = []
        for index in indices[start : start + listing.per_page]:
            state = world.state(index, now_ts)
            if state is not None:
                orders.append(render_order(faults, renderer, state))
        headers = {
            "X-WP-Total": str(total),
            "X-WP-TotalPages": str(total_pages),
            "Link": link_header(request, listing.page, total_pages),
        }
        return json_response(orders, 200, headers)

    @app.get(API_PREFIX + "/orders/{order_ref}")
    def get_order(order_ref: str) -> Response:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        state = world.state(index, world.now_ts()) if index is not None else None
        if state is None:
            return json_response(INVALID_ID, 404)
        return json_response(render_order(faults, renderer, state))

    @app.api_route("/wp-json/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown_route(rest: str) -> Response:
        return json_response(NO_ROUTE, 404)

    add_admin_routes(
        app,
        platform=PLATFORM,
        world=world,
        faults=faults,
        stats=stats,
        state_extra=lambda: {
            "api": API_PREFIX,
            "site_timezone": site_timezone,
            "consumer_key": consumer_key,
            "max_per_page": MAX_PER_PAGE,
        },
    )
    return app
