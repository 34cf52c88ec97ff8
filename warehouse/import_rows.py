"""What every kind of store row shares when it is applied: the row's refusal, catalog lookups, locked levels.

``warehouse.store_imports`` runs a file (chunks, savepoints, the exception queue, the report); a kind's rows
are applied by a ``RowApplier``: shipments, counts and sales there, the other kinds in their own modules
(each exports ``APPLIERS``: row type -> applier). An applier raises ``RowRejected`` for a row that breaks a
business rule: the row is rolled back to its savepoint, queued as ``bad_import_row`` and reported, and the
rest of the file goes on. It returns True when the row changed something, False when it was applied before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from warehouse.models import channels, locations, orders, skus, stock_levels
from warehouse.stock import LedgerRow, write_ledger
from warehouse.stock_policy import bundle_recipes


class RowRejected(Exception):
    """A row that breaks a business rule: rolled back to its savepoint, queued, reported."""

    def __init__(self, reason: str, channel_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.channel_id = channel_id


@dataclass(frozen=True, slots=True)
class ChannelRef:
    id: int
    code: str
    location_id: int  # the channel's fulfilment location


class CatalogLookups:
    """Codes -> ids, read once per import (a code never changes its id); an unknown code rejects the row."""

    def __init__(self, source: str) -> None:
        self.source = source  # the file's name, as the warehouse records where a row came from
        self._channels: dict[str, ChannelRef | None] = {}
        self._skus: dict[str, int | None] = {}
        self._locations: dict[str, tuple[int, int, str] | None] = {}
        self._recipes: dict[int, list[tuple[int, str, int]]] = {}

    def channel(self, conn: Connection, code: str) -> ChannelRef:
        if code not in self._channels:
            row = conn.execute(
                select(channels.c.id, channels.c.code, channels.c.fulfilment_location_id).where(
                    channels.c.code == code
                )
            ).first()
            self._channels[code] = None if row is None else ChannelRef(*row)
        found = self._channels[code]
        if found is None:
            raise RowRejected(f"unknown channel {code!r}")
        return found

    def channel_id_of_raw(self, conn: Connection, raw: dict[str, str]) -> int | None:
        """The channel a raw row names, if it names a known one (its exception is queued under it)."""
        code = (raw.get("channel") or "").strip()
        if not code:
            return None
        try:
            return self.channel(conn, code).id
        except RowRejected:
            return None

    def sku(self, conn: Connection, code: str) -> int:
        if code not in self._skus:
            self._skus[code] = conn.execute(select(skus.c.id).where(skus.c.code == code)).scalar()
        found = self._skus[code]
        if found is None:
            raise RowRejected(f"unknown SKU {code!r}")
        return found

    def recipe(self, conn: Connection, code: str) -> list[tuple[int, str, int]]:
        """A bundle's components [(sku id, code, units per bundle)] in sku id order; [] for any other SKU."""
        sku_id = self.sku(conn, code)
        if sku_id not in self._recipes:
            self._recipes[sku_id] = bundle_recipes(conn, [sku_id]).get(sku_id, [])
        return self._recipes[sku_id]

    def location(self, conn: Connection, code: str) -> int:
        return self.location_row(conn, code)[0]

    def location_kind(self, conn: Connection, code: str) -> str:
        return self.location_row(conn, code)[2]

    def location_row(self, conn: Connection, code: str) -> tuple[int, int, str]:
        """(id, max_units_per_row, kind) of a location."""
        if code not in self._locations:
            row = conn.execute(
                select(locations.c.id, locations.c.max_units_per_row, locations.c.kind).where(
                    locations.c.code == code
                )
            ).first()
            self._locations[code] = None if row is None else (row.id, row.max_units_per_row, row.kind)
        found = self._locations[code]
        if found is None:
            raise RowRejected(f"unknown location {code!r}")
        return found

    def check_row_units(self, conn: Connection, location: str, name: str, units: int) -> None:
        """A row of more units than its location accepts per row waits for a person (a typo, a misread
        scan, a sign flipped) instead of becoming stock every channel may sell or must lose."""
        limit = self.location_row(conn, location)[1]
        if abs(units) > limit:
            raise RowRejected(
                f"{name} {units} is beyond the {limit} units per row that {location} accepts "
                "(max_units_per_row in config/channels.yaml): check the row; to apply it, raise the limit "
                "and import the file again"
            )


# An applier: (lookups of this import, connection in the row's savepoint, row, units by effect) -> changed?
RowApplier = Callable[[CatalogLookups, Connection, Any, Counter[str]], bool]


def lock_order(conn: Connection, channel: ChannelRef, external_id: str) -> int | None:
    """The id of the channel's order, locked for this transaction (None: not in the warehouse). The order's
    lock serialises everything that changes its lines: ingest, shipments, returns, other imports."""
    return conn.execute(
        select(orders.c.id)
        .where(orders.c.channel_id == channel.id, orders.c.external_id == external_id)
        .with_for_update()
    ).scalar()


def lock_level(conn: Connection, sku_id: int, location_id: int) -> tuple[int, int]:
    """(on_hand, reserved) of the level, locked for this transaction (created at 0 when missing)."""
    conn.execute(insert(stock_levels).values(sku_id=sku_id, location_id=location_id).on_conflict_do_nothing())
    row = conn.execute(
        select(stock_levels.c.on_hand, stock_levels.c.reserved)
        .where(stock_levels.c.sku_id == sku_id, stock_levels.c.location_id == location_id)
        .with_for_update()
    ).one()
    return row.on_hand, row.reserved


def change_on_hand(conn: Connection, entry: LedgerRow) -> None:
    """The ledger row and the level change together (the caller holds the level's lock)."""
    write_ledger(conn, [entry])
    conn.execute(
        stock_levels.update()
        .where(stock_levels.c.sku_id == entry.sku_id, stock_levels.c.location_id == entry.location_id)
        .values(on_hand=stock_levels.c.on_hand + entry.delta_on_hand, updated_at=func.now())
    )
