"""Builders for canonical orders and a throw-away shop (channel, location, SKUs, stock) in a warehouse.

Used by the warehouse tests, the race test and benchmarks: each ``Shop`` gets codes of its own, so many
can share one database without seeing each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine

from canonical.order import Address, CanonicalOrder, Customer, OrderLine, Totals
from warehouse import catalog, stock
from warehouse.ingest import IngestCounts, Landed, Rejected, ingest_orders

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_line(
    line_id: str,
    sku: str | None,
    quantity: int,
    *,
    shipped: int = 0,
    refunded: int = 0,
    restocked: int = 0,
    unit_price: str = "10.00",
    product_id: str | None = None,
    variant_id: str | None = None,
) -> OrderLine:
    price = Decimal(unit_price)
    return OrderLine(
        external_line_id=line_id,
        sku=sku,
        channel_product_id=product_id,
        channel_variant_id=variant_id,
        title=f"item {sku or product_id}",
        quantity=quantity,
        unit_price=price,
        line_total=price * quantity,
        shipped_quantity=shipped,
        refunded_quantity=refunded,
        restocked_quantity=restocked,
    )


def make_order(
    external_id: str,
    lines: Sequence[OrderLine],
    *,
    updated_at: datetime = T0,
    created_at: datetime = T0,
    payment_status: str = "paid",
    fulfillment_status: str = "unfulfilled",
    cancelled: bool = False,
    currency: str = "USD",
    shipping: str = "0.00",
    tax: str = "0.00",
    refunded: str = "0.00",
    platform: str = "shopify",
) -> CanonicalOrder:
    subtotal = sum((line.line_total for line in lines), Decimal("0.00"))
    return CanonicalOrder(
        platform=platform,
        external_id=external_id,
        number=f"#{external_id}",
        created_at=created_at,
        updated_at=updated_at,
        currency=currency,
        payment_status=payment_status,  # type: ignore[arg-type]
        fulfillment_status=fulfillment_status,  # type: ignore[arg-type]
        cancelled=cancelled,
        totals=Totals(
            subtotal=subtotal,
            discount=Decimal("0.00"),
            shipping=Decimal(shipping),
            tax=Decimal(tax),
            total=subtotal + Decimal(shipping) + Decimal(tax),
            refunded=Decimal(refunded),
        ),
        lines=list(lines),
        customer=Customer(external_id="c-1", name="Ada Buyer", email="ada@example.com", phone=None),
        shipping_address=Address(
            name="Ada Buyer",
            phone=None,
            country_code="US",
            province="NY",
            city="New York",
            district=None,
            address1="1 Main St",
            address2=None,
            postal_code="10001",
        ),
        cancelled_at=updated_at if cancelled else None,
    )


def landed(order: CanonicalOrder) -> Landed:
    """A Landed whose raw payload is the order's own JSON (what a test or benchmark has at hand)."""
    return Landed(order, {"source": "test", **order.to_json()})


@dataclass
class Shop:
    """A channel with its own fulfilment location and SKU codes (``sku("A")`` -> "<prefix>-A")."""

    engine: Engine
    prefix: str
    platform: str = "shopify"
    skus: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, engine: Engine, platform: str = "shopify", prefix: str | None = None) -> Shop:
        shop = cls(engine, prefix or f"t{uuid.uuid4().hex[:10]}", platform)
        with engine.begin() as conn:
            catalog.upsert_location(conn, shop.location, f"warehouse of {shop.prefix}")
            catalog.upsert_channel(conn, shop.channel, platform, f"shop {shop.prefix}", shop.location)
        return shop

    @property
    def channel(self) -> str:
        return f"{self.prefix}-shop"

    @property
    def location(self) -> str:
        return f"{self.prefix}-wh"

    def sku(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def add_sku(
        self,
        name: str,
        stock_units: int = 0,
        *,
        listed: bool = True,
        product_id: str | None = None,
        variant_id: str | None = None,
        by_merchant_sku: bool = True,
    ) -> str:
        """Create SKU ``name`` (internal code = channel SKU code = ``sku(name)``), list it, receive stock."""
        code = self.sku(name)
        with self.engine.begin() as conn:
            catalog.upsert_sku(conn, code, f"product {name}")
            if listed:
                catalog.upsert_listing(
                    conn,
                    self.channel,
                    code,
                    merchant_sku=code if by_merchant_sku else None,
                    channel_product_id=product_id,
                    channel_variant_id=variant_id,
                )
        self.skus.append(code)
        if stock_units:
            self.receive(name, stock_units)
        return code

    def receive(self, name: str, units: int, key: str | None = None) -> bool:
        with self.engine.begin() as conn:
            return catalog.receive_stock(
                conn, self.sku(name), self.location, units, key or f"receive:test:{uuid.uuid4().hex}"
            )

    def level(self, name: str) -> tuple[int, int]:
        with self.engine.connect() as conn:
            return stock.stock_level(conn, self.sku(name), self.location)

    def ingest(self, *orders: CanonicalOrder | Landed, rejected: Sequence[Rejected] = ()) -> IngestCounts:
        items = [o if isinstance(o, Landed) else landed(o) for o in orders]
        return ingest_orders(self.engine, self.channel, items, rejected)
