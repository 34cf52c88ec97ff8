"""Order routing in the warehouse: each channel's rules, and choosing the location of lines that hold nothing.

``register_config`` stores a channel's ``routing:`` on ``channels.routing`` (``set_channel_routing``). Ingest
calls ``route_unheld_lines`` for the lines it evaluates, before it computes their stock steps: every line
with a SKU that holds nothing yet (no reservation, deduction or restock applied, nothing shipped) gets the
location ``warehouse.routing.route_order`` picks from the free stock now, kept on the line
(``order_lines.location_id``, written with the rest of the line by ``warehouse.line_stock``). Where no
location can reserve it, the line goes to the first choice and waits there as ``insufficient_stock`` (as
before routing), and is routed again on its next evaluation (``retry_attention``) since it still holds
nothing. A line that holds stock never moves here: only a person moves it (``warehouse.route_moves``).

The free stock is read without locks: two workers may pick the same location for its last units, and the
conditional reserve of ``apply_steps`` lets only one of them have it (the other line is short, as today).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, null, select

from warehouse.bulk import run
from warehouse.catalog import CatalogError
from warehouse.models import channels, locations
from warehouse.routing import (
    UNROUTABLE_KINDS,
    Candidate,
    LineNeed,
    RoutingRules,
    location_problems,
    rank,
    route_order,
)
from warehouse.stock import availability
from warehouse.stock_policy import bundle_recipes


class RoutingConfigError(ValueError):
    """Rules that name unknown locations or locations that cannot ship."""


def set_channel_routing(conn: Connection, channel: str, rules: RoutingRules | None) -> None:
    """Store ``channel``'s routing rules (None: reserve at its fulfilment location, as without routing)."""
    if rules is not None:
        kinds = dict(conn.execute(select(locations.c.code, locations.c.kind)).all())
        problems = rules.problems() + location_problems(rules.locations, kinds)
        if problems:
            raise RoutingConfigError(f"channel {channel}: routing: " + "; ".join(problems))
    done = conn.execute(
        channels.update()
        .where(channels.c.code == channel)
        .values(routing=null() if rules is None else rules.as_json())  # SQL NULL, not JSON null
    )
    if done.rowcount == 0:
        raise CatalogError(f"unknown channel {channel!r}")


def channel_routing(conn: Connection, channel_id: int) -> tuple[RoutingRules, list[Candidate]] | None:
    """The channel's rules and its candidate locations in priority order; None when it has no rules."""
    row = conn.execute(
        select(channels.c.routing, channels.c.fulfilment_location_id).where(channels.c.id == channel_id)
    ).first()
    if row is None or row.routing is None:
        return None
    rules = RoutingRules.from_json(row.routing)
    return rules, candidates_of(conn, rules, row.fulfilment_location_id)


def candidates_of(conn: Connection, rules: RoutingRules, fulfilment_location_id: int) -> list[Candidate]:
    """The rules' locations that can ship, in their priority order (the fulfilment location by default)."""
    columns = (locations.c.id, locations.c.code, locations.c.kind, locations.c.province, locations.c.city)
    if rules.locations:
        found = {
            row.code: row
            for row in conn.execute(select(*columns).where(locations.c.code.in_(rules.locations)))
        }
        rows = [found[code] for code in rules.locations if code in found]
    else:
        rows = list(conn.execute(select(*columns).where(locations.c.id == fulfilment_location_id)))
    return [Candidate(*row) for row in rows if row.kind not in UNROUTABLE_KINDS]


def route_unheld_lines(
    conn: Connection,
    routing: Mapping[str, Any] | None,
    fulfilment_location_id: int,
    lines: Sequence[Any],
) -> dict[int, int]:
    """The location of these (locked) orders' lines that hold nothing, by the channel's stored rules
    (``routing``, read with the channel: no query of its own on ingest's path); returns {line id: location
    id} of the lines whose location changes. Nothing for a channel without rules.

    ``lines`` (``warehouse.line_stock.Line``), in their orders' creation order: earlier orders take stock
    first."""
    if routing is None:
        return {}
    rows = [line for line in lines if _unheld(line)]
    if not rows:
        return {}
    rules = RoutingRules.from_json(routing)
    candidates = candidates_of(conn, rules, fulfilment_location_id)
    if not candidates:
        return {}
    recipes = bundle_recipes(conn, {row.sku_id for row in rows})
    needs = {row.id: _parts(row, recipes) for row in rows}
    skus = sorted({sku_id for parts in needs.values() for sku_id, _ in parts})
    free = availability(conn, [(sku_id, c.location_id) for sku_id in skus for c in candidates])

    by_order: dict[int, list[Any]] = {}
    for row in rows:
        by_order.setdefault(row.order_id, []).append(row)
    moves: dict[int, int] = {}
    for order_lines in by_order.values():  # in the orders' creation order
        routable = [LineNeed(row.id, needs[row.id]) for row in order_lines if needs[row.id]]
        if not routable:
            continue
        province, city = order_lines[0].province, order_lines[0].city
        first_choice = rank(candidates, rules, province, city)[0].location_id
        chosen = route_order(routable, candidates, free, rules, province, city)
        current = {row.id: row.location_id for row in order_lines}
        for line in routable:
            location_id = chosen[line.line_id]
            if location_id is not None:
                for sku_id, units in line.parts:
                    free[(sku_id, location_id)] = free.get((sku_id, location_id), 0) - units
            target = first_choice if location_id is None else location_id
            if current[line.line_id] != target:
                moves[line.line_id] = target
    return moves


def _unheld(line: Any) -> bool:
    """A line that can be routed: a SKU, nothing applied, nothing shipped (a shipment left from where it
    was reported, not from a location routing would choose now)."""
    return (
        line.sku_id is not None
        and not line.removed
        and not (line.reserved_quantity or line.deducted_quantity or line.restocked_applied)
        and not (line.shipped_quantity or line.warehouse_shipped_quantity)
    )


def _parts(row: Any, recipes: dict[int, list[tuple[int, str, int]]]) -> tuple[tuple[int, int], ...]:
    """Units of stock the line must reserve, per SKU; () when it reserves nothing (cancelled, refunded)."""
    if row.cancelled or row.payment_status == "voided":
        return ()
    units = max(0, row.quantity - row.refunded_quantity)
    if units == 0:
        return ()
    recipe = recipes.get(row.sku_id)
    if recipe is None:
        return ((row.sku_id, units),)
    return tuple((component, per_bundle * units) for component, _, per_bundle in recipe)


# The lines a shipments row names (its line, or its SKU's lines), those with units left to ship first.
ROW_LINES_SQL = """
SELECT coalesce(l.location_id, CAST(%(fallback)s AS bigint)) AS location_id
  FROM order_lines l
  LEFT JOIN skus s ON s.id = l.sku_id
 WHERE l.order_id = %(order_id)s AND NOT l.removed
   AND (l.external_line_id = CAST(%(line_id)s AS text)
        OR (CAST(%(line_id)s AS text) IS NULL AND CAST(%(sku)s AS text) IN (s.code, l.merchant_sku)))
 ORDER BY l.quantity > greatest(l.shipped_quantity, l.warehouse_shipped_quantity) DESC, l.id
 LIMIT 1
"""


def line_location(
    conn: Connection, order_id: int, fallback_location_id: int, *, line_id: str | None, sku: str | None
) -> int:
    """Where the order's line named by a shipments row (its line id, else its SKU) holds its stock: the
    location a row that names none ships from. ``fallback_location_id`` (the channel's fulfilment location)
    for a line never applied, or when the row names no line of the order (the import refuses it then)."""
    found = run(
        conn,
        ROW_LINES_SQL,
        {"order_id": order_id, "fallback": fallback_location_id, "line_id": line_id, "sku": sku},
    )
    return found[0].location_id if found else fallback_location_id
