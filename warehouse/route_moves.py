"""Re-routing: move a line's reservation to another location when its location cannot ship.

``move_line`` moves one order's line (or every reserved line of the order) to a named location;
``move_away`` empties a location of its open reservations, each order re-routed by its channel's rules
(``warehouse.routing.route_order``, the drained location left out). A move is one transaction per order: the
reservation released at the old location and reserved at the new one, both in the ledger (kinds ``release``
and ``reserve``, keys continuing the line's numbering as ingest does: ``release:<channel>:<order>:<line>#n``,
``@<component>`` for a bundle's components), the line's ``location_id`` set, and the move kept in
``line_routes`` (who, why, from, to, the ledger keys) for ops to see.

Refused (``RouteError``, nothing changed): an unknown channel, order, line or location, a location that
cannot ship (transit, damaged), a line that has shipped units (its stock left from where it was reserved),
a line holding no reservation, and a target without the free stock (the conditional reserve decides).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select, text
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from warehouse.bulk import run
from warehouse.db_errors import is_retryable
from warehouse.models import channels, line_routes, locations, orders
from warehouse.route_lines import candidates_of, channel_routing
from warehouse.routing import UNROUTABLE_KINDS, LineNeed, RoutingRules, route_order
from warehouse.stock import LedgerRow, Step, apply_steps, availability, write_ledger

log = logging.getLogger("warehouse.route_moves")


class RouteError(ValueError):
    """A move that cannot be made; the message says why, for a person (the CLI exits 2)."""


@dataclass(frozen=True, slots=True)
class LineMove:
    channel: str
    order: str
    line: str
    sku: str
    units: int
    from_location: str
    to_location: str

    def __str__(self) -> str:
        return (
            f"{self.channel} order {self.order} line {self.line} ({self.units} x {self.sku}): "
            f"{self.from_location} -> {self.to_location}"
        )


@dataclass
class AwayReport:
    location: str
    moved: list[LineMove] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # lines that stay, each with why


# The lines of one order, locked; with what a move needs to know of each.
ORDER_LINES_SQL = """
SELECT l.id, l.external_line_id, l.sku_id, s.code AS sku_code, loc.id AS location_id,
       loc.code AS location_code, l.reserved_quantity, l.deducted_quantity, l.shipped_quantity,
       l.warehouse_shipped_quantity, l.ledger_steps, l.applied_components
  FROM order_lines l
  JOIN orders o ON o.id = l.order_id
  JOIN channels c ON c.id = o.channel_id
  JOIN skus s ON s.id = l.sku_id
  JOIN locations loc ON loc.id = coalesce(l.location_id, c.fulfilment_location_id)
 WHERE l.order_id = %(order_id)s
 ORDER BY l.id
   FOR UPDATE OF l
"""


def move_line(
    conn: Connection,
    channel: str,
    order: str,
    to_location: str,
    *,
    line: str | None = None,
    actor: str,
    note: str | None = None,
) -> list[LineMove]:
    """Move the reservation of ``line`` of ``order`` (every reserved line when None) to ``to_location``,
    in the caller's transaction; raises ``RouteError`` (roll back) when it cannot."""
    channel_id = _channel_id(conn, channel)
    to_id, to_code = _shipping_location(conn, to_location)
    order_id = _lock_order(conn, channel_id, channel, order)
    lines = run_lines(conn, order_id)
    if line is not None:
        lines = [row for row in lines if row.external_line_id == line]
        if not lines:
            raise RouteError(f"order {order} of channel {channel} has no line {line!r} with a SKU")
    else:
        lines = [row for row in lines if row.reserved_quantity > 0]
        if not lines:
            raise RouteError(f"order {order} of channel {channel} holds no reservation to move")
    return [_move(conn, channel, order, order_id, row, to_id, to_code, "move", actor, note) for row in lines]


def move_line_now(
    engine: Engine,
    channel: str,
    order: str,
    to_location: str,
    *,
    line: str | None = None,
    actor: str,
    note: str | None = None,
) -> list[LineMove]:
    """``move_line`` in a transaction of its own (again after a deadlock); nothing changes when refused."""

    def one() -> list[LineMove]:
        with engine.begin() as conn:
            return move_line(conn, channel, order, to_location, line=line, actor=actor, note=note)

    return _retrying(one)


def move_away(
    engine: Engine,
    location: str,
    *,
    channel: str | None = None,
    actor: str,
    note: str | None = None,
) -> AwayReport:
    """Re-route every open reservation at ``location`` (of ``channel``, or of every channel) by its channel's
    rules, the location itself left out; one transaction per order. Lines no other location can take stay
    (``AwayReport.left`` says why)."""
    with engine.connect() as conn:
        location_id = _location_row(conn, location).id
        channel_filter = _channel_id(conn, channel) if channel is not None else None
        found = conn.execute(
            text(
                "SELECT DISTINCT o.id, o.created_at, o.external_id, c.code "
                "FROM order_lines l JOIN orders o ON o.id = l.order_id "
                "JOIN channels c ON c.id = o.channel_id "
                "WHERE l.location_id = :location_id AND l.reserved_quantity > 0 "
                "AND (CAST(:channel_id AS bigint) IS NULL OR c.id = :channel_id) "
                "ORDER BY o.created_at, o.external_id"
            ),
            {"location_id": location_id, "channel_id": channel_filter},
        ).all()
    report = AwayReport(location)
    for order_id, _, external_id, channel_code in found:
        moved, left = _retrying(
            _away_one_order, engine, order_id, external_id, channel_code, location_id, actor, note
        )
        report.moved += moved
        report.left += left
    return report


def _away_one_order(
    engine: Engine,
    order_id: int,
    external_id: str,
    channel: str,
    away_id: int,
    actor: str,
    note: str | None,
) -> tuple[list[LineMove], list[str]]:
    moved: list[LineMove] = []
    left: list[str] = []
    with engine.begin() as conn:
        order_row = conn.execute(
            select(orders.c.channel_id, orders.c.shipping_address)
            .where(orders.c.id == order_id)
            .with_for_update()
        ).one()
        lines = [
            row
            for row in run_lines(conn, order_id)
            if row.location_id == away_id and row.reserved_quantity > 0
        ]
        where = f"{channel} order {external_id}"
        movable = []
        for row in lines:
            if _shipped(row):
                left.append(f"{where} line {row.external_line_id}: shipped units, it cannot move")
            else:
                movable.append(row)
        if not movable:
            return moved, left
        routing = channel_routing(conn, order_row.channel_id)
        if routing is None:
            fulfilment = conn.execute(
                select(channels.c.fulfilment_location_id).where(channels.c.id == order_row.channel_id)
            ).scalar_one()
            routing = RoutingRules(), candidates_of(conn, RoutingRules(), fulfilment)
        rules, candidates = routing
        candidates = [c for c in candidates if c.location_id != away_id]
        needs = [LineNeed(row.id, _parts(row, row.reserved_quantity)) for row in movable]
        skus = sorted({sku_id for need in needs for sku_id, _ in need.parts})
        free = availability(conn, [(sku_id, c.location_id) for sku_id in skus for c in candidates])
        address = order_row.shipping_address or {}
        chosen = route_order(needs, candidates, free, rules, address.get("province"), address.get("city"))
        codes = {c.location_id: c.code for c in candidates}
        for row in movable:
            target = chosen.get(row.id)
            if target is None:
                left.append(
                    f"{where} line {row.external_line_id}: no other location of {channel}'s routing "
                    f"({', '.join(codes.values()) or 'none'}) can reserve "
                    f"{row.reserved_quantity} x {row.sku_code}"
                )
                continue
            try:
                with conn.begin_nested():
                    moved.append(
                        _move(
                            conn,
                            channel,
                            external_id,
                            order_id,
                            row,
                            target,
                            codes[target],
                            "away",
                            actor,
                            note,
                        )
                    )
            except RouteError as err:  # the free stock went meanwhile
                left.append(f"{where} line {row.external_line_id}: {err}")
    return moved, left


def route_history(conn: Connection, channel: str, order: str) -> list[dict[str, Any]]:
    """The moves of the order's lines, oldest first."""
    rows = conn.execute(
        text(
            """
            SELECT l.external_line_id AS line, r.units, f.code AS from_location, t.code AS to_location,
                   r.cause, r.actor, r.note, r.release_key, r.reserve_key, r.created_at
              FROM line_routes r
              JOIN order_lines l ON l.id = r.order_line_id
              JOIN orders o ON o.id = l.order_id
              JOIN channels c ON c.id = o.channel_id
              JOIN locations f ON f.id = r.from_location_id
              JOIN locations t ON t.id = r.to_location_id
             WHERE c.code = :channel AND o.external_id = :order
             ORDER BY r.id
            """
        ),
        {"channel": channel, "order": order},
    )
    return [dict(row._mapping) for row in rows]


def order_locations(conn: Connection, channel: str, order: str) -> list[dict[str, Any]]:
    """Each line of the order: SKU, quantity, location (where it reserves, or will), reserved, shipped."""
    rows = conn.execute(
        text(
            """
            SELECT l.external_line_id AS line, s.code AS sku, l.quantity, loc.code AS location,
                   l.reserved_quantity AS reserved,
                   greatest(l.shipped_quantity, l.warehouse_shipped_quantity) AS shipped
              FROM orders o
              JOIN channels c ON c.id = o.channel_id
              JOIN order_lines l ON l.order_id = o.id
              JOIN locations loc ON loc.id = coalesce(l.location_id, c.fulfilment_location_id)
              LEFT JOIN skus s ON s.id = l.sku_id
             WHERE c.code = :channel AND o.external_id = :order
             ORDER BY l.id
            """
        ),
        {"channel": channel, "order": order},
    )
    return [dict(row._mapping) for row in rows]


# -- one line ------------------------------------------------------------------------------------


def _move(
    conn: Connection,
    channel: str,
    order: str,
    order_id: int,
    row: Any,
    to_id: int,
    to_code: str,
    cause: str,
    actor: str,
    note: str | None,
) -> LineMove:
    where = f"line {row.external_line_id} of order {order}"
    if _shipped(row):
        shipped = max(row.shipped_quantity, row.warehouse_shipped_quantity, row.deducted_quantity)
        raise RouteError(
            f"{where} has shipped {shipped} units from {row.location_code}: a line that shipped cannot move"
        )
    if row.reserved_quantity <= 0:
        raise RouteError(f"{where} holds no reservation at {row.location_code}: nothing to move")
    if row.location_id == to_id:
        raise RouteError(f"{where} is reserved at {to_code} already")
    units = row.reserved_quantity
    parts = _parts(row, units)
    release = [Step(sku_id, row.location_id, 0, -take) for sku_id, take in parts]
    reserve = [Step(sku_id, to_id, 0, take, phase=1) for sku_id, take in parts]
    results = apply_steps(conn, release + reserve)
    if any(result is None for result in results[: len(release)]):  # a release cannot lack stock
        raise RuntimeError(f"{where}: releasing its reservation did not apply; levels disagree with lines")
    short = [
        (step, result)
        for step, result in zip(reserve, results[len(release) :], strict=True)
        if result is None
    ]
    if short:
        free = availability(conn, [(step.sku_id, to_id) for step, _ in short])
        codes = _sku_codes(conn, [step.sku_id for step, _ in short])
        lacking = ", ".join(
            f"{step.delta_reserved} x {codes[step.sku_id]} needed, {free[(step.sku_id, to_id)]} free"
            for step, _ in short
        )
        raise RouteError(f"{to_code} lacks the free stock for {where}: {lacking}")

    steps_taken = dict(row.ledger_steps)
    keys = {}
    for kind in ("release", "reserve"):
        steps_taken[kind] = steps_taken.get(kind, 0) + 1
        keys[kind] = f"{kind}:{channel}:{order}:{row.external_line_id}" + (
            f"#{steps_taken[kind]}" if steps_taken[kind] > 1 else ""
        )
    codes = _sku_codes(conn, [sku_id for sku_id, _ in parts]) if row.applied_components else {}

    def key(kind: str, sku_id: int) -> str:
        return f"{keys[kind]}@{codes[sku_id]}" if codes else keys[kind]

    write_ledger(
        conn,
        [
            LedgerRow(
                key("release", s.sku_id),
                s.sku_id,
                s.location_id,
                "release",
                0,
                s.delta_reserved,
                order_id,
                row.id,
            )
            for s in release
        ]
        + [
            LedgerRow(
                key("reserve", s.sku_id),
                s.sku_id,
                s.location_id,
                "reserve",
                0,
                s.delta_reserved,
                order_id,
                row.id,
            )
            for s in reserve
        ],
    )
    conn.execute(
        text(
            "UPDATE order_lines SET location_id = :to_id, ledger_steps = CAST(:steps AS jsonb) WHERE id = :id"
        ),
        {"to_id": to_id, "steps": json.dumps(steps_taken), "id": row.id},
    )
    conn.execute(
        line_routes.insert().values(
            order_line_id=row.id,
            from_location_id=row.location_id,
            to_location_id=to_id,
            units=units,
            cause=cause,
            actor=actor,
            note=note,
            release_key=keys["release"],
            reserve_key=keys["reserve"],
        )
    )
    moved = LineMove(channel, order, row.external_line_id, row.sku_code, units, row.location_code, to_code)
    log.info("%s (%s by %s: %s)", moved, cause, actor, note or "-")
    return moved


def _shipped(row: Any) -> bool:
    return max(row.shipped_quantity, row.warehouse_shipped_quantity, row.deducted_quantity) > 0


def _parts(row: Any, units: int) -> tuple[tuple[int, int], ...]:
    """(sku id, units of stock) that ``units`` of the line hold: its SKU, or the components it applied."""
    if row.applied_components:
        return tuple(sorted((int(sku_id), per * units) for sku_id, per in row.applied_components.items()))
    return ((row.sku_id, units),)


def run_lines(conn: Connection, order_id: int) -> list[Any]:
    """The order's lines that have a SKU, with their location, locked."""
    return run(conn, ORDER_LINES_SQL, {"order_id": order_id})


def _sku_codes(conn: Connection, sku_ids: Sequence[int]) -> dict[int, str]:
    rows = conn.execute(text("SELECT id, code FROM skus WHERE id = ANY(:ids)"), {"ids": sorted(set(sku_ids))})
    return dict(rows.all())


def _channel_id(conn: Connection, code: str) -> int:
    found = conn.execute(select(channels.c.id).where(channels.c.code == code)).scalar()
    if found is None:
        raise RouteError(f"unknown channel {code!r}")
    return found


def _location_row(conn: Connection, code: str) -> Any:
    row = conn.execute(
        select(locations.c.id, locations.c.code, locations.c.kind).where(locations.c.code == code)
    ).first()
    if row is None:
        known = ", ".join(conn.execute(select(locations.c.code).order_by(locations.c.code)).scalars())
        raise RouteError(f"unknown location {code!r} (known: {known or 'none'})")
    return row


def _shipping_location(conn: Connection, code: str) -> tuple[int, str]:
    row = _location_row(conn, code)
    if row.kind in UNROUTABLE_KINDS:
        raise RouteError(f"location {code!r} is a {row.kind} location: it cannot ship an order")
    return row.id, row.code


def _lock_order(conn: Connection, channel_id: int, channel: str, order: str) -> int:
    found = conn.execute(
        select(orders.c.id)
        .where(orders.c.channel_id == channel_id, orders.c.external_id == order)
        .with_for_update()
    ).scalar()
    if found is None:
        raise RouteError(f"order {order} of channel {channel} is not in the warehouse")
    return found


def _retrying(fn: Any, *args: Any) -> Any:
    """One order's transaction, again from the start after a deadlock or serialization failure."""
    retrying = Retrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(8),
        wait=wait_random_exponential(multiplier=0.02, max=1.0),
        reraise=True,
    )
    return retrying(fn, *args)
