"""The merchant's catalog: locations, SKUs, channels, each channel's listing map, and received stock.

Every function takes a SQLAlchemy ``Connection``; the caller owns the transaction. Upserts are keyed on the
natural codes and safe to run concurrently (``INSERT ... ON CONFLICT``).
"""

from __future__ import annotations

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects.postgresql import insert

from warehouse.models import (
    DEFAULT_MAX_UNITS_PER_ROW,
    LOCATION_KINDS,
    channel_listings,
    channels,
    locations,
    skus,
)
from warehouse.stock import apply_keyed_step


class CatalogError(LookupError):
    """A code that the catalog does not know, or a listing that contradicts an existing one."""


def upsert_location(
    conn: Connection,
    code: str,
    name: str,
    kind: str = "warehouse",
    max_units_per_row: int = DEFAULT_MAX_UNITS_PER_ROW,
    *,
    province: str | None = None,
    city: str | None = None,
) -> int:
    if kind not in LOCATION_KINDS:
        raise ValueError(f"location kind {kind!r}: expected one of {', '.join(LOCATION_KINDS)}")
    values = {
        "name": name,
        "kind": kind,
        "max_units_per_row": max_units_per_row,
        "province": province,
        "city": city,
    }
    stmt = insert(locations).values(code=code, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["code"], set_=values)
    return conn.execute(stmt.returning(locations.c.id)).scalar_one()


def upsert_sku(conn: Connection, code: str, title: str) -> int:
    stmt = insert(skus).values(code=code, title=title)
    stmt = stmt.on_conflict_do_update(index_elements=["code"], set_={"title": title})
    return conn.execute(stmt.returning(skus.c.id)).scalar_one()


def upsert_channel(conn: Connection, code: str, platform: str, name: str, fulfilment_location: str) -> int:
    location_id = location_id_of(conn, fulfilment_location)
    values = {"platform": platform, "name": name, "fulfilment_location_id": location_id}
    stmt = insert(channels).values(code=code, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["code"], set_=values)
    return conn.execute(stmt.returning(channels.c.id)).scalar_one()


def upsert_listing(
    conn: Connection,
    channel: str,
    sku: str,
    *,
    merchant_sku: str | None = None,
    channel_product_id: str | None = None,
    channel_variant_id: str | None = None,
) -> int:
    """Map a channel's SKU code and/or (product id, variant id) to an internal SKU; returns the listing id.

    A listing is found by either channel-side identity and then re-pointed; orders already resolved keep
    their SKU (their stock effects were applied to it), lines still unresolved pick it up when retried.
    """
    merchant_sku = merchant_sku or None
    channel_product_id = channel_product_id or None
    channel_variant_id = channel_variant_id or None
    if merchant_sku is None and channel_product_id is None:
        raise ValueError("a listing needs merchant_sku or channel_product_id")
    if channel_variant_id is not None and channel_product_id is None:
        raise ValueError("channel_variant_id needs channel_product_id")
    channel_id = channel_id_of(conn, channel)
    sku_id = sku_id_of(conn, sku)
    values = {
        "channel_id": channel_id,
        "sku_id": sku_id,
        "merchant_sku": merchant_sku,
        "channel_product_id": channel_product_id,
        "channel_variant_id": channel_variant_id,
    }
    for _attempt in range(2):
        existing = _matching_listings(conn, channel_id, merchant_sku, channel_product_id, channel_variant_id)
        if len(existing) > 1:
            raise CatalogError(
                f"channel {channel}: merchant_sku {merchant_sku!r} and product/variant "
                f"{channel_product_id}/{channel_variant_id} belong to different listings {sorted(existing)}"
            )
        if existing:
            listing_id = existing[0]
            conn.execute(
                channel_listings.update()
                .where(channel_listings.c.id == listing_id)
                .values(**values, updated_at=text("now()"))
            )
            return listing_id
        # ON CONFLICT DO NOTHING: a concurrent writer may have inserted it since; then update that one.
        inserted = conn.execute(
            insert(channel_listings)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(channel_listings.c.id)
        ).scalar()
        if inserted is not None:
            return inserted
    raise CatalogError(f"channel {channel}: listing for {sku} changed concurrently; retry")


def _matching_listings(
    conn: Connection,
    channel_id: int,
    merchant_sku: str | None,
    product_id: str | None,
    variant_id: str | None,
) -> list[int]:
    conditions = []
    if merchant_sku is not None:
        conditions.append(channel_listings.c.merchant_sku == merchant_sku)
    if product_id is not None:
        conditions.append(
            (channel_listings.c.channel_product_id == product_id)
            & channel_listings.c.channel_variant_id.is_not_distinct_from(variant_id)
        )
    rows = conn.execute(
        select(channel_listings.c.id)
        .where(channel_listings.c.channel_id == channel_id)
        .where(conditions[0] if len(conditions) == 1 else conditions[0] | conditions[1])
        .order_by(channel_listings.c.id)
        .with_for_update()
    )
    return list(rows.scalars())


def receive_stock(conn: Connection, sku: str, location: str, quantity: int, idempotency_key: str) -> bool:
    """Goods in: raise on-hand by ``quantity``. False (and no change) when the key was already applied."""
    if quantity <= 0:
        raise ValueError(f"receive quantity must be positive, got {quantity}")
    return apply_keyed_step(
        conn,
        sku_id=sku_id_of(conn, sku),
        location_id=location_id_of(conn, location),
        kind="receive",
        delta_on_hand=quantity,
        delta_reserved=0,
        idempotency_key=idempotency_key,
    )


def location_id_of(conn: Connection, code: str) -> int:
    return _id_of(conn, locations, code, "location")


def sku_id_of(conn: Connection, code: str) -> int:
    return _id_of(conn, skus, code, "SKU")


def channel_id_of(conn: Connection, code: str) -> int:
    return _id_of(conn, channels, code, "channel")


def _id_of(conn: Connection, table, code: str, what: str) -> int:
    found = conn.execute(select(table.c.id).where(table.c.code == code)).scalar()
    if found is None:
        raise CatalogError(f"unknown {what} {code!r}")
    return found
