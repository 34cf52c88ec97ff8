"""What the hub pushes to a channel (shipment tracking, sellable stock) and what came of it.

Every connector that pushes implements ``push_shipment(ShipmentPush) -> PushResult`` and
``set_stock(StockPush) -> PushResult``. A platform's refusal that retrying cannot fix (shipping more than
ordered, an unknown carrier, a closed fulfilment order, a stale compare-and-set) is a ``PushResult``, status
``rejected`` and the platform's own error text; "already shipped with this tracking" is ``already_done``.
Transient trouble (5xx, timeouts, rate limits) raises, so the caller's retry policy applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

PushStatus = Literal["pushed", "already_done", "rejected"]


@dataclass(frozen=True, slots=True)
class ShipmentLine:
    external_line_id: str  # the channel's line id, as the canonical order carries it
    quantity: int
    channel_product_id: str | None = None
    channel_variant_id: str | None = None


@dataclass(frozen=True, slots=True)
class ShipmentPush:
    external_order_id: str
    shipment_key: str  # the hub's id of this shipment: lets a connector recognise its own earlier push
    carrier: str  # as the warehouse reported it, e.g. "UPS", "SF", "YTO"; each connector maps it to a code
    tracking_number: str
    lines: tuple[ShipmentLine, ...]
    shipped_at: datetime
    completes_order: bool  # after this shipment every unit of the order has shipped
    # A correction: the number the shipment carried before (the channel may hold it). A connector that finds
    # it on the platform changes that parcel's tracking with the platform's update call; one that does not
    # (the old number never reached the channel) pushes the shipment as new.
    previous_tracking_number: str | None = None


@dataclass(frozen=True, slots=True)
class StockPush:
    merchant_sku: str | None
    channel_product_id: str | None
    channel_variant_id: str | None
    quantity: int  # the sellable quantity to set (a full set, never a delta)
    # None (what the hub sends): the connector sets the quantity, using the platform's compare-and-set against
    # the level it reads just before, where the platform has one (Shopify), so a sale landing in between is
    # never overwritten. A value: compare against exactly that. The hub does not send what it last pushed:
    # every sale on the channel lowers the channel's own count, so that compare would fail after each sale.
    expected_current: int | None = None
    location_ref: str | None = None  # the channel's own location id where stock is per location (Shopify)


@dataclass(frozen=True, slots=True)
class PushResult:
    status: PushStatus
    detail: str = ""  # the platform's words for a rejection, or what it answered
    platform_ref: str | None = None  # fulfilment id, delivery id, ...
    extra: dict[str, str] = field(default_factory=dict)
