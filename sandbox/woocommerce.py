"""A WooCommerce REST API v3 simulator (``/wp-json/wc/v3``) over the sandbox world (docs/platform-notes.md,
WooCommerce, has the sources).

What it reproduces, quirks included:
- Auth exactly as ``WC_REST_Authentication`` (``WooAuthentication``). Over TLS (``run_sandbox(..., tls=True)``
  or ``python -m sandbox woocommerce --tls``; told by the transport, ``scope["scheme"]``, as ``is_ssl()``)
  HTTP Basic with the consumer key as user name and the consumer secret as password, or
  ``?consumer_key=..&consumer_secret=..``: an unknown key there is no error (nothing authenticated), a wrong
  secret 401 "Consumer secret is invalid.". Then, and over plain HTTP only this, OAuth 1.0a one-legged from
  the query string or an ``Authorization: OAuth`` header, checked in WooCommerce's order with its words:
  some but not all of the five ``oauth_*`` parameters are 401
  ``woocommerce_rest_authentication_missing_parameter`` "Missing OAuth parameter(s) ..."; the rest are 401
  ``woocommerce_rest_authentication_error``: "Consumer key is invalid.", "Invalid signature - signature
  method is invalid." (not HMAC-SHA1/HMAC-SHA256), "Invalid signature - provided signature does not
  match." (the base string built by WooCommerce's own steps, ``wc_signature``, over the site's home URL,
  here the host the request named, plus the raw path), "Invalid timestamp." (more than 15 minutes off the
  host's clock), "Invalid nonce - nonce has already been used." (within 15 minutes; one nonce kept per
  timestamp, as WooCommerce keys them). A caller that authenticated as nobody (Basic over HTTP included: it
  is not even read) gets the route's own 401: "Sorry, you cannot list resources."
  (``woocommerce_rest_cannot_view``), "... view this resource.", ``woocommerce_rest_cannot_create``,
  ``..._edit``, ``..._delete``; an unknown route stays WordPress's 404 ``rest_no_route``.
- ``GET /wp-json/wc/v3/orders`` with ``page`` (default 1), ``per_page`` (default 10, 1..100: anything else is
  WP core's 400 ``rest_invalid_param``), ``offset``, ``after``/``before`` (created) and
  ``modified_after``/``modified_before`` (ISO-8601; both bounds *exclusive*, as ``WP_Date_Query`` with
  ``inclusive`` false), ``dates_are_gmt`` (without it, offset-less times are read as the *site's local time*),
  ``order`` (asc|desc, default desc), ``orderby`` (date|id|include|title|slug, default date), ``status``
  (any or a list; default any, which like WordPress's ``any`` leaves ``trash`` out), ``include``/``exclude``.
  Sorting is by (creation date, id), so the order of a listing never changes while an order is modified.
- ``X-WP-Total`` and ``X-WP-TotalPages`` on every listing, and a ``Link`` header with ``first``/``prev``/
  ``next``/``last`` URLs carrying the request's own query (credentials left out; WordPress itself echoes
  every query parameter, and its CRUD controller adds only ``prev``/``next`` [not modelled]). A page past
  the end is ``[]``.
- ``GET /wp-json/wc/v3/orders/{id}`` (404 ``woocommerce_rest_shop_order_invalid_id`` "Invalid ID.");
  unknown routes are WordPress's 404 ``rest_no_route``.
- ``status=any`` also lists abandoned block-checkout drafts (``checkout-draft``): one order slot in
  ``DRAFT_SHARE`` has one, created ``DRAFT_LEAD_SECONDS`` before the slot's order, never modified, its id the
  order's id + 3, its item ids its own; ``status=checkout-draft`` lists only them, ``GET /orders/{id}``
  serves them (``POST /_sandbox/woocommerce {"checkout_drafts": false}`` hides them).
- ``GET /orders/{id}/refunds`` (and ``/refunds/{refund_id}``): the refund objects of the docs' refund 724,
  newest first, paged like any listing: ``amount`` positive, line items with negative quantities and
  amounts whose ``_refunded_item_id`` meta names the order line, the shipping refunded as a shipping line.
  The order's ``refunds[]`` summary lists the same refunds. A cancel of an unpaid order moves no money and
  makes no refund; a unit dropped before the payment was captured is a 0.00 refund naming its line. Order
  line items carry ``_reduced_stock`` once the order took stock (on-hold, processing, completed, refunded)
  and ``_restock_refunded_items``, the units refunds put back: returns and a paid order's cancellation are
  restocked, an out-of-stock unit is not.
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
  or an nginx 502/503 page; plus latency, hangs, truncated bodies and malformed orders (a line quantity as
  text). ``duplicate_page_rate`` is a page cache in front of WordPress answering ``page=n`` with the page it
  served last (its body and headers; credentials and ``oauth_*`` are no part of its key, nor of the
  ``Link`` URLs); ``credentials_revoked`` a deleted key (OAuth: 401 "Consumer key is
  invalid."; Basic: an anonymous caller); ``token_expiry_rate`` does nothing (consumer keys do not expire).
- Writes (what the hub pushes), with what WooCommerce itself checks and nothing more:
  - the Shipment Tracking extension under ``/wp-json/wc-shipment-tracking/v3``: ``GET|POST
    orders/{id}/shipment-trackings`` (201 ``{tracking_id, tracking_provider, tracking_link, tracking_number,
    date_shipped}``), ``GET|DELETE .../{tracking_id}``, ``GET orders/{id}/shipment-trackings/providers`` (and
    ``shipment-trackings/providers``). It checks only that ``tracking_number`` is present and the order
    exists (404 ``woocommerce_rest_order_invalid_id`` "Invalid order ID."); an unknown provider is stored
    with an empty name and link; status and duplicates are not checked. Items show in the order's
    ``meta_data`` as ``_wc_shipment_tracking_items``; adding one does not change ``date_modified`` [U].
    Without the extension (``POST /_sandbox/woocommerce {"shipment_tracking": false}``) these routes are
    ``404 rest_no_route``.
  - ``GET|POST /orders/{id}/notes`` (``customer_note``; newest first; ``type`` any|customer|internal).
  - ``PUT /orders/{id} {"status": "completed"}`` ships every open unit in the world's overlay (core has no
    partial shipment; the latest tracking item is the shipment's tracking), adds WooCommerce's "Order status
    changed from Processing to Completed." note and bumps ``date_modified``. Other transitions, and
    completing a cancelled/refunded/failed order (which real WooCommerce would do), are a labelled
    sandbox-only 400 ``sandbox_unsupported_status_change``: the world cannot ship a cancelled order.
  - ``GET|PUT /products/{id}`` and ``/products/{pid}/variations/{vid}`` (``manage_stock``,
    ``stock_quantity``, ``stock_status`` recomputed); ``GET /products?sku=``. Stock sets go to the world's
    overlay (location 0); reads fall back to the catalog's opening stock. Unknown ids are 404
    ``woocommerce_rest_product_invalid_id`` / ``woocommerce_rest_product_variation_invalid_id``.
  - ``POST /_sandbox/woocommerce {"fail_writes": n, "fail_writes_after_apply": bool}``: the next n writes
    get a gateway 502, before WordPress saw them or after it applied them (the ambiguous case).
- ``/_sandbox/*``: faults, clock, state and catalog (sandbox.admin).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import heapq
import hmac
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Match

from sandbox.admin import RequestStats, add_admin_routes, hold_back_answers, json_response
from sandbox.faults import Faults, ServedPages
from sandbox.world import Address, OrderLine, OrderQuery, OrderState, Refund, Variant, World, money

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
ORDER_ID_STRIDE = 4  # an order id, then two refund ids (the world makes at most two), then a draft's id
DRAFT_ID_OFFSET = 3  # order id + 3: the abandoned checkout draft of that order slot, when it has one
DRAFT_SHARE = 11  # one order slot in DRAFT_SHARE has one (drafts never change and never become orders)
DRAFT_LEAD_SECONDS = 150  # a draft was started this long before its slot's order
LINE_ITEM_ID_BASE = 50_000
LINE_ITEM_STRIDE = 8  # lines, then a shipping line, a tax line and a coupon line
DRAFT_ITEM_ID_BASE = 3_000_000  # a draft's items: its own id space, the same layout
REFUND_ITEM_ID_BASE = 6_000_000  # a refund's items: LINE_ITEM_STRIDE per (order, refund seq)
RESTOCKING_STATUSES = frozenset({"on-hold", "processing", "completed", "refunded"})  # stock was reduced
CUSTOMER_ID_BASE = 2
TAX_RATE_ID_BASE = 70

STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "checkout-draft",
    "trash",
)
ORDERBY = ("date", "id", "include", "title", "slug")


def _error(code: str, message: str, status: int, **data: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {"status": status, **data}}


CANNOT_VIEW = _error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
# Credentials in the query string; a page cache (and the sandbox's Link header) leaves them out.
CREDENTIAL_PARAMS = frozenset(
    {
        "consumer_key",
        "consumer_secret",
        "oauth_consumer_key",
        "oauth_timestamp",
        "oauth_nonce",
        "oauth_signature",
        "oauth_signature_method",
        "oauth_version",
    }
)
NOT_FILTERS = frozenset({"page", *CREDENTIAL_PARAMS})  # what a page cache keys on: the rest
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


def _negative(value: Decimal) -> str:
    """An amount a refund takes back, as WooCommerce writes it ("-9.00"; nothing is "0.00", not "-0.00")."""
    return _amount(-value) if value else "0.00"


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

    # ---------------------------------------------------------------- checkout drafts
    def has_draft(self, index: int) -> bool:
        """Whether order slot ``index`` has an abandoned block-checkout draft (``checkout-draft``)."""
        return (index * 0x9E3779B1 + self.world.seed) % DRAFT_SHARE == 0

    def draft_ts(self, index: int) -> int:
        return self.world.timeline(index).created_ts - DRAFT_LEAD_SECONDS

    def drafts_between(self, start: datetime, end: datetime) -> list[int]:
        """Ids of the checkout drafts created in [start, end] (inclusive, whole seconds): what a listing
        of that span serves beside the world's orders (tests compare against it)."""
        low, high = math.ceil(start.timestamp()), math.floor(end.timestamp())
        lead = DRAFT_LEAD_SECONDS
        return [
            self.order_id(index) + DRAFT_ID_OFFSET
            for index in self.world.created_index_range(low + lead, high + lead)
            if self.has_draft(index) and low <= self.draft_ts(index) <= high
        ]

    def draft_index_of(self, draft_id: int) -> int | None:
        index = self.index_of(draft_id - DRAFT_ID_OFFSET)
        return index if index is not None and self.has_draft(index) else None

    def render_draft(self, index: int) -> dict[str, Any]:
        """The draft order WooCommerce's block checkout saved when a shopper reached checkout and left: the
        cart (the slot's order as first placed), unpaid, never modified, its own ids."""
        state = self.world.state(index, self.world.timeline(index).created_ts)
        assert state is not None
        payload = self.render(state)
        draft_id = self.order_id(index) + DRAFT_ID_OFFSET
        at = self.draft_ts(index)
        shift = DRAFT_ITEM_ID_BASE - LINE_ITEM_ID_BASE
        for key in ("line_items", "shipping_lines", "tax_lines", "coupon_lines"):
            for item in payload[key]:
                item["id"] += shift
                item["meta_data"] = [
                    {**meta, "id": item["id"] * 10 + n}
                    for n, meta in enumerate(item["meta_data"], start=1)
                    if not meta["key"].startswith("_")  # no stock was reduced for a draft
                ]
        base = self.base_url.rstrip("/")
        payload.update(
            id=draft_id,
            number=str(draft_id),
            status="checkout-draft",
            order_key="wc_order_"
            + hashlib.md5(f"draft:{self.world.seed}:{index}".encode(), usedforsecurity=False).hexdigest()[
                :13
            ],
            created_via="store-api",
            date_created=self.time.local(at),
            date_modified=self.time.local(at),
            date_created_gmt=self.time.gmt(at),
            date_modified_gmt=self.time.gmt(at),
            date_paid=None,
            date_paid_gmt=None,
            date_completed=None,
            date_completed_gmt=None,
            transaction_id="",
            payment_method="",
            payment_method_title="",
            refunds=[],
            meta_data=[],
            payment_url=f"{base}/checkout/order-pay/{draft_id}/",
            is_editable=True,
            needs_payment=True,
        )
        payload["_links"]["self"] = [{"href": f"{base}{API_PREFIX}/orders/{draft_id}"}]
        return payload

    # ---------------------------------------------------------------- refunds
    def served_refunds(self, state: OrderState) -> list[Refund]:
        """The world's refunds WooCommerce has as refund objects, newest first. Cancelling an unpaid order
        moves no money and makes no refund (WooCommerce restores its stock itself); a unit dropped before
        the payment was captured is a refund of 0.00 naming its line, as a merchant records it."""
        return [
            refund
            for refund in reversed(state.refunds)
            if refund.seq < DRAFT_ID_OFFSET and (refund.amount > 0 or (refund.lines and not state.cancelled))
        ]

    @staticmethod
    def restocks(state: OrderState, refund: Refund) -> bool:
        """Whether the merchant restocked this refund's items in WooCommerce ("Restock refunded items"):
        returned goods back on the shelf, and a cancelled order's items; not a unit refunded because it
        was out of stock (there was nothing to put back)."""
        return refund.restock and (state.cancelled or any(r.restock_type == "return" for r in refund.lines))

    def line_stock_meta(self, state: OrderState, line: OrderLine) -> list[dict[str, Any]]:
        """``_reduced_stock`` (units WooCommerce took from stock for the line, less those put back) and
        ``_restock_refunded_items`` (units put back by refunds), as ``wc_reduce_stock_levels`` and
        ``wc_restock_refunded_items`` keep them on the order's line item; shown in its ``meta_data``."""
        if wc_status(state) not in RESTOCKING_STATUSES:
            return []  # never reduced (pending, failed), or given back when it was cancelled unpaid
        restocked = sum(
            refund_line.quantity
            for refund in self.served_refunds(state)
            if self.restocks(state, refund)
            for refund_line in refund.lines
            if refund_line.line_index == line.index
        )
        item_id = self.line_item_id(state.index, line.index)
        meta = [("_reduced_stock", line.quantity - restocked, 2)]
        if restocked:
            meta.append(("_restock_refunded_items", restocked, 3))
        return [
            {
                "id": item_id * 10 + n,
                "key": key,
                "value": str(value),
                "display_key": key,
                "display_value": str(value),
            }
            for key, value, n in meta
        ]

    def render_refund(self, state: OrderState, refund: Refund) -> dict[str, Any]:
        """A refund object as ``GET /orders/{id}/refunds`` serves it (the docs' refund 724): negative line
        quantities and amounts, each refunded item naming its order line in ``_refunded_item_id``."""
        order = state.order
        order_id = self.order_id(state.index)
        refund_id = order_id + refund.seq
        item_base = REFUND_ITEM_ID_BASE + (state.index * ORDER_ID_STRIDE + refund.seq) * LINE_ITEM_STRIDE
        tax_rate_id = TAX_RATE_ID_BASE + sum(map(ord, order.tax_title)) % 50

        def refunded_from(item_id: int, original_id: int) -> list[dict[str, Any]]:
            value = str(original_id)
            return [
                {
                    "id": item_id * 10 + 1,
                    "key": "_refunded_item_id",
                    "value": value,
                    "display_key": "_refunded_item_id",
                    "display_value": value,
                }
            ]

        items = []
        for position, refund_line in enumerate(refund.lines):
            line = order.lines[refund_line.line_index]
            rendered = self._line_item(state, line, tax_rate_id)
            item_id = item_base + position
            tax = _negative(refund_line.tax)
            items.append(
                {
                    "id": item_id,
                    "name": rendered["name"],
                    "product_id": rendered["product_id"],
                    "variation_id": rendered["variation_id"],
                    "quantity": -refund_line.quantity,
                    "tax_class": "",
                    "subtotal": _negative(refund_line.subtotal),
                    "subtotal_tax": tax,
                    "total": _negative(refund_line.subtotal),
                    "total_tax": tax,
                    "taxes": []
                    if order.tax_rate == 0
                    else [{"id": tax_rate_id, "total": tax, "subtotal": tax}],
                    "meta_data": refunded_from(item_id, rendered["id"]),
                    "sku": rendered["sku"],
                    "price": _price_number(-refund_line.subtotal / refund_line.quantity),
                    "image": rendered["image"],
                    "parent_name": rendered["parent_name"],
                }
            )
        shipping = []
        if refund.shipping > 0:
            shipping_id = item_base + 4
            shipping.append(
                {
                    "id": shipping_id,
                    "method_title": order.shipping.title,
                    "method_id": "free_shipping" if order.shipping.code == "FREE" else "flat_rate",
                    "instance_id": "1" if order.shipping.code == "FREE" else "2",
                    "total": _negative(refund.shipping),
                    "total_tax": "0.00",
                    "taxes": [],
                    "meta_data": refunded_from(shipping_id, self.line_item_id(state.index, 0) + 4),
                }
            )
        base = f"{self.base_url.rstrip('/')}{API_PREFIX}/orders/{order_id}"
        return {
            "id": refund_id,
            "date_created": self.time.local(refund.at),
            "date_created_gmt": self.time.gmt(refund.at),
            "amount": _amount(refund.amount),
            "reason": refund.note,
            "refunded_by": 1,
            "refunded_payment": order.gateway != "manual",
            "meta_data": [],
            "line_items": items,
            "shipping_lines": shipping,
            "tax_lines": [],
            "fee_lines": [],
            "_links": {
                "self": [{"href": f"{base}/refunds/{refund_id}"}],
                "collection": [{"href": f"{base}/refunds"}],
                "up": [{"href": base}],
            },
        }

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
        meta_data += self.line_stock_meta(state, line)
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
            {"id": order_id + refund.seq, "reason": refund.note, "total": "-" + _amount(refund.amount)}
            for refund in self.served_refunds(state)
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


def render_order(
    faults: Faults, renderer: WooRenderer, state: OrderState, store: WooStore | None = None
) -> dict[str, Any]:
    """The order as served, broken the way the fault profile says (a line quantity as text). Shipment
    Tracking items show in ``meta_data`` under ``_wc_shipment_tracking_items`` (not a protected key), as a
    real shop with the extension serves them."""
    payload = renderer.render(state)
    items = store.tracking_items(state.index) if store is not None else []
    if items:
        payload["meta_data"] = [
            {
                "id": renderer.line_item_id(state.index, 0) * 10 + 9,
                "key": TRACKING_META_KEY,
                "value": [item.meta_value() for item in items],
            }
        ]
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
    include_drafts: frozenset[int] = frozenset()  # slot indices of the checkout drafts named by id
    exclude_drafts: frozenset[int] = frozenset()


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

    def ids(name: str, of: Callable[[int], int | None]) -> frozenset[int]:
        found = set()
        for value in _list_param(request, name):
            if not value.isdigit():
                raise BadRequest({name: f"{name}[0] is not of type integer."})
            index = of(int(value))
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
        include=ids("include", renderer.index_of) if _list_param(request, "include") else None,
        exclude=ids("exclude", renderer.index_of),
        include_drafts=ids("include", renderer.draft_index_of),
        exclude_drafts=ids("exclude", renderer.draft_index_of),
    )


# WP_Date_Query bounds are exclusive; the world's are inclusive, in whole seconds.
def _above(ts: float | None) -> float | None:
    return None if ts is None else float(math.floor(ts) + 1)


def _below(ts: float | None) -> float | None:
    return None if ts is None else float(math.ceil(ts) - 1)


def listing_entries(
    renderer: WooRenderer, listing: Listing, now_ts: float, *, drafts: bool
) -> list[tuple[int, bool]]:
    """(slot index, is a checkout draft) of every order the listing holds, ascending by (creation date,
    id): the world's orders and, with ``drafts``, the checkout drafts ``status=any`` also returns."""
    orders = matching_indices(renderer.world, listing, now_ts)
    found = matching_drafts(renderer, listing, now_ts) if drafts else []
    if not found:
        return [(index, False) for index in orders]
    world = renderer.world
    keyed_orders = ((world.timeline(i).created_ts, renderer.order_id(i), i, False) for i in orders)
    keyed_drafts = ((renderer.draft_ts(i), renderer.order_id(i) + DRAFT_ID_OFFSET, i, True) for i in found)
    return [(index, draft) for _, _, index, draft in heapq.merge(keyed_orders, keyed_drafts)]


def matching_drafts(renderer: WooRenderer, listing: Listing, now_ts: float) -> list[int]:
    """Slot indices of the checkout drafts the listing holds, by creation time (a draft never changes:
    its modified time is its creation time)."""
    if listing.statuses is not None and "checkout-draft" not in listing.statuses:
        return []
    bounds_low = [t for t in (_above(listing.created_after), _above(listing.modified_after)) if t is not None]
    bounds_high = [_below(listing.created_before), _below(listing.modified_before), float(math.floor(now_ts))]
    low = max(bounds_low, default=None)
    high = min(t for t in bounds_high if t is not None)
    if listing.include is not None:
        candidates: Iterable[int] = sorted(listing.include_drafts)
    else:
        lead = DRAFT_LEAD_SECONDS
        candidates = renderer.world.created_index_range(None if low is None else low + lead, high + lead)
    return [
        index
        for index in candidates
        if renderer.has_draft(index)
        and index not in listing.exclude_drafts
        and (low is None or low <= renderer.draft_ts(index))
        and renderer.draft_ts(index) <= high
    ]


def matching_indices(world: World, listing: Listing, now_ts: float) -> list[int]:
    """World indices of the listing, ascending by (creation date, id): stable while orders change."""
    if listing.statuses is not None and not listing.statuses - {"checkout-draft"}:
        return []  # the world's orders are never drafts
    query = OrderQuery(
        created_min=_above(listing.created_after),
        created_max=_below(listing.created_before),
        updated_min=_above(listing.modified_after),
        updated_max=_below(listing.modified_before),
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
# What the hub writes: Shipment Tracking items, order notes, order status, product stock
# --------------------------------------------------------------------------------------------------

TRACKING_PREFIX = "/wp-json/wc-shipment-tracking/v3"
TRACKING_META_KEY = "_wc_shipment_tracking_items"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOTE_ID_BASE = 300  # WordPress comment ids
CLOSED_STATUSES = ("cancelled", "refunded", "failed", "trash")
# A subset of WC_Shipment_Tracking_Actions::get_providers(), as GET .../providers answers it: region ->
# provider name -> link format (%1$s the tracking number, %2$s the shipping postcode).
SHIPMENT_TRACKING_PROVIDERS: dict[str, dict[str, str]] = {
    "Australia": {
        "Australia Post": "https://auspost.com.au/mypost/track/#/details/%1$s",
        "Fastway Couriers": "https://www.fastway.com.au/tools/track/?l=%1$s",
    },
    "Canada": {
        "Canada Post": "https://www.canadapost-postescanada.ca/track-reperage/en#/resultList?searchFor=%1$s",
        "Purolator": "https://www.purolator.com/purolator/ship-track/tracking-summary.page?pin=%1$s",
    },
    "Germany": {
        "DHL Intraship (DE)": "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?idc=%1$s",
        "Hermes Germany": "https://www.myhermes.de/empfangen/sendungsverfolgung/?suche=%1$s",
    },
    "Netherlands": {"PostNL": "https://postnl.nl/tracktrace/?B=%1$s&P=%2$s&D=NL&T=C"},
    "United Kingdom": {
        "DHL": "https://www.dhl.com/content/g0/en/express/tracking.shtml?brand=DHL&AWB=%1$s",
        "DPD.co.uk": "https://www.dpd.co.uk/apps/tracking/?reference=%1$s#results",
        "EVRi": "https://www.evri.com/track/parcel/%1$s",
        "ParcelForce": "https://www.parcelforce.com/track-trace?trackNumber=%1$s",
        "Royal Mail": "https://www.royalmail.com/track-your-item#/tracking-results/%1$s",
    },
    "United States": {
        "Fedex": "https://www.fedex.com/apps/fedextrack/?action=track&action=track&tracknumbers=%1$s",
        "FedEx Sameday": "https://www.fedexsameday.com/fdx_dotracking_ua.aspx?tracknum=%1$s",
        "OnTrac": "https://www.ontrac.com/tracking/?number=%1$s",
        "UPS": "https://www.ups.com/track?loc=en_US&tracknum=%1$s",
        "USPS": "https://tools.usps.com/go/TrackConfirmAction_input?qtc_tLabels1=%1$s",
        "DHL US": "https://www.logistics.dhl/us-en/home/tracking/tracking-ecommerce.html?tracking-id=%1$s",
    },
}
ORDER_INVALID_ID = _error("woocommerce_rest_order_invalid_id", "Invalid order ID.", 404)
TRACKING_INVALID_ID = _error(
    "woocommerce_rest_order_shipment_tracking_invalid_id", "Invalid shipment tracking ID.", 404
)
TRACKING_EXISTS = _error(
    "woocommerce_rest_shop_order_shipment_tracking_exists",
    "Cannot create existing order shipment tracking.",
    400,
)
PRODUCT_INVALID_ID = _error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
VARIATION_INVALID_ID = _error("woocommerce_rest_product_variation_invalid_id", "Invalid ID.", 404)
INVALID_JSON = _error("rest_invalid_json", "Invalid JSON body passed.", 400)
# Sandbox-only: real WooCommerce lets the REST API move a cancelled order to "completed" (core validates no
# status transition), but the world cannot ship a cancelled order. The connector never asks (it reads the
# order first); anyone who does gets this labelled answer instead of a silent lie.
SANDBOX_UNSUPPORTED_STATUS_CHANGE = "sandbox_unsupported_status_change"


def _missing(*names: str) -> dict[str, Any]:
    return _error(
        "rest_missing_callback_param", f"Missing parameter(s): {', '.join(names)}", 400, params=list(names)
    )


def sanitize_title(text: str) -> str:
    """WordPress's ``sanitize_title`` as the extension applies it to provider names ("DHL US": "dhl-us")."""
    slug = text.strip().lower().replace(".", "-")
    slug = re.sub(r"\s+", "-", slug)
    slug = re.sub(r"[^a-z0-9_-]", "", slug)
    return re.sub(r"-+", "-", slug).strip("-")


def php_sprintf(format_: str, *values: str) -> str:
    """The two positional forms the providers' link formats use (``%1$s``, ``%2$s``)."""
    for position, value in enumerate(values, start=1):
        format_ = format_.replace(f"%{position}$s", value)
    return format_


@dataclass(frozen=True)
class TrackingItem:
    """One entry of the order meta ``_wc_shipment_tracking_items``, as the extension stores it."""

    tracking_id: str
    tracking_provider: str  # sanitize_title of the provider name; "" with a custom provider
    custom_tracking_provider: str
    custom_tracking_link: str
    tracking_number: str
    date_shipped: int  # a Unix timestamp (strtotime of the request's date; 0 when it did not parse)

    def formatted(self, postcode: str) -> tuple[str, str]:
        """(provider name, tracking link) as the extension formats them: a custom provider's link as
        given; a built-in provider's format filled in; an unknown slug gives "" and "" (not an error)."""
        if self.custom_tracking_provider:
            return self.custom_tracking_provider, self.custom_tracking_link
        for providers in SHIPMENT_TRACKING_PROVIDERS.values():
            for name, link_format in providers.items():
                if sanitize_title(name) == self.tracking_provider:
                    return name, php_sprintf(link_format, self.tracking_number, postcode)
        return "", ""

    def meta_value(self) -> dict[str, Any]:
        return {
            "tracking_provider": self.tracking_provider,
            "custom_tracking_provider": self.custom_tracking_provider,
            "custom_tracking_link": self.custom_tracking_link,
            "tracking_number": self.tracking_number,
            "date_shipped": str(self.date_shipped),
            "tracking_id": self.tracking_id,
        }


@dataclass(frozen=True)
class OrderNote:
    id: int
    at: int
    note: str
    customer_note: bool
    added_by_user: bool
    author: str  # "system" for notes the API or WooCommerce itself added


class WooStore:
    """The shop-side state the hub can write that the world does not model: the Shipment Tracking
    extension's items (order meta), order notes (WordPress comments), per-product ``manage_stock`` flags
    and stock on variable parents; plus the sandbox knobs (is the extension installed, failing writes).

    Stock levels and completed shipments live in the world's overlay, so every renderer sees them."""

    def __init__(self, world: World, *, shipment_tracking: bool = True, checkout_drafts: bool = True) -> None:
        self.world = world
        self.shipment_tracking = shipment_tracking
        self.checkout_drafts = checkout_drafts  # abandoned block-checkout drafts show in status=any
        self.trackings: dict[int, list[TrackingItem]] = {}
        self.notes: dict[int, list[OrderNote]] = {}
        self.manage_stock: dict[int, bool] = {}  # variant index -> flag (default True)
        self.parent_stock: dict[int, int | None] = {}  # variable product id -> parent-level stock
        self.parent_manage_stock: dict[int, bool] = {}
        self.fail_writes = 0  # the next N writes get a gateway 502 ...
        self.fail_writes_after_apply = False  # ... after WordPress applied them (the ambiguous case)
        self._sequence = 0
        self._lock = threading.Lock()
        listing = "woocommerce"
        self.simple_products: dict[int, Variant] = {}
        self.variable_products: dict[int, list[Variant]] = {}
        self.variations: dict[int, Variant] = {}
        for variant in world.catalog.variants:
            ids = variant.listing(listing)
            if variant.variant_title is None:
                self.simple_products[ids.product_id] = variant
            else:
                self.variable_products.setdefault(ids.product_id, []).append(variant)
                self.variations[ids.variant_id] = variant

    # ---------------------------------------------------------------- knobs
    def configure(self, changes: dict[str, Any]) -> None:
        known = {"shipment_tracking", "checkout_drafts", "fail_writes", "fail_writes_after_apply"}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))} (known: {', '.join(known)})")
        with self._lock:
            if "shipment_tracking" in changes:
                self.shipment_tracking = bool(changes["shipment_tracking"])
            if "checkout_drafts" in changes:
                self.checkout_drafts = bool(changes["checkout_drafts"])
            if "fail_writes" in changes:
                count = int(changes["fail_writes"])
                if count < 0:
                    raise ValueError("fail_writes must be >= 0")
                self.fail_writes = count
            if "fail_writes_after_apply" in changes:
                self.fail_writes_after_apply = bool(changes["fail_writes_after_apply"])

    def take_write_failure(self) -> str | None:
        """None, or "before"/"after" (apply the write, then lose its answer) for the next injected failure."""
        with self._lock:
            if self.fail_writes <= 0:
                return None
            self.fail_writes -= 1
            return "after" if self.fail_writes_after_apply else "before"

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "shipment_tracking": self.shipment_tracking,
                "checkout_drafts": self.checkout_drafts,
                "tracking_items": sum(len(items) for items in self.trackings.values()),
                "order_notes": sum(len(notes) for notes in self.notes.values()),
                "fail_writes": self.fail_writes,
                "fail_writes_after_apply": self.fail_writes_after_apply,
            }

    # ---------------------------------------------------------------- orders
    def tracking_items(self, index: int) -> list[TrackingItem]:
        with self._lock:
            return list(self.trackings.get(index, ()))

    def add_tracking(self, index: int, body: dict[str, Any], now_ts: int) -> TrackingItem:
        provider = str(body.get("tracking_provider") or "")
        number = str(body.get("tracking_number") or "").strip()
        with self._lock:
            self._sequence += 1
            slug = sanitize_title(provider)
            digest = hashlib.md5(f"{slug}-{number}-{self._sequence}".encode(), usedforsecurity=False)
            item = TrackingItem(
                tracking_id=digest.hexdigest(),
                tracking_provider=slug,
                custom_tracking_provider=str(body.get("custom_tracking_provider") or "").strip(),
                custom_tracking_link=str(body.get("custom_tracking_link") or "").strip(),
                tracking_number=number,
                date_shipped=_strtotime(body.get("date_shipped"), now_ts),
            )
            self.trackings.setdefault(index, []).append(item)
            return item

    def delete_tracking(self, index: int, tracking_id: str) -> TrackingItem | None:
        with self._lock:
            items = self.trackings.get(index, [])
            for position, item in enumerate(items):
                if item.tracking_id == tracking_id:
                    return items.pop(position)
            return None

    def order_notes(self, index: int) -> list[OrderNote]:
        with self._lock:
            return list(reversed(self.notes.get(index, ())))  # newest first, as WooCommerce lists them

    def add_note(
        self, index: int, note: str, *, customer_note: bool, at: int, added_by_user: bool = False
    ) -> OrderNote:
        with self._lock:
            self._sequence += 1
            created = OrderNote(
                id=NOTE_ID_BASE + self._sequence,
                at=at,
                note=note,
                customer_note=customer_note,
                added_by_user=added_by_user,
                author="system",
            )
            self.notes.setdefault(index, []).append(created)
            return created

    # ---------------------------------------------------------------- stock
    def stock_of(self, variant: Variant) -> int | None:
        if not self.manage_stock.get(variant.index, True):
            return None
        return self.world.overlay.stock_levels.get((PLATFORM, variant.index, 0), variant.opening_stock)


def _strtotime(value: Any, now_ts: int) -> int:
    """``date_shipped`` as the extension stores it: strtotime() of the text (WordPress runs PHP in UTC);
    missing means now, and text strtotime cannot read is stored as false, shown as 1970-01-01."""
    if value is None or value == "":
        return now_ts
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _stock_status(quantity: int | None, managed: bool) -> str:
    if not managed or quantity is None:
        return "instock"
    return "instock" if quantity > 0 else "outofstock"


class CatalogRenderer:
    """Catalog variants -> WooCommerce product and variation JSON (the stock-relevant subset)."""

    def __init__(self, store: WooStore, base_url: str) -> None:
        self.store = store
        self.base = base_url.rstrip("/")

    def _slug(self, text: str) -> str:
        return sanitize_title(text)

    def simple(self, product_id: int, variant: Variant) -> dict[str, Any]:
        managed = self.store.manage_stock.get(variant.index, True)
        quantity = self.store.stock_of(variant)
        price = f"{variant.price:.2f}"
        slug = self._slug(variant.product_title)
        return {
            "id": product_id,
            "name": variant.product_title,
            "slug": slug,
            "permalink": f"{self.base}/product/{slug}/",
            "type": "simple",
            "status": "publish",
            "sku": variant.listing(PLATFORM).sku,
            "price": price,
            "regular_price": price,
            "sale_price": "",
            "manage_stock": managed,
            "stock_quantity": quantity,
            "stock_status": _stock_status(quantity, managed),
            "backorders": "no",
            "weight": f"{variant.grams / 1000:g}",
            "variations": [],
            "_links": {
                "self": [{"href": f"{self.base}{API_PREFIX}/products/{product_id}"}],
                "collection": [{"href": f"{self.base}{API_PREFIX}/products"}],
            },
        }

    def variable(self, product_id: int, variants: list[Variant]) -> dict[str, Any]:
        first = variants[0]
        managed = self.store.parent_manage_stock.get(product_id, False)
        quantity = self.store.parent_stock.get(product_id) if managed else None
        child_in_stock = any((self.store.stock_of(v) or 0) > 0 for v in variants)
        slug = self._slug(first.product_title)
        return {
            "id": product_id,
            "name": first.product_title,
            "slug": slug,
            "permalink": f"{self.base}/product/{slug}/",
            "type": "variable",
            "status": "publish",
            "sku": first.product_key,
            "price": f"{min(v.price for v in variants):.2f}",
            "regular_price": "",
            "sale_price": "",
            "manage_stock": managed,
            "stock_quantity": quantity,
            "stock_status": _stock_status(quantity, True)
            if managed
            else ("instock" if child_in_stock else "outofstock"),
            "backorders": "no",
            "variations": [v.listing(PLATFORM).variant_id for v in variants],
            "_links": {
                "self": [{"href": f"{self.base}{API_PREFIX}/products/{product_id}"}],
                "collection": [{"href": f"{self.base}{API_PREFIX}/products"}],
            },
        }

    def variation(self, product_id: int, variant: Variant) -> dict[str, Any]:
        ids = variant.listing(PLATFORM)
        managed = self.store.manage_stock.get(variant.index, True)
        quantity = self.store.stock_of(variant)
        price = f"{variant.price:.2f}"
        return {
            "id": ids.variant_id,
            "permalink": f"{self.base}/product/{self._slug(variant.product_title)}/"
            f"?variation={ids.variant_id}",
            "sku": ids.sku,
            "price": price,
            "regular_price": price,
            "sale_price": "",
            "status": "publish",
            "manage_stock": managed,
            "stock_quantity": quantity,
            "stock_status": _stock_status(quantity, managed),
            "backorders": "no",
            "weight": f"{variant.grams / 1000:g}",
            "attributes": [{"id": 0, "name": "Option", "option": variant.variant_title}],
            "_links": {
                "self": [
                    {"href": f"{self.base}{API_PREFIX}/products/{product_id}/variations/{ids.variant_id}"}
                ],
                "collection": [{"href": f"{self.base}{API_PREFIX}/products/{product_id}/variations"}],
                "up": [{"href": f"{self.base}{API_PREFIX}/products/{product_id}"}],
            },
        }


def parse_stock_update(body: dict[str, Any]) -> tuple[bool | None, int | None]:
    """(manage_stock, stock_quantity) from a product/variation update, validated the way WordPress's
    schema validation does it (a numeric string passes as an integer; anything else is rest_invalid_param)."""
    manage: bool | None = None
    if "manage_stock" in body:
        raw = body["manage_stock"]
        if isinstance(raw, bool):
            manage = raw
        elif isinstance(raw, str) and raw.strip().lower() in ("1", "0", "true", "false"):
            manage = raw.strip().lower() in ("1", "true")
        else:
            raise BadRequest({"manage_stock": "manage_stock is not of type boolean."})
    quantity: int | None = None
    if "stock_quantity" in body and body["stock_quantity"] is not None:
        raw = body["stock_quantity"]
        if isinstance(raw, bool) or not (
            isinstance(raw, int) or (isinstance(raw, str) and re.fullmatch(r"-?\d{1,9}", raw.strip()))
        ):
            raise BadRequest({"stock_quantity": "stock_quantity is not of type integer."})
        quantity = int(raw)
    return manage, quantity


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Authentication: WC_REST_Authentication (woocommerce/woocommerce, includes/class-wc-rest-authentication.php)
# --------------------------------------------------------------------------------------------------

OAUTH_PARAMS = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
OAUTH_WINDOW_SECONDS = 15 * 60  # a timestamp within 15 minutes of the server's clock; nonces kept as long
_OAUTH_HEADER_PARAM = re.compile(r'(oauth_[a-z_-]*)=(:?"([^"]*)"|([^,]*))')


def php_empty(value: Any) -> bool:
    """PHP's ``empty()`` of a request value: missing, "" and "0" are empty."""
    return value is None or value == "" or value == "0" or value == [] or value == {}


def php_query(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``$_GET`` from decoded query pairs, as PHP builds it: a repeated name keeps its last value, ``a[]`` and
    ``a[k]`` make arrays, and dots and spaces in a name become underscores."""
    found: dict[str, Any] = {}
    for raw_name, value in pairs:
        name, bracket, rest = raw_name.partition("[")
        name = name.lstrip(" ").replace(".", "_").replace(" ", "_")
        if not name:
            continue
        if not bracket or "]" not in rest:
            found[name] = value
            continue
        inner = rest.split("]", 1)[0]
        array = found.get(name)
        if not isinstance(array, dict):
            array = found[name] = {}
        if inner == "":
            numeric = [key for key in array if isinstance(key, int)]
            array[max(numeric) + 1 if numeric else 0] = value
        else:
            array[int(inner) if inner.isdigit() else inner] = value
    return found


def rawurlencode(value: Any) -> Any:
    """``wc_rest_urlencode_rfc3986``: PHP ``rawurlencode`` of a value, or of each value of an array."""
    if isinstance(value, dict):
        return {key: rawurlencode(item) for key, item in value.items()}
    return quote(str(value), safe="")


def _join_with_equals_sign(params: dict[Any, Any], joined: list[str], key: str = "") -> list[str]:
    for param_key, param_value in params.items():
        name = f"{key}%5B{param_key}%5D" if key else str(param_key)  # nested arrays: name[key]
        if isinstance(param_value, dict):
            _join_with_equals_sign(param_value, joined, name)
        else:
            joined.append(rawurlencode(f"{name}={param_value}"))
    return joined


def wc_signature(method: str, base_request_uri: str, params: dict[str, Any], secret: str) -> str:
    """``check_oauth_signature``'s own computation, step by step: sort by name (``strcmp``), encode names and
    values, join each pair with ``=`` and encode it again, join the pairs with ``%26``; the string to sign is
    ``METHOD&rawurlencode(base request URI)&pairs``; HMAC keyed by ``consumer_secret . '&'``."""
    ordered = dict(sorted(params.items(), key=lambda item: item[0].encode()))
    normalized = {rawurlencode(key): rawurlencode(value) for key, value in ordered.items()}
    query_string = "%26".join(_join_with_equals_sign(normalized, []))
    string_to_sign = f"{method.upper()}&{rawurlencode(base_request_uri)}&{query_string}"
    algorithm = str(params["oauth_signature_method"]).replace("HMAC-", "").lower()
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), algorithm).digest()
    return base64.b64encode(digest).decode("ascii")


class WooAuthentication:
    """Who a request is, the way WooCommerce decides it: over TLS (``is_ssl()``) HTTP Basic, or the
    ``consumer_key``/``consumer_secret`` query parameters, are tried first; then (always, and only, over
    plain HTTP) OAuth 1.0a one-legged from the query string or an ``Authorization: OAuth`` header. A form-
    encoded POST body is not read here (WooCommerce merges ``$_POST`` in too): the hub sends JSON bodies.

    ``authenticate`` answers True (a valid key), an error body (a 401 WooCommerce raises itself), or None:
    no credential it reads (the route's own permission check then refuses, 401 ``woocommerce_rest_cannot_*``).
    The OAuth timestamp is checked against the host's clock (plus the faults' skew): what a WordPress server
    compares with, whatever moment the order world is frozen at.
    """

    def __init__(self, consumer_key: str, consumer_secret: str, faults: Faults) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.faults = faults
        self._nonces: dict[Any, str] = {}  # the key's ``nonces`` column: timestamp -> nonce
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self.faults.clock_skew_seconds

    def _known(self, key: str) -> bool:
        # A revoked key is deleted in WooCommerce: it is then as unknown as a wrong one.
        return not self.faults.credentials_revoked and hmac.compare_digest(
            key.encode(), self.consumer_key.encode()
        )

    def authenticate(self, request: Request) -> bool | dict[str, Any] | None:
        error: dict[str, Any] | None = None
        if request.url.scheme == "https":  # is_ssl(): from the transport itself
            verdict = self._basic(request)
            if verdict is True:
                return True
            error = verdict
        verdict = self._oauth(request)
        if verdict is True:
            return True
        return verdict or error

    def _basic(self, request: Request) -> bool | dict[str, Any] | None:
        """``perform_basic_authentication``: the query parameters first, else the Basic header. An unknown key
        is no error (nothing authenticated); a known key with the wrong secret is."""
        key, secret = request.query_params.get("consumer_key"), request.query_params.get("consumer_secret")
        if php_empty(key) or php_empty(secret):
            key = secret = None
            header = request.headers.get("Authorization", "")
            if header[:6].lower() == "basic ":
                try:
                    decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    decoded = ""
                key, _, secret = decoded.partition(":")
        if php_empty(key) or php_empty(secret) or not self._known(str(key)):
            return None
        if not hmac.compare_digest(str(secret).encode(), self.consumer_secret.encode()):
            return BAD_SECRET
        return True

    def _oauth(self, request: Request) -> bool | dict[str, Any] | None:
        """``perform_oauth_authentication``: every check and error in WooCommerce's order."""
        params: dict[str, Any] = php_query(request.query_params.multi_items())
        header = request.headers.get("Authorization", "").strip()
        if header.startswith("OAuth "):
            for match in _OAUTH_HEADER_PARAM.finditer(header):
                params[match[1]] = unquote_plus(match[3] or match[4])
        missing = [name for name in OAUTH_PARAMS if php_empty(params.get(name))]
        if len(missing) == len(OAUTH_PARAMS):
            return None  # not even trying OAuth
        if missing:
            word = "parameter" if len(missing) == 1 else "parameters"
            return _error(
                "woocommerce_rest_authentication_missing_parameter",
                f"Missing OAuth {word} {', '.join(missing)}",
                401,
            )
        if not self._known(str(params["oauth_consumer_key"])):
            return BAD_KEY
        # The base request URI: the site's home URL (here: the host the request named, and the path the site
        # is mounted under, the ASGI root_path), the scheme of the transport, and the request's raw path.
        scheme = "https" if request.url.scheme == "https" else "http"
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        host = request.headers.get("host", request.url.netloc)
        home = f"{scheme}://{host}{request.scope.get('root_path', '')}"
        base_request_uri = f"{home}/{raw_path.decode('latin-1').lstrip('/')}"
        provided = unquote(str(params.pop("oauth_signature")).replace(" ", "+"))
        if params["oauth_signature_method"] not in ("HMAC-SHA1", "HMAC-SHA256"):
            return _error(
                "woocommerce_rest_authentication_error",
                "Invalid signature - signature method is invalid.",
                401,
            )
        expected = wc_signature(request.method, base_request_uri, params, self.consumer_secret)
        if not hmac.compare_digest(expected.encode(), provided.encode()):
            return _error(
                "woocommerce_rest_authentication_error",
                "Invalid signature - provided signature does not match.",
                401,
            )
        return self._timestamp_and_nonce(str(params["oauth_timestamp"]), str(params["oauth_nonce"]))

    def _timestamp_and_nonce(self, timestamp: str, nonce: str) -> bool | dict[str, Any]:
        """``check_oauth_timestamp_and_nonce``. WooCommerce keeps one nonce per timestamp (the array is keyed
        by it): a second request in the same second replaces the first one's nonce."""
        now = self.now()
        try:
            at = float(timestamp)
        except ValueError:
            at = math.nan
        if not now - OAUTH_WINDOW_SECONDS <= at <= now + OAUTH_WINDOW_SECONDS:
            return _error("woocommerce_rest_authentication_error", "Invalid timestamp.", 401)
        with self._lock:
            if nonce in self._nonces.values():
                return _error(
                    "woocommerce_rest_authentication_error",
                    "Invalid nonce - nonce has already been used.",
                    401,
                )
            self._nonces[int(timestamp) if timestamp.isdigit() else timestamp] = nonce
            for kept in list(self._nonces):
                if float(kept) < now - OAUTH_WINDOW_SECONDS:
                    del self._nonces[kept]
        return True


def refused(method: str, path: str) -> dict[str, Any]:
    """What a route's permission check answers a request that authenticated as no one (WooCommerce's
    ``WC_REST_Posts_Controller`` / ``WC_REST_CRUD_Controller`` wording; 401 while not logged in)."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    one = last.isdigit() or re.fullmatch(r"[0-9a-f]{32}", last) is not None
    if method in ("GET", "HEAD"):
        if one:
            return _error("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.", 401)
        return CANNOT_VIEW
    if method == "DELETE":
        return _error(
            "woocommerce_rest_cannot_delete", "Sorry, you are not allowed to delete this resource.", 401
        )
    if one:  # POST, PUT, PATCH on one resource: an update
        return _error(
            "woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.", 401
        )
    return _error("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.", 401)


async def _json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object ({} for an empty body); None when it is not a JSON object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def add_write_routes(
    app: FastAPI, world: World, renderer: WooRenderer, store: WooStore, products: CatalogRenderer
) -> None:
    """Order status, order notes, the Shipment Tracking extension's routes and product stock."""
    time = renderer.time

    def order_state(order_ref: str) -> OrderState | None:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        return world.state(index, world.now_ts()) if index is not None else None

    # ------------------------------------------------------------ PUT /orders/{id} (status only)
    @app.put(API_PREFIX + "/orders/{order_ref}")
    async def update_order(order_ref: str, request: Request) -> Response:
        state = order_state(order_ref)
        if state is None:
            return json_response(INVALID_ID, 404)
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        wanted = body.get("status")
        if wanted is None:
            return json_response(render_order(app.state.faults, renderer, state, store))
        if wanted not in STATUSES:
            allowed = ", ".join(STATUSES[:-1])
            return json_response(
                BadRequest({"status": f"status is not one of {allowed} and {STATUSES[-1]}."}).body(), 400
            )
        current = wc_status(state)
        if wanted == current:  # WooCommerce saves nothing and adds no note when the status is unchanged
            return json_response(render_order(app.state.faults, renderer, state, store))
        if wanted != "completed" or current in CLOSED_STATUSES:
            return json_response(
                _error(
                    SANDBOX_UNSUPPORTED_STATUS_CHANGE,
                    f"The sandbox models only completing an open order (not {current} -> {wanted}).",
                    400,
                ),
                400,
            )
        # Completing ships every unit still open (core has no partial shipment); the latest tracking item,
        # if any, is the shipment's tracking in the world.
        now_ts = int(world.now_ts())
        lines = tuple(
            (line.index, state.fulfillable(line.index))
            for line in state.order.lines
            if state.fulfillable(line.index) > 0
        )
        items = store.tracking_items(state.index)
        company = number = url = ""
        if items:
            company, url = items[-1].formatted(state.order.shipping_address.zip)
            number = items[-1].tracking_number
        world.overlay.record_fulfillment(state.index, now_ts, lines, company, number, url)
        store.add_note(
            state.index,
            f"Order status changed from {current.title()} to Completed.",
            customer_note=False,
            at=now_ts,
        )
        updated = world.state(state.index, world.now_ts())
        assert updated is not None
        return json_response(render_order(app.state.faults, renderer, updated, store))

    # ------------------------------------------------------------ order notes
    def render_note(order_id: int, note: OrderNote) -> dict[str, Any]:
        base = f"{renderer.base_url}{API_PREFIX}/orders/{order_id}/notes"
        return {
            "id": note.id,
            "author": note.author,
            "date_created": time.local(note.at),
            "date_created_gmt": time.gmt(note.at),
            "note": note.note,
            "customer_note": note.customer_note,
            "added_by_user": note.added_by_user,
            "_links": {
                "self": [{"href": f"{base}/{note.id}"}],
                "collection": [{"href": base}],
                "up": [{"href": f"{renderer.base_url}{API_PREFIX}/orders/{order_id}"}],
            },
        }

    @app.get(API_PREFIX + "/orders/{order_ref}/notes")
    def list_notes(order_ref: str, request: Request) -> Response:
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        kind = request.query_params.get("type", "any")
        if kind not in ("any", "customer", "internal"):
            return json_response(
                BadRequest({"type": "type is not one of any, customer and internal."}).body(), 400
            )
        notes = [
            note
            for note in store.order_notes(state.index)
            if kind == "any" or note.customer_note == (kind == "customer")
        ]
        return json_response([render_note(int(order_ref), note) for note in notes])

    @app.post(API_PREFIX + "/orders/{order_ref}/notes")
    async def add_note(order_ref: str, request: Request) -> Response:
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        if "note" not in body:
            return json_response(_missing("note"), 400)
        text = str(body["note"] or "").strip()
        if not text:
            return json_response(
                _error(
                    "woocommerce_rest_invalid_order_note", "Cannot create order note, please try again.", 500
                ),
                500,
            )
        try:
            customer = bool(parse_flag("customer_note", body.get("customer_note", False)))
            by_user = bool(parse_flag("added_by_user", body.get("added_by_user", False)))
        except BadRequest as error:
            return json_response(error.body(), 400)
        note = store.add_note(
            state.index, text, customer_note=customer, at=int(world.now_ts()), added_by_user=by_user
        )
        return json_response(render_note(int(order_ref), note), 201)

    # ------------------------------------------------------------ Shipment Tracking extension
    trackings_path = TRACKING_PREFIX + "/orders/{order_ref}/shipment-trackings"

    def render_tracking(order_id: int, state: OrderState, item: TrackingItem) -> dict[str, Any]:
        provider, link = item.formatted(state.order.shipping_address.zip)
        base = f"{renderer.base_url}{trackings_path.format(order_ref=order_id)}"
        return {
            "tracking_id": item.tracking_id,
            "tracking_provider": provider,
            "tracking_link": link,
            "tracking_number": item.tracking_number,
            "date_shipped": datetime.fromtimestamp(item.date_shipped, UTC).strftime("%Y-%m-%d"),
            "_links": {
                "self": [{"href": f"{base}/{item.tracking_id}"}],
                "collection": [{"href": base}],
                "up": [{"href": f"{renderer.base_url}{TRACKING_PREFIX}/orders/{order_id}"}],
            },
        }

    def providers_response() -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        return json_response(SHIPMENT_TRACKING_PROVIDERS)

    @app.get(TRACKING_PREFIX + "/shipment-trackings/providers")
    def providers() -> Response:
        return providers_response()

    @app.get(trackings_path + "/providers")
    def order_providers(order_ref: str) -> Response:
        return providers_response()

    @app.get(trackings_path)
    def list_trackings(order_ref: str) -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        items = store.tracking_items(state.index)
        return json_response([render_tracking(int(order_ref), state, item) for item in items])

    @app.post(trackings_path)
    async def add_tracking(order_ref: str, request: Request) -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        if "tracking_number" not in body:  # the route's one required argument, checked before the handler
            return json_response(_missing("tracking_number"), 400)
        if body.get("tracking_id"):
            return json_response(TRACKING_EXISTS, 400)
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        # Like the extension: no check of the provider (an unknown one is stored with an empty name and
        # link), of the order's status, or of a number already on the order.
        item = store.add_tracking(state.index, body, int(world.now_ts()))
        rendered = render_tracking(int(order_ref), state, item)
        return json_response(rendered, 201, {"Location": rendered["_links"]["self"][0]["href"]})

    @app.get(trackings_path + "/{tracking_id}")
    def get_tracking(order_ref: str, tracking_id: str) -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        for item in store.tracking_items(state.index):
            if item.tracking_id == tracking_id:
                return json_response(render_tracking(int(order_ref), state, item))
        return json_response(TRACKING_INVALID_ID, 404)

    @app.delete(trackings_path + "/{tracking_id}")
    def delete_tracking(order_ref: str, tracking_id: str) -> Response:
        if not store.shipment_tracking:
            return json_response(NO_ROUTE, 404)
        state = order_state(order_ref)
        if state is None:
            return json_response(ORDER_INVALID_ID, 404)
        removed = store.delete_tracking(state.index, tracking_id)
        if removed is None:
            return json_response(TRACKING_INVALID_ID, 404)
        return json_response(render_tracking(int(order_ref), state, removed))

    # ------------------------------------------------------------ products and variations (stock)
    def numeric(ref: str) -> int | None:
        return int(ref) if ref.isdigit() else None

    @app.get(API_PREFIX + "/products")
    def list_products(request: Request) -> Response:
        """Only the ``sku`` lookup (simple and variable parents; variations are not products here)."""
        sku = request.query_params.get("sku")
        found: list[dict[str, Any]] = []
        for product_id, variant in sorted(store.simple_products.items()):
            if sku is None or variant.listing(PLATFORM).sku == sku:
                found.append(products.simple(product_id, variant))
        for product_id, variants in sorted(store.variable_products.items()):
            if sku is None or variants[0].product_key == sku:
                found.append(products.variable(product_id, variants))
        headers = {"X-WP-Total": str(len(found)), "X-WP-TotalPages": "1"}
        return json_response(found, 200, headers)

    def product_answer(product_id: int) -> Response:
        if product_id in store.simple_products:
            return json_response(products.simple(product_id, store.simple_products[product_id]))
        return json_response(products.variable(product_id, store.variable_products[product_id]))

    @app.get(API_PREFIX + "/products/{product_ref}")
    def get_product(product_ref: str) -> Response:
        product_id = numeric(product_ref)
        if product_id not in store.simple_products and product_id not in store.variable_products:
            return json_response(PRODUCT_INVALID_ID, 404)
        assert product_id is not None
        return product_answer(product_id)

    @app.put(API_PREFIX + "/products/{product_ref}")
    async def update_product(product_ref: str, request: Request) -> Response:
        product_id = numeric(product_ref)
        if product_id not in store.simple_products and product_id not in store.variable_products:
            return json_response(PRODUCT_INVALID_ID, 404)
        assert product_id is not None
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        try:
            manage, quantity = parse_stock_update(body)
        except BadRequest as error:
            return json_response(error.body(), 400)
        if product_id in store.simple_products:
            apply_stock(store.simple_products[product_id], manage, quantity)
        else:  # parent-level stock of a variable product: the shop's, not any one variant's
            managed = store.parent_manage_stock.get(product_id, False) if manage is None else manage
            store.parent_manage_stock[product_id] = managed
            if managed and quantity is not None:
                store.parent_stock[product_id] = quantity
        return product_answer(product_id)

    def apply_stock(variant: Variant, manage: bool | None, quantity: int | None) -> None:
        """WooCommerce keeps ``stock_quantity`` only while it manages the stock (manage_stock true)."""
        if manage is not None:
            store.manage_stock[variant.index] = manage
        if store.manage_stock.get(variant.index, True) and quantity is not None:
            world.overlay.record_stock_set(PLATFORM, variant.index, 0, quantity, int(world.now_ts()))

    def variation_of(product_ref: str, variation_ref: str) -> tuple[int, Variant] | Response:
        product_id = numeric(product_ref)
        if product_id not in store.simple_products and product_id not in store.variable_products:
            return json_response(PRODUCT_INVALID_ID, 404)
        variant = store.variations.get(numeric(variation_ref) or -1)
        if variant is None or variant.listing(PLATFORM).product_id != product_id:
            return json_response(VARIATION_INVALID_ID, 404)
        assert product_id is not None
        return product_id, variant

    @app.get(API_PREFIX + "/products/{product_ref}/variations/{variation_ref}")
    def get_variation(product_ref: str, variation_ref: str) -> Response:
        found = variation_of(product_ref, variation_ref)
        if isinstance(found, Response):
            return found
        return json_response(products.variation(*found))

    @app.put(API_PREFIX + "/products/{product_ref}/variations/{variation_ref}")
    async def update_variation(product_ref: str, variation_ref: str, request: Request) -> Response:
        found = variation_of(product_ref, variation_ref)
        if isinstance(found, Response):
            return found
        body = await _json_body(request)
        if body is None:
            return json_response(INVALID_JSON, 400)
        try:
            manage, quantity = parse_stock_update(body)
        except BadRequest as error:
            return json_response(error.body(), 400)
        apply_stock(found[1], manage, quantity)
        return json_response(products.variation(*found))


def parse_flag(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    return _boolean(name, str(raw))


def create_app(
    world: World,
    *,
    access_token: str,
    faults: Faults,
    consumer_key: str = SANDBOX_LOGIN,
    site_timezone: str = DEFAULT_SITE_TIMEZONE,
    shipment_tracking: bool = True,
    checkout_drafts: bool = True,
) -> FastAPI:
    """The WooCommerce simulator over ``world``; ``access_token`` is the consumer secret it accepts.
    ``shipment_tracking``: whether the shop has the Shipment Tracking extension; ``checkout_drafts``:
    whether abandoned checkout drafts show in listings (both also switchable at run time with ``POST
    /_sandbox/woocommerce {"shipment_tracking": false, "checkout_drafts": false}``)."""
    if not access_token or not consumer_key:
        raise ValueError("the consumer key and secret must not be empty")
    renderer = WooRenderer(world, site_timezone=site_timezone)
    store = WooStore(world, shipment_tracking=shipment_tracking, checkout_drafts=checkout_drafts)
    products = CatalogRenderer(store, renderer.base_url)
    stats = RequestStats("api_requests", "throttled", "unauthorized", "injected_errors")
    count = stats.count

    app = FastAPI(title="ChannelHub WooCommerce sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.world = world
    app.state.faults = faults
    app.state.renderer = renderer
    app.state.store = store
    world.follow_skew(lambda: faults.clock_skew_seconds)
    served = ServedPages(faults)
    auth = WooAuthentication(consumer_key, access_token, faults)

    def route_exists(scope: Any) -> bool:
        for route in app.router.routes:
            if getattr(route, "path", "") == "/wp-json/{rest:path}":
                continue  # the catch-all that answers rest_no_route
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return True
        return False

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
        verdict = auth.authenticate(request)
        if verdict is not True:
            if verdict is None and not route_exists(request.scope):
                return json_response(NO_ROUTE, 404)  # WordPress routes before the permission check
            count("unauthorized")
            return json_response(verdict or refused(request.method, request.url.path), 401)
        if request.method in WRITE_METHODS and (failure := store.take_write_failure()) is not None:
            # The gateway loses a write's answer: before WordPress saw it, or after it was applied.
            count("injected_errors")
            if failure == "after":
                applied = await call_next(request)
                async for _ in applied.body_iterator:  # type: ignore[attr-defined]
                    pass
            page = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
            page += "</h1></center></body></html>"
            return Response(page, 502, media_type="text/html")
        response = await call_next(request)
        if response.status_code == 200 and faults.roll(faults.truncated_body_rate):
            body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
            kept = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            return Response(body[: max(1, len(body) // 2)], 200, headers=kept)
        return response

    hold_back_answers(app, faults, ("/wp-json/",))

    def link_header(request: Request, page: int, total_pages: int) -> str:
        query = [
            (k, v)
            for k, v in request.query_params.multi_items()
            if k != "page" and k not in CREDENTIAL_PARAMS
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
        faults.step_clock(world.clock)
        try:
            listing = parse_listing(request, renderer)
        except BadRequest as error:
            return json_response(error.body(), 400)
        # A lagging page cache in front of WordPress: the page it served last, for the page asked for now.
        key = ServedPages.key(
            sorted((k, v) for k, v in request.query_params.multi_items() if k not in NOT_FILTERS)
        )
        if (replayed := served.replay(key, listing.page, first=listing.page == 1)) is not None:
            return json_response(*replayed)
        now_ts = world.now_ts()
        entries = listing_entries(renderer, listing, now_ts, drafts=store.checkout_drafts)
        if listing.descending:
            entries.reverse()
        total = len(entries)
        start = listing.offset if listing.offset is not None else (listing.page - 1) * listing.per_page
        total_pages = math.ceil(total / listing.per_page)
        orders = []
        for index, draft in faults.shuffled(entries[start : start + listing.per_page]):
            if draft:
                orders.append(renderer.render_draft(index))
            elif (state := world.state(index, now_ts)) is not None:
                orders.append(render_order(faults, renderer, state, store))
        headers = {
            "X-WP-Total": str(total),
            "X-WP-TotalPages": str(total_pages),
            "Link": link_header(request, listing.page, total_pages),
        }
        served.remember(key, listing.page, (orders, 200, headers))
        return json_response(orders, 200, headers)

    def state_of(order_ref: str) -> OrderState | None:
        index = renderer.index_of(int(order_ref)) if order_ref.isdigit() else None
        return world.state(index, world.now_ts()) if index is not None else None

    @app.get(API_PREFIX + "/orders/{order_ref}")
    def get_order(order_ref: str) -> Response:
        state = state_of(order_ref)
        if state is None:
            draft = renderer.draft_index_of(int(order_ref)) if order_ref.isdigit() else None
            if draft is not None and store.checkout_drafts and renderer.draft_ts(draft) <= world.now_ts():
                return json_response(renderer.render_draft(draft))
            return json_response(INVALID_ID, 404)
        return json_response(render_order(faults, renderer, state, store))

    @app.get(API_PREFIX + "/orders/{order_ref}/refunds")
    def list_refunds(order_ref: str, request: Request) -> Response:
        """Newest first (WordPress's default ``order=desc`` by date). An unknown order lists nothing:
        WooCommerce queries refunds by parent id without checking the parent [U]."""
        params = request.query_params
        try:
            page = _integer("page", params["page"], 1) if "page" in params else 1
            per_page = (
                _integer("per_page", params["per_page"], 1, MAX_PER_PAGE)
                if "per_page" in params
                else DEFAULT_PER_PAGE
            )
        except BadRequest as error:
            return json_response(error.body(), 400)
        state = state_of(order_ref)
        refunds = renderer.served_refunds(state) if state is not None else []
        chosen = refunds[(page - 1) * per_page : page * per_page]
        assert state is not None or not chosen
        body = [renderer.render_refund(state, refund) for refund in chosen]  # type: ignore[arg-type]
        headers = {
            "X-WP-Total": str(len(refunds)),
            "X-WP-TotalPages": str(math.ceil(len(refunds) / per_page)),
        }
        return json_response(body, 200, headers)

    @app.get(API_PREFIX + "/orders/{order_ref}/refunds/{refund_ref}")
    def get_refund(order_ref: str, refund_ref: str) -> Response:
        state = state_of(order_ref)
        for refund in renderer.served_refunds(state) if state is not None else []:
            if str(renderer.order_id(state.index) + refund.seq) == refund_ref:  # type: ignore[union-attr]
                return json_response(renderer.render_refund(state, refund))  # type: ignore[arg-type]
        return json_response(_error("woocommerce_rest_shop_order_refund_invalid_id", "Invalid ID.", 404), 404)

    add_write_routes(app, world, renderer, store, products)

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
            "store": store.summary(),
        },
    )

    @app.get("/_sandbox/woocommerce")
    def get_store_settings() -> Response:
        return json_response(store.summary())

    @app.post("/_sandbox/woocommerce")
    async def set_store_settings(request: Request) -> Response:
        """Body: any of {"shipment_tracking": bool, "checkout_drafts": bool, "fail_writes": n,
        "fail_writes_after_apply": bool}."""
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object of settings")
            store.configure(changes)
        except ValueError as error:
            return json_response({"errors": str(error)}, 400)
        return json_response(store.summary())

    return app
