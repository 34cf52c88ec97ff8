"""What each channel listing may sell: the stock policy applied to the warehouse (design.md, "Stock out").

available(SKU) = sum over the policy's locations of (on_hand - reserved); a bundle's is the smallest
``floor(available(component) / units per bundle)`` over its components. Then, in this order:
safety stock is held back, the percentage is applied (rounded down), at or below ``zero_at_or_below`` the
listing shows 0, ``max`` caps it, and ``min`` lifts it, but never above what is really available.

What was last pushed is kept on the listing (``pushed_quantity``) and every push attempt in
``stock_push_log``, so a push run sends only the listings whose sellable quantity changed since.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, select, text, update

from warehouse.catalog import CatalogError
from warehouse.exceptions import log_auto_resolved, record_exception
from warehouse.models import (
    SELLABLE_LOCATION_KINDS,
    channel_listings,
    channels,
    exceptions,
    locations,
    sku_components,
    skus,
    stock_levels,
    stock_push_log,
)

PUSH_FAILED = "push_failed"
PUSH_SUCCEEDED = "cleared: a later push succeeded"


@dataclass(frozen=True, slots=True)
class StockPolicy:
    locations: tuple[str, ...] = ()  # location codes that count; () means every location
    safety_stock: int = 0
    percentage: int = 100
    zero_at_or_below: int = 0
    min: int | None = None
    max: int | None = None
    listings: Mapping[str, StockPolicy] = field(default_factory=dict)  # per internal SKU overrides

    def for_sku(self, sku: str) -> StockPolicy:
        return self.listings.get(sku, self)


def sellable_quantity(available: int, policy: StockPolicy) -> int:
    """The quantity a channel may show for ``available`` free units under ``policy`` (pure)."""
    available = max(0, available)
    quantity = max(0, available - policy.safety_stock)
    quantity = quantity * policy.percentage // 100
    if quantity <= policy.zero_at_or_below:
        return 0
    if policy.max is not None:
        quantity = min(quantity, policy.max)
    if policy.min is not None:
        quantity = max(quantity, min(policy.min, available))
    return quantity


@dataclass(frozen=True, slots=True)
class ListingStock:
    listing_id: int
    sku: str
    merchant_sku: str | None
    channel_product_id: str | None
    channel_variant_id: str | None
    available: int  # free units at the policy's locations (bundles: buildable bundles)
    sellable: int  # after the policy
    pushed_quantity: int | None  # what the channel was last told; None: never pushed

    @property
    def changed(self) -> bool:
        return self.sellable != self.pushed_quantity


def _free_units(conn: Connection, location_codes: Sequence[str]) -> dict[int, int]:
    """Free units (on_hand - reserved) per SKU id at the given locations (every sellable one when empty).

    Units in transit between locations and damaged units count for no channel, even when named."""
    query = (
        select(stock_levels.c.sku_id, func.sum(stock_levels.c.on_hand - stock_levels.c.reserved))
        .join(locations, locations.c.id == stock_levels.c.location_id)
        .where(locations.c.kind.in_(SELLABLE_LOCATION_KINDS))
        .group_by(stock_levels.c.sku_id)
    )
    if location_codes:
        query = query.where(locations.c.code.in_(location_codes))
    return {sku_id: int(free) for sku_id, free in conn.execute(query)}


def _bundles(conn: Connection) -> dict[int, list[tuple[int, int]]]:
    recipes: dict[int, list[tuple[int, int]]] = {}
    for bundle, component, quantity in conn.execute(
        select(sku_components.c.bundle_sku_id, sku_components.c.component_sku_id, sku_components.c.quantity)
    ):
        recipes.setdefault(bundle, []).append((component, quantity))
    return recipes


def available_units(
    free: Mapping[int, int], recipes: Mapping[int, list[tuple[int, int]]], sku_id: int
) -> int:
    recipe = recipes.get(sku_id)
    if not recipe:
        return free.get(sku_id, 0)
    return min(max(0, free.get(component, 0)) // per_bundle for component, per_bundle in recipe)


@contextmanager
def stock_push_lock(engine: Engine, channel: str) -> Iterator[None]:
    """Held by whoever pushes ``channel``'s stock, from reading the sellable quantities to recording what was
    pushed (the push run, a Retry from the page, reconciliation's repair, two runs of a backfill's pool): two
    pushers interleaving read, write, record could leave the channel showing an older, higher number while
    the hub believes it current. A session advisory lock on its own connection, so the pusher's own
    transactions commit as they go; released when the block ends (or the process dies)."""
    with engine.connect() as conn:
        key = {"key": f"stock_push:{channel}"}
        conn.execute(text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"), key)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), key)
            conn.commit()


def channel_stock(conn: Connection, channel: str, policy: StockPolicy) -> list[ListingStock]:
    """Every listing of ``channel`` with its sellable quantity under ``policy`` and what was last pushed."""
    channel_id = conn.execute(select(channels.c.id).where(channels.c.code == channel)).scalar()
    if channel_id is None:
        raise CatalogError(f"unknown channel {channel!r}")
    recipes = _bundles(conn)
    free_by_locations: dict[tuple[str, ...], dict[int, int]] = {}
    result = []
    rows = conn.execute(
        select(channel_listings, skus.c.code.label("sku"))
        .join(skus, skus.c.id == channel_listings.c.sku_id)
        .where(channel_listings.c.channel_id == channel_id)
        .order_by(channel_listings.c.id)
    ).mappings()
    for row in rows:
        sku_policy = policy.for_sku(row["sku"])
        if sku_policy.locations not in free_by_locations:
            free_by_locations[sku_policy.locations] = _free_units(conn, sku_policy.locations)
        available = available_units(free_by_locations[sku_policy.locations], recipes, row["sku_id"])
        result.append(
            ListingStock(
                listing_id=row["id"],
                sku=row["sku"],
                merchant_sku=row["merchant_sku"],
                channel_product_id=row["channel_product_id"],
                channel_variant_id=row["channel_variant_id"],
                available=available,
                sellable=sellable_quantity(available, sku_policy),
                pushed_quantity=row["pushed_quantity"],
            )
        )
    return result


def record_push(conn: Connection, channel: str, listing: ListingStock, status: str, detail: str = "") -> None:
    """Log a push attempt. A pushed (or already current) quantity becomes the listing's pushed_quantity and
    clears an open ``push_failed`` exception of its SKU; a rejection opens one, in the platform's words."""
    conn.execute(
        insert(stock_push_log).values(
            listing_id=listing.listing_id,
            quantity=listing.sellable,
            previous_quantity=listing.pushed_quantity,
            status=status,
            detail=detail[:2000],
        )
    )
    if status in ("pushed", "already_done"):
        conn.execute(
            update(channel_listings)
            .where(channel_listings.c.id == listing.listing_id)
            .values(pushed_quantity=listing.sellable, pushed_at=func.now())
        )
        cleared = conn.execute(
            update(exceptions)
            .where(
                exceptions.c.channel_id
                == select(channels.c.id).where(channels.c.code == channel).scalar_subquery(),
                exceptions.c.reason == PUSH_FAILED,
                exceptions.c.sku == listing.sku,
                exceptions.c.external_id.is_(None),
                exceptions.c.status == "open",
            )
            .values(status="resolved", resolved_at=func.now(), updated_at=func.now(), note=PUSH_SUCCEEDED)
            .returning(exceptions.c.id)
        ).scalars()
        log_auto_resolved(conn, list(cleared), PUSH_SUCCEEDED)
    elif status == "rejected":
        record_exception(
            conn,
            channel=channel,
            reason=PUSH_FAILED,
            external_id=None,
            detail=f"stock push of {listing.sellable} for {listing.sku} rejected: {detail}"[:2000],
            sku=listing.sku,
        )


def set_bundle(conn: Connection, bundle: str, components: Sequence[tuple[str, int]]) -> None:
    """Declare ``bundle`` as built from ``components`` [(sku, units per bundle)], replacing its old recipe."""
    codes = {bundle, *(c for c, _ in components)}
    ids = {
        code: sku_id
        for code, sku_id in conn.execute(select(skus.c.code, skus.c.id).where(skus.c.code.in_(codes)))
    }
    missing = sorted(codes - set(ids))
    if missing:
        raise CatalogError(f"unknown SKU(s): {', '.join(missing)}")
    if any(quantity <= 0 for _, quantity in components) or bundle in {c for c, _ in components}:
        raise CatalogError(f"bundle {bundle}: components need positive quantities and cannot include itself")
    # One level of components: the stock policy and the ingest read a bundle's components' own stock.
    if nested := _bundles_among(conn, skus.c.code.in_([code for code, _ in components])):
        raise CatalogError(
            f"bundle {bundle}: {', '.join(nested)} is a bundle itself, with no stock of its own"
        )
    if part_of := _bundles_among(conn, sku_components.c.component_sku_id == ids[bundle]):
        raise CatalogError(
            f"{bundle} is a component of bundle {', '.join(part_of)}: it cannot be a bundle too"
        )
    conn.execute(sku_components.delete().where(sku_components.c.bundle_sku_id == ids[bundle]))
    conn.execute(
        insert(sku_components),
        [
            {"bundle_sku_id": ids[bundle], "component_sku_id": ids[code], "quantity": quantity}
            for code, quantity in components
        ],
    )


def _bundles_among(conn: Connection, condition: ColumnElement[bool]) -> list[str]:
    """Codes of the bundles (SKUs with components) that match ``condition``."""
    query = (
        select(skus.c.code)
        .join(sku_components, sku_components.c.bundle_sku_id == skus.c.id)
        .where(condition)
        .distinct()
        .order_by(skus.c.code)
    )
    return list(conn.execute(query).scalars())


def bundle_recipes(conn: Connection, sku_ids: Collection[int]) -> dict[int, list[tuple[int, str, int]]]:
    """{bundle sku id: [(component sku id, component code, units per bundle)], in component id order} for the
    bundles among ``sku_ids`` (the others are not bundles)."""
    recipes: dict[int, list[tuple[int, str, int]]] = {}
    if not sku_ids:
        return recipes
    rows = conn.execute(
        select(
            sku_components.c.bundle_sku_id,
            sku_components.c.component_sku_id,
            skus.c.code,
            sku_components.c.quantity,
        )
        .join(skus, skus.c.id == sku_components.c.component_sku_id)
        .where(sku_components.c.bundle_sku_id.in_(sorted(sku_ids)))
        .order_by(sku_components.c.bundle_sku_id, sku_components.c.component_sku_id)
    )
    for bundle, component, code, units in rows:
        recipes.setdefault(bundle, []).append((component, code, units))
    return recipes
