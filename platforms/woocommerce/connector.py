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

Pushes (``push_shipment``, ``set_stock``; results per ``connectors.pushes``):
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
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from connectors.auth import AuthSpec, BasicAuth, QueryParams, Secret
from connectors.errors import ApiError, AuthError, TransientError
from connectors.framework import Connector, Endpoint, PlatformSpec
from connectors.http import ErrorPolicy, ErrorShape, RateLimitSignal, RetryPolicy
from connectors.oauth1 import OAuth1OneLegged
from connectors.paginators import PageNumberPaginator
from connectors.pushes import PushResult, ShipmentLine, ShipmentPush, StockPush
from connectors.windows import TimeFormat, WindowSpec

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
CLOSED_STATUSES = frozenset({"cancelled", "refunded", "failed", "trash"})
AUTH_KINDS = ("auto", "oauth1", "basic", "query")
# Where an order payload carries its refund objects (GET /orders/{id}/refunds). Not a WooCommerce field: the
# connector adds it, the schema checks it, the mapping reads it.
REFUNDS_KEY = "channelhub_refunds"


@dataclass(frozen=True)
class Carrier:
    """How a hub carrier name is told to WooCommerce: a Shipment Tracking provider name when the shop's
    provider list has it, else a custom provider (name and a link with the number filled in)."""

    name: str  # what the customer reads (also the fallback note's carrier)
    provider: str | None  # the extension's built-in provider name
    custom_link: str = ""  # "{number}" is replaced; "" leaves a custom provider without a link


# Hub carrier names (upper case, as warehouses report them) -> WooCommerce. Built-in names are the
# extension's own spelling ("Fedex", "DHL US"); Chinese express companies are not in its list.
CARRIERS: dict[str, Carrier] = {
    "UPS": Carrier("UPS", "UPS"),
    "USPS": Carrier("USPS", "USPS"),
    "FEDEX": Carrier("FedEx", "Fedex"),
    "ONTRAC": Carrier("OnTrac", "OnTrac"),
    "DHL US": Carrier("DHL US", "DHL US"),
    "DHL": Carrier("DHL", "DHL"),
    "ROYAL MAIL": Carrier("Royal Mail", "Royal Mail"),
    "EVRI": Carrier("EVRi", "EVRi"),
    "CANADA POST": Carrier("Canada Post", "Canada Post"),
    "AUSTRALIA POST": Carrier("Australia Post", "Australia Post"),
    "POSTNL": Carrier("PostNL", "PostNL"),
    "SF": Carrier("SF Express", None, "https://www.sf-express.com/chn/en/waybill/waybill-detail/{number}"),
    "YTO": Carrier("YTO Express", None),
    "ZTO": Carrier("ZTO Express", None),
    "STO": Carrier("STO Express", None),
    "YUNDA": Carrier("Yunda Express", None),
    "JD": Carrier("JD Logistics", None),
    "EMS": Carrier("China EMS", None),
}
_LEDGER = re.compile(
    r"^ChannelHub shipment (?P<key>\S+): (?P<carrier>.+) (?P<number>\S+) \(lines (?P<lines>[0-9x, ]*)\)"
    r"(?: replacing (?P<replaces>\S+))?$"
)
_SHIPPED_VIA = re.compile(r"^Shipped via (?P<carrier>.+) (?P<number>\S+?)(?: \(replaces \S+\))?$")


@dataclass(frozen=True)
class LedgerEntry:
    """One earlier push, read back from its private order note."""

    key: str
    number: str
    lines: tuple[tuple[str, int], ...]
    replaces: str | None = None  # the tracking number this push corrected


def carrier_for(name: str) -> Carrier | None:
    return CARRIERS.get(" ".join(name.split()).upper())


def _ledger_key(shipment_key: str) -> str:
    return re.sub(r"\s+", "_", shipment_key.strip())


def ledger_note(push: ShipmentPush, carrier: Carrier, replaces: str | None = None) -> str:
    lines = ", ".join(f"{line.external_line_id}x{line.quantity}" for line in push.lines)
    key = _ledger_key(push.shipment_key)
    note = f"ChannelHub shipment {key}: {carrier.name} {push.tracking_number} (lines {lines})"
    return note + (f" replacing {replaces}" if replaces else "")


def read_ledger(notes: list[dict[str, Any]]) -> list[LedgerEntry]:
    """The connector's own notes (private ones), oldest first."""
    entries = []
    for note in reversed(notes):  # WooCommerce lists notes newest first
        if note.get("customer_note"):
            continue
        match = _LEDGER.match(str(note.get("note", "")).strip())
        if not match:
            continue
        lines = []
        for part in filter(None, (p.strip() for p in match["lines"].split(","))):
            line_id, _, quantity = part.partition("x")
            if quantity.isdigit():
                lines.append((line_id, int(quantity)))
        entries.append(LedgerEntry(match["key"], match["number"], tuple(lines), match["replaces"]))
    return entries


def standing(ledger: list[LedgerEntry]) -> list[LedgerEntry]:
    """The pushes still in force: per shipment key the latest, less any whose number a later push
    corrected (a correction ships the same units under a new number, never more units)."""
    latest = {entry.key: entry for entry in ledger}
    corrected = {entry.replaces for entry in ledger if entry.replaces}
    return [entry for entry in latest.values() if entry.number not in corrected]


def _words(error: ApiError) -> str:
    """The platform's own words for a refusal: ``code: message (HTTP status)``."""
    code = f"{error.code}: " if error.code else ""
    return f"{code}{error.message} (HTTP {error.status})"


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
        """Record ``push`` on the WooCommerce order (see the module docstring for every rule)."""
        order_id = push.external_order_id
        if not order_id.isdigit():
            return PushResult("rejected", f"WooCommerce order ids are numeric, got {order_id!r}")
        carrier = carrier_for(push.carrier)
        if carrier is None:
            return PushResult(
                "rejected",
                f"carrier {push.carrier!r} has no WooCommerce mapping (neither a Shipment Tracking provider "
                "nor a custom provider in platforms.woocommerce.connector.CARRIERS)",
            )
        ids = {"order_id": order_id}
        try:
            order = self.call("order", ids)
        except AuthError:
            raise
        except ApiError as error:
            if error.status in (400, 404):
                return PushResult("rejected", _words(error))
            raise
        status = str(order.get("status"))
        if status in CLOSED_STATUSES:
            return PushResult("rejected", f"order {order_id} is {status!r} in WooCommerce: nothing to ship")
        notes = list(self.call("order_notes", ids))
        ledger = read_ledger(notes)
        trackings = self.shipment_trackings(order_id)
        mode = "order_note" if trackings is None else "shipment_tracking"
        number = push.tracking_number
        if trackings is not None:
            on_order = {str(t.get("tracking_number")) for t in trackings}
        else:
            on_order = {
                m["number"]
                for note in notes
                if note.get("customer_note") and (m := _SHIPPED_VIA.match(str(note.get("note", "")).strip()))
            }
        key = _ledger_key(push.shipment_key)
        mine = [entry for entry in ledger if entry.key == key]
        previous = push.previous_tracking_number

        if number in on_order or any(entry.number == number for entry in mine):
            repairs = []
            if not any(entry.number == number for entry in mine):
                corrects = previous if previous != number else None
                note = ledger_note(push, carrier, corrects)
                self.call("add_order_note", ids, body={"note": note, "customer_note": False})
                repairs.append("ledger note added")
            if push.completes_order and status != "completed":
                self.call("update_order", ids, body={"status": "completed"})
                repairs.append("order completed")
            detail = f"tracking {number} is already on WooCommerce order {order_id}"
            return PushResult(
                "pushed" if "order completed" in repairs else "already_done",
                detail + (f"; {', '.join(repairs)}" if repairs else ""),
                extra={"mode": mode},
            )

        # A correction replaces the number the channel shows: the push's previous number when the order
        # carries it (whatever shipment key its ledger note has), else this shipment's own last number.
        previous = push.previous_tracking_number
        if previous and previous != number and previous in on_order:
            replaced: str | None = previous
        else:
            replaced = mine[-1].number if mine else None
        if replaced is None:
            if status == "completed":
                return PushResult(
                    "rejected",
                    f"order {order_id} is already 'completed' in WooCommerce (every item shipped); "
                    f"tracking {number} is a second shipment of shipped items",
                )
            # A previous number that never reached the channel ships nothing: its units are not counted.
            counted = [entry for entry in standing(ledger) if entry.number != previous]
            refusal = self._check_quantities(order, push.lines, counted)
            if refusal:
                return PushResult("rejected", refusal)

        extra = {"mode": mode}
        if replaced is not None:
            extra.update(action="update_tracking", previous_tracking_number=replaced)
        if trackings is not None:
            # The extension has no update call: the old item goes, the new one comes.
            for item in trackings if replaced is not None else ():
                if str(item.get("tracking_number")) == replaced:
                    self._delete_tracking(order_id, str(item.get("tracking_id")))
            body: dict[str, Any] = {
                "tracking_number": number,
                "date_shipped": push.shipped_at.astimezone(UTC).strftime("%Y-%m-%d"),
            }
            if carrier.provider and carrier.provider in self.shipment_providers(order_id):
                body["tracking_provider"] = carrier.provider
            else:
                body["custom_tracking_provider"] = carrier.name
                body["custom_tracking_link"] = carrier.custom_link.replace("{number}", number)
            created = self.call("add_shipment_tracking", ids, body=body)
            reference = str(created.get("tracking_id"))
        else:
            text = f"Shipped via {carrier.name} {number}"
            if replaced is not None:
                text += f" (replaces {replaced})"  # notes cannot be edited: the buyer reads the change
            created = self.call("add_order_note", ids, body={"note": text, "customer_note": True})
            reference = str(created.get("id"))
        note = ledger_note(push, carrier, replaced)
        self.call("add_order_note", ids, body={"note": note, "customer_note": False})
        if push.completes_order and status != "completed":
            self.call("update_order", ids, body={"status": "completed"})
            extra["completed"] = "true"
        verb = "replaced the tracking of" if replaced is not None else "recorded on"
        return PushResult("pushed", f"{carrier.name} {number} {verb} order {order_id}", reference, extra)

    def _delete_tracking(self, order_id: str, tracking_id: str) -> None:
        try:
            self.call("delete_shipment_tracking", {"order_id": order_id, "tracking_id": tracking_id})
        except ApiError as error:  # already gone (a replayed DELETE, or the merchant removed it)
            if error.status != 404 or error.code == "rest_no_route":
                raise

    @staticmethod
    def _check_quantities(
        order: Mapping[str, Any], lines: tuple[ShipmentLine, ...], ledger: list[LedgerEntry]
    ) -> str | None:
        """Why the shop would be wrong to take these lines, or None. WooCommerce has no shipped quantities:
        the units already pushed come from the connector's ledger notes."""
        if not lines:
            return "a shipment needs at least one line"
        ordered = {
            str(item.get("id")): int(item.get("quantity") or 0) for item in order.get("line_items", [])
        }
        shipped: dict[str, int] = {}
        for entry in ledger:
            for line_id, quantity in entry.lines:
                shipped[line_id] = shipped.get(line_id, 0) + quantity
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line.external_line_id] = wanted.get(line.external_line_id, 0) + line.quantity
        for line_id, quantity in wanted.items():
            if line_id not in ordered:
                return f"order {order.get('id')} has no line item {line_id}"
            if quantity <= 0:
                return f"line item {line_id}: quantity must be positive, got {quantity}"
            remaining = ordered[line_id] - shipped.get(line_id, 0)
            if quantity > remaining:
                return (
                    f"line item {line_id}: {quantity} to ship but only {remaining} of {ordered[line_id]} "
                    "remain unshipped"
                )
        return None

    def listed_stock(self, listing: StockPush) -> int | None:
        """The product's or variation's ``stock_quantity`` (None: the shop does not manage its stock).
        ``listing.quantity`` is ignored."""
        product_id = (listing.channel_product_id or "").strip()
        if not product_id.isdigit():
            raise ApiError(f"a WooCommerce product id is numeric, got {product_id!r}", platform=self.platform)
        read, _, ids, _ = _stock_target(product_id, (listing.channel_variant_id or "").strip())
        value = self.call(read, ids).get("stock_quantity")
        return None if value is None else int(value)

    def set_stock(self, push: StockPush) -> PushResult:
        """Set a product's or variation's ``stock_quantity`` (see the module docstring on compare-and-set)."""
        product_id = (push.channel_product_id or "").strip()
        variation_id = (push.channel_variant_id or "").strip()
        if not product_id.isdigit():
            return PushResult(
                "rejected",
                f"WooCommerce stock needs the listing's numeric product id (got {push.channel_product_id!r}, "
                f"SKU {push.merchant_sku!r})",
            )
        read, write, ids, ref = _stock_target(product_id, variation_id)
        try:
            if push.expected_current is not None:
                current = self.call(read, ids).get("stock_quantity")
                if current != push.expected_current:
                    return PushResult(
                        "rejected",
                        f"stock_quantity of {ref} is {current}, expected {push.expected_current} "
                        "(WooCommerce has no compare-and-set: checked by reading first)",
                        ref,
                    )
                if current == push.quantity:
                    return PushResult("already_done", f"stock_quantity of {ref} is already {current}", ref)
            updated = self.call(write, ids, body={"manage_stock": True, "stock_quantity": push.quantity})
        except AuthError:
            raise
        except ApiError as error:
            if error.status in (400, 404):
                return PushResult("rejected", _words(error), ref)
            raise
        return PushResult("pushed", f"stock_quantity of {ref} set to {updated.get('stock_quantity')}", ref)


def _stock_target(product_id: str, variation_id: str) -> tuple[str, str, dict[str, str], str]:
    """(read endpoint, write endpoint, path ids, ref) of a product's or a variation's stock."""
    if variation_id.isdigit() and variation_id not in ("0", product_id):
        ids = {"product_id": product_id, "variation_id": variation_id}
        return "variation", "update_variation", ids, f"{product_id}/{variation_id}"
    return "product", "update_product", {"product_id": product_id}, product_id


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
    return WooCommerceConnector.from_connection(
        credentials.base_url,
        credentials.login,
        credentials.secret,
        page_size=page_size,
        auth=str(extra.get("auth") or "auto"),
        ca_bundle=extra.get("ca_bundle") or None,
        timeout=channel.http_timeout,
    )
