"""WooCommerce's pushes on the shared template (``connectors.shipping``): the shipment (Shipment Tracking
extension, or the core note fallback), the carrier names (entries of ``connectors.carriers``' one table)
and the stock set. The rules, and why the connector reads first and keeps a ledger of its own pushes in
private order notes, are in connector.py's docstring (Pushes); the sources in docs/platform-notes.md.

Refusals: WooCommerce's are HTTP statuses (400 a bad parameter, 404 no such order or product), declared in
``RULES``; other trouble raises. What the shop would wrongly accept (a closed order, a second shipment of a
completed one, more units than remain) is refused here from the read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from connectors.errors import ApiError
from connectors.pushes import PushResult, ShipmentLine, ShipmentPush, StockPush
from connectors.shipping import (
    ShipmentRefused,
    ShipmentRules,
    ShipmentState,
    ShipmentSteps,
    push_shipment,
    refusal_words,
)

if TYPE_CHECKING:
    from platforms.woocommerce.connector import WooCommerceConnector

CLOSED_STATUSES = frozenset({"cancelled", "refunded", "failed", "trash"})

# Carrier key (connectors.carriers) -> what the customer reads (also the fallback note's carrier).
CARRIER_CODES: dict[str, str] = {
    "UPS": "UPS",
    "USPS": "USPS",
    "FEDEX": "FedEx",
    "ONTRAC": "OnTrac",
    "DHL_US": "DHL US",
    "DHL": "DHL",
    "ROYAL_MAIL": "Royal Mail",
    "EVRI": "EVRi",
    "CANADA_POST": "Canada Post",
    "AUSTRALIA_POST": "Australia Post",
    "POSTNL": "PostNL",
    "SF": "SF Express",
    "YTO": "YTO Express",
    "ZTO": "ZTO Express",
    "STO": "STO Express",
    "YUNDA": "Yunda Express",
    "JD": "JD Logistics",
    "EMS": "China EMS",
}
# The Shipment Tracking extension's own provider name for a carrier (its spelling: "Fedex"), used when the
# shop's provider list has it; every other carrier goes as a custom provider (name, and a link where one is
# known: "{number}" is replaced). Chinese express companies are not in the extension's list.
PROVIDERS: dict[str, str] = {
    "UPS": "UPS",
    "USPS": "USPS",
    "FedEx": "Fedex",
    "OnTrac": "OnTrac",
    "DHL US": "DHL US",
    "DHL": "DHL",
    "Royal Mail": "Royal Mail",
    "EVRi": "EVRi",
    "Canada Post": "Canada Post",
    "Australia Post": "Australia Post",
    "PostNL": "PostNL",
}
CUSTOM_LINKS: dict[str, str] = {
    "SF Express": "https://www.sf-express.com/chn/en/waybill/waybill-detail/{number}"
}


def _words(error: ApiError) -> str:
    """The platform's own words for a refusal: ``code: message (HTTP status)``."""
    code = f"{error.code}: " if error.code else ""
    return f"{code}{error.message} (HTTP {error.status})"


RULES = ShipmentRules(
    platform="WooCommerce",
    carrier_codes=CARRIER_CODES,
    refusal_statuses=frozenset({400, 404}),
    words=_words,
    unknown_carrier=(
        "carrier {carrier!r} has no WooCommerce mapping (neither a Shipment Tracking provider nor a custom "
        "provider in platforms.woocommerce.pushes.CARRIER_CODES)"
    ),
)

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


def _ledger_key(shipment_key: str) -> str:
    return re.sub(r"\s+", "_", shipment_key.strip())


def ledger_note(push: ShipmentPush, carrier: str, replaces: str | None = None) -> str:
    lines = ", ".join(f"{line.external_line_id}x{line.quantity}" for line in push.lines)
    key = _ledger_key(push.shipment_key)
    note = f"ChannelHub shipment {key}: {carrier} {push.tracking_number} (lines {lines})"
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


@dataclass(frozen=True)
class _Read:
    """What the read found, for the steps after it."""

    ids: dict[str, str]
    status: str
    mode: str  # "shipment_tracking" (the extension) or "order_note" (the core fallback)
    trackings: list[dict[str, Any]] | None
    mine: list[LedgerEntry]  # this shipment key's earlier pushes


class WooCommerceShipment(ShipmentSteps):
    def __init__(self, connector: WooCommerceConnector) -> None:
        self.connector = connector

    def read_shipment(self, push: ShipmentPush, carrier: str) -> ShipmentState:
        order_id = push.external_order_id
        if not order_id.isdigit():
            raise ShipmentRefused(f"WooCommerce order ids are numeric, got {order_id!r}")
        ids = {"order_id": order_id}
        connector = self.connector
        order = connector.call("order", ids)
        status = str(order.get("status"))
        if status in CLOSED_STATUSES:  # nothing else counts: not even a number already there
            return ShipmentState(
                cannot_ship=f"order {order_id} is {status!r} in WooCommerce: nothing to ship"
            )
        notes = list(connector.call("order_notes", ids))
        ledger = read_ledger(notes)
        trackings = connector.shipment_trackings(order_id)
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
        if status == "completed":
            problem: str | None = (
                f"order {order_id} is already 'completed' in WooCommerce (every item shipped); "
                f"tracking {push.tracking_number} is a second shipment of shipped items"
            )
        else:
            # A previous number that never reached the channel ships nothing: its units are not counted.
            counted = [entry for entry in standing(ledger) if entry.number != push.previous_tracking_number]
            problem = _check_quantities(order, push.lines, counted)
        return ShipmentState(
            shipped_with=frozenset(on_order | {entry.number for entry in mine}),
            on_platform=frozenset(on_order),
            # No previous number named (or not on the order): this shipment's own last number is replaced.
            replaces=mine[-1].number if mine else None,
            cannot_ship=problem,
            order=_Read(
                ids, status, "order_note" if trackings is None else "shipment_tracking", trackings, mine
            ),
        )

    def on_already_done(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, result: PushResult
    ) -> PushResult:
        """Add what an earlier try did not finish: its ledger note, the completion."""
        read: _Read = state.order
        number = push.tracking_number
        repairs = []
        if not any(entry.number == number for entry in read.mine):
            previous = push.previous_tracking_number
            note = ledger_note(push, carrier, previous if previous != number else None)
            self.connector.call("add_order_note", read.ids, body={"note": note, "customer_note": False})
            repairs.append("ledger note added")
        if push.completes_order and read.status != "completed":
            self.connector.call("update_order", read.ids, body={"status": "completed"})
            repairs.append("order completed")
        detail = f"tracking {number} is already on WooCommerce order {push.external_order_id}"
        return PushResult(
            "pushed" if "order completed" in repairs else "already_done",
            detail + (f"; {', '.join(repairs)}" if repairs else ""),
            extra={"mode": read.mode},
        )

    def send_shipment(self, push: ShipmentPush, carrier: str, state: ShipmentState) -> PushResult:
        return self._record(push, carrier, state.order, None)

    def update_tracking(
        self, push: ShipmentPush, carrier: str, state: ShipmentState, replacing: str
    ) -> PushResult:
        """The extension has no update call: the old item goes, the new one comes; in the fallback a new
        customer note says which number it replaces (notes cannot be edited)."""
        return self._record(push, carrier, state.order, replacing)

    def _record(self, push: ShipmentPush, carrier: str, read: _Read, replaced: str | None) -> PushResult:
        connector, ids, number = self.connector, read.ids, push.tracking_number
        order_id = push.external_order_id
        extra = {"mode": read.mode}
        if replaced is not None:
            extra.update(action="update_tracking", previous_tracking_number=replaced)
        if read.trackings is not None:
            for item in read.trackings if replaced is not None else ():
                if str(item.get("tracking_number")) == replaced:
                    self._delete_tracking(order_id, str(item.get("tracking_id")))
            body: dict[str, Any] = {
                "tracking_number": number,
                "date_shipped": push.shipped_at.astimezone(UTC).strftime("%Y-%m-%d"),
            }
            provider = PROVIDERS.get(carrier)
            if provider and provider in connector.shipment_providers(order_id):
                body["tracking_provider"] = provider
            else:
                body["custom_tracking_provider"] = carrier
                body["custom_tracking_link"] = CUSTOM_LINKS.get(carrier, "").replace("{number}", number)
            created = connector.call("add_shipment_tracking", ids, body=body)
            reference = str(created.get("tracking_id"))
        else:
            text = f"Shipped via {carrier} {number}"
            if replaced is not None:
                text += f" (replaces {replaced})"  # notes cannot be edited: the buyer reads the change
            created = connector.call("add_order_note", ids, body={"note": text, "customer_note": True})
            reference = str(created.get("id"))
        note = ledger_note(push, carrier, replaced)
        connector.call("add_order_note", ids, body={"note": note, "customer_note": False})
        if push.completes_order and read.status != "completed":
            connector.call("update_order", ids, body={"status": "completed"})
            extra["completed"] = "true"
        verb = "replaced the tracking of" if replaced is not None else "recorded on"
        return PushResult("pushed", f"{carrier} {number} {verb} order {order_id}", reference, extra)

    def _delete_tracking(self, order_id: str, tracking_id: str) -> None:
        try:
            self.connector.call(
                "delete_shipment_tracking", {"order_id": order_id, "tracking_id": tracking_id}
            )
        except ApiError as error:  # already gone (a replayed DELETE, or the merchant removed it)
            if error.status != 404 or error.code == "rest_no_route":
                raise


def _check_quantities(
    order: Mapping[str, Any], lines: tuple[ShipmentLine, ...], ledger: list[LedgerEntry]
) -> str | None:
    """Why the shop would be wrong to take these lines, or None. WooCommerce has no shipped quantities:
    the units already pushed come from the connector's ledger notes."""
    if not lines:
        return "a shipment needs at least one line"
    ordered = {str(item.get("id")): int(item.get("quantity") or 0) for item in order.get("line_items", [])}
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


def push_woocommerce_shipment(connector: WooCommerceConnector, push: ShipmentPush) -> PushResult:
    """Record ``push`` on the WooCommerce order (connector.py's docstring has every rule)."""
    return push_shipment(WooCommerceShipment(connector), RULES, push)


def stock_target(product_id: str, variation_id: str) -> tuple[str, str, dict[str, str], str]:
    """(read endpoint, write endpoint, path ids, ref) of a product's or a variation's stock."""
    if variation_id.isdigit() and variation_id not in ("0", product_id):
        ids = {"product_id": product_id, "variation_id": variation_id}
        return "variation", "update_variation", ids, f"{product_id}/{variation_id}"
    return "product", "update_product", {"product_id": product_id}, product_id


def set_stock(connector: WooCommerceConnector, push: StockPush) -> PushResult:
    """Set a product's or variation's ``stock_quantity``. WooCommerce has no compare-and-set: with
    ``expected_current`` the level is read first and a mismatch refused (not atomic; connector.py)."""
    product_id = (push.channel_product_id or "").strip()
    variation_id = (push.channel_variant_id or "").strip()
    if not product_id.isdigit():
        return PushResult(
            "rejected",
            f"WooCommerce stock needs the listing's numeric product id (got {push.channel_product_id!r}, "
            f"SKU {push.merchant_sku!r})",
        )
    read, write, ids, ref = stock_target(product_id, variation_id)
    try:
        if push.expected_current is not None:
            current = connector.call(read, ids).get("stock_quantity")
            if current != push.expected_current:
                return PushResult(
                    "rejected",
                    f"stock_quantity of {ref} is {current}, expected {push.expected_current} "
                    "(WooCommerce has no compare-and-set: checked by reading first)",
                    ref,
                )
            if current == push.quantity:
                return PushResult("already_done", f"stock_quantity of {ref} is already {current}", ref)
        updated = connector.call(write, ids, body={"manage_stock": True, "stock_quantity": push.quantity})
    except ApiError as error:
        words = refusal_words(RULES, error)
        if words is None:
            raise
        return PushResult("rejected", words, ref)
    return PushResult("pushed", f"stock_quantity of {ref} set to {updated.get('stock_quantity')}", ref)
