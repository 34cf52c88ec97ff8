"""WooCommerce REST v3 order JSON from a world order state: the site's clock, statuses, line items, refunds,
drafts, and ``render_order`` (broken the way the fault profile says)."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.common import two_decimals
from sandbox.faults import Faults
from sandbox.woocommerce.store import TRACKING_META_KEY, WooStore
from sandbox.woocommerce.wire import (
    API_PREFIX,
    CUSTOMER_ID_BASE,
    DEFAULT_SITE_TIMEZONE,
    DRAFT_ID_OFFSET,
    DRAFT_ITEM_ID_BASE,
    DRAFT_LEAD_SECONDS,
    DRAFT_SHARE,
    LINE_ITEM_ID_BASE,
    LINE_ITEM_STRIDE,
    ORDER_ID_BASE,
    ORDER_ID_STRIDE,
    PLATFORM,
    REFUND_ITEM_ID_BASE,
    RESTOCKING_STATUSES,
    TAX_RATE_ID_BASE,
    WC_VERSION,
)
from sandbox.world import Address, OrderLine, OrderState, Refund, World, money


def _negative(value: Decimal) -> str:
    """An amount a refund takes back, as WooCommerce writes it ("-9.00"; nothing is "0.00", not "-0.00")."""
    return two_decimals(-value) if value else "0.00"


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
    """The WooCommerce status of a world order state (see the package docstring)."""
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
            "amount": two_decimals(refund.amount),
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
            else [
                {"id": tax_rate_id, "total": two_decimals(line.tax), "subtotal": two_decimals(subtotal_tax)}
            ]
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
            "subtotal": two_decimals(subtotal),
            "subtotal_tax": two_decimals(subtotal_tax),
            "total": two_decimals(total),
            "total_tax": two_decimals(line.tax),
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
            {"id": order_id + refund.seq, "reason": refund.note, "total": "-" + two_decimals(refund.amount)}
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
                    "tax_total": two_decimals(order.total_tax),
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
            "discount_total": two_decimals(order.total_discount),
            "discount_tax": "0.00",
            "shipping_total": two_decimals(order.shipping.price),
            "shipping_tax": "0.00",
            "cart_tax": two_decimals(order.total_tax),
            "total": two_decimals(order.total),
            "total_tax": two_decimals(order.total_tax),
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
                    "total": two_decimals(order.shipping.price),
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
                    "discount": two_decimals(order.discount.amount),
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
