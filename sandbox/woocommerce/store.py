"""The shop-side state the hub writes that the world does not model (``WooStore``): Shipment Tracking
items, order notes, ``manage_stock`` flags, parent stock and the sandbox's knobs."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.woocommerce.wire import PLATFORM, _error
from sandbox.world import Variant, World

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
