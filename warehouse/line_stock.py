"""A batch's order lines and their stock: merged, resolved, routed, planned, applied, and written once.

``evaluate`` brings the lines of a batch's (locked) orders to their stock targets (see ``warehouse.ingest``
for the rules). The lines of the orders that just landed are built in memory from their canonical orders,
merged over the stored lines of the orders that existed; each line's SKU is resolved through the channel's
listings and, holding nothing yet, its location chosen by the channel's routing rules; then the steps are
applied and every line is written **once** with what it now holds: new lines by ``COPY`` (ids drawn first,
the ledger names them), changed stored lines by one ``UPDATE``. Inserting a line and updating it with the
stock it applied cost Postgres two writes per line (0.045 ms per order of 0.49 of the apply, issue 22).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, text

from canonical.order import CanonicalOrder
from warehouse.bulk import arrays, copy_rows, next_ids, run, unnest
from warehouse.exceptions import ExceptionRecord
from warehouse.route_lines import route_unheld_lines
from warehouse.stock import LedgerRow, Step, apply_steps, availability, write_ledger
from warehouse.stock_policy import bundle_recipes


@dataclass(frozen=True, slots=True)
class Channel:
    """What the line evaluation needs of a channel."""

    id: int
    code: str
    location_id: int
    routing: Any = None  # its routing rules as stored (channels.routing); None: it reserves at location_id


@dataclass
class IngestCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    reserved_units: int = 0
    released_units: int = 0  # reservations released by a cancel, refund or edit (not by shipping)
    deducted_units: int = 0
    restocked_units: int = 0
    exceptions: Counter[str] = field(default_factory=Counter)  # problems queued (or re-seen), by reason

    def merge(self, other: IngestCounts) -> IngestCounts:
        for f in fields(self):
            if f.name == "exceptions":
                self.exceptions.update(other.exceptions)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        values["exceptions"] = dict(sorted(self.exceptions.items()))
        return values


# -- the lines -----------------------------------------------------------------------------------

# What the platform says of a line (the canonical order's), then what the hub keeps of it.
PLATFORM_FIELDS = (
    "merchant_sku",
    "channel_product_id",
    "channel_variant_id",
    "title",
    "quantity",
    "unit_price",
    "line_total",
    "shipped_quantity",
    "refunded_quantity",
    "restocked_quantity",
)
STATE_FIELDS = (
    "sku_id",
    "removed",
    "location_id",
    "reserved_quantity",
    "deducted_quantity",
    "restocked_applied",
    "ledger_steps",
    "applied_components",
)


@dataclass(slots=True)
class Line:
    """One order line as evaluated: stored columns, its order's, and where its stock acts."""

    id: int | None
    order_id: int
    external_line_id: str
    merchant_sku: str | None
    channel_product_id: str | None
    channel_variant_id: str | None
    title: str
    quantity: int
    unit_price: Any
    line_total: Any
    shipped_quantity: int
    refunded_quantity: int
    restocked_quantity: int
    order_external_id: str
    order_created_at: datetime
    cancelled: bool
    payment_status: str
    province: str | None
    city: str | None
    sku_id: int | None = None
    sku_code: str | None = None
    removed: bool = False
    location_id: int | None = None
    reserved_quantity: int = 0
    deducted_quantity: int = 0
    restocked_applied: int = 0
    ledger_steps: dict[str, int] = field(default_factory=dict)
    applied_components: dict[str, int] | None = None
    warehouse_shipped_quantity: int = 0
    returned_quantity: int = 0
    stock_location_id: int = 0  # location_id, or the channel's fulfilment location
    stored: tuple[Any, ...] | None = None  # platform + state fields as read; None: not stored yet

    def values(self) -> tuple[Any, ...]:
        return _VALUES(self)


_VALUES = attrgetter(*PLATFORM_FIELDS, *STATE_FIELDS)

# The stored lines of orders already held, with their order's fields. Looked up from ``unnest`` of the ids,
# joined by key: index lookups whatever the statistics say. ``col = ANY(ids)`` let a stale estimate (tables
# growing fast in a backfill) choose a hash join over a scan of every order, once per batch.
LINES_SQL = """
SELECT l.id, l.order_id, l.external_line_id, l.merchant_sku, l.channel_product_id, l.channel_variant_id,
       l.title, l.quantity, l.unit_price, l.line_total, l.shipped_quantity, l.refunded_quantity,
       l.restocked_quantity, o.external_id AS order_external_id, o.created_at AS order_created_at,
       o.cancelled, o.payment_status,
       o.shipping_address ->> 'province' AS province, o.shipping_address ->> 'city' AS city,
       l.sku_id, s.code AS sku_code, l.removed, l.location_id, l.reserved_quantity, l.deducted_quantity,
       l.restocked_applied, l.ledger_steps, l.applied_components, l.warehouse_shipped_quantity,
       l.returned_quantity
  FROM (SELECT DISTINCT unnest(CAST(%(order_ids)b AS bigint[]))) AS k(order_id)
  JOIN orders o ON o.id = k.order_id
  JOIN order_lines l ON l.order_id = o.id
  LEFT JOIN skus s ON s.id = l.sku_id
"""


def _stored_lines(conn: Connection, order_ids: Sequence[int]) -> list[Line]:
    if not order_ids:
        return []
    lines = [Line(*row) for row in run(conn, LINES_SQL, {"order_ids": sorted(set(order_ids))})]
    for line in lines:
        line.stored = line.values()
    return lines


def _merge(stored: list[Line], landed: Mapping[int, CanonicalOrder]) -> list[Line]:
    """The lines of the landed orders' newest versions over the stored ones: a stored line takes the
    platform's fields (and is no longer removed); a stored line the new version lacks is removed (an edit
    removed it: it stops reserving); a new line starts holding nothing."""
    held_by_order: dict[int, dict[str, Line]] = {}
    lines: list[Line] = []
    for line in stored:
        if line.order_id in landed:
            held_by_order.setdefault(line.order_id, {})[line.external_line_id] = line
        else:
            lines.append(line)
    for order_id, order in landed.items():
        held = held_by_order.get(order_id, {})
        address = order.shipping_address
        province, city = (address.province, address.city) if address is not None else (None, None)
        for incoming in order.lines:
            platform = (
                (incoming.sku or "").strip() or None,
                incoming.channel_product_id or None,
                incoming.channel_variant_id or None,
                incoming.title or "",
                incoming.quantity,
                incoming.unit_price,
                incoming.line_total,
                incoming.shipped_quantity,
                incoming.refunded_quantity,
                incoming.restocked_quantity,
            )
            line = held.pop(incoming.external_line_id, None)
            if line is None:
                line = Line(
                    None, order_id, incoming.external_line_id, *platform, order.external_id, order.created_at,
                    order.cancelled, order.payment_status, province, city,
                )  # fmt: skip
            else:
                for name, value in zip(PLATFORM_FIELDS, platform, strict=True):
                    setattr(line, name, value)
                line.removed = False
                line.cancelled, line.payment_status = order.cancelled, order.payment_status
            lines.append(line)
        for line in held.values():  # the newest version lacks them
            line.removed = True
            lines.append(line)
    return lines


def _resolve_skus(conn: Connection, channel_id: int, lines: Iterable[Line]) -> None:
    """The internal SKU of lines that have none, through the channel's listings: merchant SKU code first,
    else (product, variant), else the product's variant-less listing. A resolved line keeps its SKU (its
    stock was applied to it)."""
    unresolved = [line for line in lines if line.sku_id is None]
    if not unresolved:
        return
    listings = run(
        conn,
        "SELECT cl.merchant_sku, cl.channel_product_id, cl.channel_variant_id, cl.sku_id, s.code "
        "FROM channel_listings cl JOIN skus s ON s.id = cl.sku_id "
        "WHERE cl.channel_id = %(channel_id)s "
        "AND (cl.merchant_sku = ANY(%(skus)b) OR cl.channel_product_id = ANY(%(products)b))",
        {
            "channel_id": channel_id,
            "skus": sorted({line.merchant_sku for line in unresolved if line.merchant_sku}),
            "products": sorted({line.channel_product_id for line in unresolved if line.channel_product_id}),
        },
    )
    by_sku = {row.merchant_sku: (row.sku_id, row.code) for row in listings if row.merchant_sku is not None}
    by_product = {
        (row.channel_product_id, row.channel_variant_id): (row.sku_id, row.code)
        for row in listings
        if row.channel_product_id is not None
    }
    for line in unresolved:
        found = (
            by_sku.get(line.merchant_sku)
            or by_product.get((line.channel_product_id, line.channel_variant_id))
            or by_product.get((line.channel_product_id, None))
        )
        if found is not None:
            line.sku_id, line.sku_code = found


# -- stock ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    """Stock a line's units act on: ``units`` of ``sku_id`` per unit of the line."""

    sku_id: int
    units: int = 1
    code: str | None = None  # a bundle component's SKU code (it names its ledger keys); None: the line's SKU


@dataclass(slots=True)
class _LinePlan:
    """One line: where it stands, where it should be, and the steps that get it there."""

    row: Any
    target_reserved: int
    target_deducted: int
    target_restocked: int
    reserved: int
    deducted: int
    restocked: int
    steps_taken: dict[str, int]
    parts: tuple[_Part, ...] = ()  # where its units act on stock: its SKU, or a bundle's components
    fact: Step | None = None  # shipments and returns (facts), with the reservation shipping consumes
    fact_parts: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, d_on_hand, d_reserved)
    reserve: Step | None = None  # the reservation (or release) to reach the target
    fact_ok: bool = True
    reserve_ok: bool = True
    ledger: list[LedgerRow] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return (self.reserved, self.deducted, self.restocked) == (
            self.target_reserved,
            self.target_deducted,
            self.target_restocked,
        )

    @property
    def has_stock_effect(self) -> bool:
        return bool(self.target_reserved or self.target_deducted or self.target_restocked)


def stock_targets(
    quantity: int,
    shipped: int,
    refunded: int,
    restocked: int,
    *,
    returned: int = 0,
    cancelled: bool,
    payment_status: str,
    removed: bool = False,
) -> tuple[int, int]:
    """(reserved, deducted) a line should have applied; see the module docstring. ``restocked`` is the
    platform's claim, ``returned`` the units physically returned: either says a refunded unit had shipped."""
    shipped = max(0, shipped)
    came_back = min(max(0, restocked, returned), shipped)
    if cancelled or payment_status == "voided" or removed:
        reserved = 0
    else:
        reserved = max(0, quantity - shipped - max(0, refunded - came_back))
    return reserved, shipped


def _plan(row: Any, components: tuple[_Part, ...] | None = None) -> _LinePlan:
    """``components``: a bundle line's (see ``_bundle_parts``); a plain line acts on its own SKU."""
    target = stock_targets(
        row.quantity,
        max(row.shipped_quantity, row.warehouse_shipped_quantity),
        row.refunded_quantity,
        row.restocked_quantity,
        returned=row.returned_quantity,
        cancelled=row.cancelled,
        payment_status=row.payment_status,
        removed=row.removed,
    )
    plan = _LinePlan(
        row,
        *target,
        row.restocked_applied,  # returns restock through warehouse.returns; what was booked stays
        row.reserved_quantity,
        row.deducted_quantity,
        row.restocked_applied,
        dict(row.ledger_steps),
    )
    if row.sku_id is None:
        return plan
    plan.parts = components or (_Part(row.sku_id),)
    sku_id, location_id = row.sku_id, row.stock_location_id
    ship = plan.target_deducted - plan.deducted
    back = plan.target_restocked - plan.restocked
    consumed = min(ship, plan.reserved) if ship > 0 else 0  # shipped units use up their reservation
    if ship > 0:
        plan.fact_parts.append(("deduct", -ship, -consumed))
    elif ship < 0:  # the platform took a shipment back (a cancelled fulfilment)
        plan.fact_parts.append(("adjust", -ship, 0))
    if back > 0:
        plan.fact_parts.append(("restock", back, 0))
    elif back < 0:
        plan.fact_parts.append(("adjust", back, 0))
    if plan.fact_parts:
        plan.fact = Step(sku_id, location_id, -ship + back, -consumed, phase=0)
    more = plan.target_reserved - (plan.reserved - consumed)
    if more:
        plan.reserve = Step(sku_id, location_id, 0, more, phase=1 if more > 0 else 0)
    return plan


def _settle(channel: Channel, plan: _LinePlan, compensations: list[tuple[_LinePlan, Step]]) -> None:
    """Book the steps that applied (ledger rows, new applied state); queue a release where a failed
    shipment step leaves the line holding more than its target."""
    if plan.fact is not None and plan.fact_ok:
        for kind, d_on_hand, d_reserved in plan.fact_parts:
            _ledger(channel, plan, kind, d_on_hand, d_reserved)
        plan.reserved += plan.fact.delta_reserved
        plan.deducted, plan.restocked = plan.target_deducted, plan.target_restocked
    if plan.reserve is not None and plan.reserve_ok:
        more = plan.reserve.delta_reserved
        _ledger(channel, plan, "reserve" if more > 0 else "release", 0, more)
        plan.reserved += more
    if plan.reserved > plan.target_reserved:
        extra = plan.reserved - plan.target_reserved
        compensations.append((plan, Step(plan.row.sku_id, plan.row.stock_location_id, 0, -extra)))


def _ledger(channel: Channel, plan: _LinePlan, kind: str, d_on_hand: int, d_reserved: int) -> None:
    taken = plan.steps_taken.get(kind, 0) + 1
    plan.steps_taken[kind] = taken
    row = plan.row
    key = f"{kind}:{channel.code}:{row.order_external_id}:{row.external_line_id}" + (
        f"#{taken}" if taken > 1 else ""
    )
    for part in plan.parts:
        plan.ledger.append(
            LedgerRow(
                key if part.code is None else f"{key}@{part.code}",
                part.sku_id,
                row.stock_location_id,
                kind,
                d_on_hand * part.units,
                d_reserved * part.units,
                row.order_id,
                row.id,
            )
        )


def _part_steps(plan: _LinePlan, step: Step) -> list[Step]:
    """A line's step (in the line's units) as steps of the stock its units act on."""
    return [
        Step(
            part.sku_id,
            step.location_id,
            step.delta_on_hand * part.units,
            step.delta_reserved * part.units,
            step.phase,
        )
        for part in plan.parts
    ]


def _bundle_parts(conn: Connection, rows: Sequence[Any]) -> dict[int, tuple[_Part, ...]]:
    """{line id: components} of the bundle lines among ``rows``.

    A line holding stock keeps the components it was applied to (``applied_components``), whatever the
    bundle's recipe says now; a line holding nothing takes the bundle's current recipe."""
    frozen = {row.id: row.applied_components for row in rows if row.applied_components and _holds(row)}
    fresh = {row.id: row.sku_id for row in rows if row.sku_id is not None and row.id not in frozen}
    if not fresh and not frozen:
        return {}
    recipes = bundle_recipes(conn, set(fresh.values()))
    parts = {
        line_id: tuple(_Part(component, units, code) for component, code, units in recipes[sku_id])
        for line_id, sku_id in fresh.items()
        if sku_id in recipes
    }
    if frozen:
        codes = sku_codes(conn, {int(sku_id) for held in frozen.values() for sku_id in held})
        for line_id, held in frozen.items():
            parts[line_id] = tuple(
                sorted(
                    (_Part(int(sku_id), units, codes[int(sku_id)]) for sku_id, units in held.items()),
                    key=lambda part: part.sku_id,
                )
            )
    return parts


def _holds(row: Any) -> bool:
    return bool(row.reserved_quantity or row.deducted_quantity or row.restocked_applied)


def _problems(conn: Connection, channel: Channel, plans: list[_LinePlan]) -> list[ExceptionRecord]:
    problems: list[ExceptionRecord] = []
    short: dict[tuple[str, str], list[tuple[_LinePlan, int]]] = {}
    for plan in plans:
        row = plan.row
        if row.sku_id is None:
            if plan.has_stock_effect:
                problems.append(_unknown_sku(channel, row))
            continue
        needed = 0
        if plan.fact is not None and not plan.fact_ok:
            needed += plan.fact.need
        if plan.reserve is not None and not plan.reserve_ok:
            needed += plan.reserve.need
        if needed > 0:
            short.setdefault((row.order_external_id, row.sku_code), []).append((plan, needed))
    if short:
        pairs = sorted(
            {
                (part.sku_id, p.row.stock_location_id)
                for lines in short.values()
                for p, _ in lines
                for part in p.parts
            }
        )
        available = availability(conn, pairs)
        codes = location_codes(conn, {p.row.stock_location_id for lines in short.values() for p, _ in lines})
        for (external_id, sku_code), lines in short.items():
            first = lines[0][0]
            location_id = first.row.stock_location_id
            needed = sum(n for _, n in lines)
            line_ids = ", ".join(p.row.external_line_id for p, _ in lines)
            buildable = min(available[(part.sku_id, location_id)] // part.units for part in first.parts)
            detail = (
                f"sku {sku_code} at {codes[location_id]}: needed {needed}, available {buildable} "
                f"(line {line_ids})"
            )
            if first.parts[0].code is not None:
                detail += "; a bundle of " + ", ".join(
                    f"{part.units} x {part.code} ({available[(part.sku_id, location_id)]} available)"
                    for part in first.parts
                )
            problems.append(ExceptionRecord("insufficient_stock", external_id, detail, None, sku_code))
    return problems


def _unknown_sku(channel: Channel, row: Any) -> ExceptionRecord:
    if row.merchant_sku:
        ref = row.merchant_sku
    elif row.channel_product_id:
        ref = f"product:{row.channel_product_id}" + (
            f"/variant:{row.channel_variant_id}" if row.channel_variant_id else ""
        )
    else:
        ref = "(no SKU or product id)"
    detail = (
        f"line {row.external_line_id}: channel SKU {row.merchant_sku!r}, product {row.channel_product_id!r}, "
        f"variant {row.channel_variant_id!r} has no listing on channel {channel.code}"
    )
    return ExceptionRecord("unknown_sku", row.order_external_id, detail, None, ref)


def evaluate(
    conn: Connection,
    channel: Channel,
    order_ids: Sequence[int],
    landed: Mapping[int, CanonicalOrder] | None = None,
    new_orders: frozenset[int] | set[int] = frozenset(),
) -> tuple[IngestCounts, list[ExceptionRecord]]:
    """Bring the stock applied for these (locked) orders' lines to their targets and write the lines;
    returns counts and problems. ``landed``: the orders whose newest version just landed (their lines come
    from it), ``new_orders`` those of them just inserted (nothing of theirs is stored to read)."""
    counts = IngestCounts()
    if not order_ids:
        return counts, []
    lines = _merge(_stored_lines(conn, [i for i in order_ids if i not in new_orders]), landed or {})
    new = [line for line in lines if line.id is None]
    for line, line_id in zip(new, next_ids(conn, "order_lines", len(new)), strict=True):
        line.id = line_id
    # Older orders first: they take stock first.
    lines.sort(key=lambda line: (line.order_created_at, line.order_external_id, line.id))
    _resolve_skus(conn, channel.id, lines)
    by_id = {line.id: line for line in lines}
    for line_id, location_id in route_unheld_lines(conn, channel.routing, channel.location_id, lines).items():
        by_id[line_id].location_id = location_id
    for line in lines:
        line.stock_location_id = line.location_id if line.location_id is not None else channel.location_id
    components = _bundle_parts(conn, lines)
    plans = [_plan(line, components.get(line.id)) for line in lines]

    steps: list[Step] = []
    owners: list[tuple[_LinePlan, str]] = []
    for plan in plans:
        for which in ("fact", "reserve"):
            step = getattr(plan, which)
            if step is not None:
                for part_step in _part_steps(plan, step):
                    steps.append(part_step)
                    owners.append((plan, which))
    results = apply_steps(conn, steps)
    for (plan, which), result in zip(owners, results, strict=True):
        if result is None:
            setattr(plan, f"{which}_ok", False)
    # A bundle takes all its components or none: undo the components that applied beside a short one.
    undo = [
        Step(step.sku_id, step.location_id, -step.delta_on_hand, -step.delta_reserved)
        for (plan, which), step, result in zip(owners, steps, results, strict=True)
        if result is not None and not getattr(plan, f"{which}_ok")
    ]
    if any(result is None for result in apply_steps(conn, undo)):  # an undo frees what it had taken
        raise RuntimeError("undoing a bundle component's step did not apply")

    compensations: list[tuple[_LinePlan, Step]] = []
    for plan in plans:
        _settle(channel, plan, compensations)
    compensated = apply_steps(conn, [s for plan, step in compensations for s in _part_steps(plan, step)])
    if any(result is None for result in compensated):  # a release cannot lack stock: the data is broken
        raise RuntimeError("a reservation release did not apply; stock_levels disagree with order_lines")
    for plan, step in compensations:
        _ledger(channel, plan, "release", 0, step.delta_reserved)
        plan.reserved += step.delta_reserved

    _write_lines(conn, plans)  # before the ledger rows that name them
    write_ledger(conn, [row for plan in plans for row in plan.ledger])
    for plan in plans:
        for row in plan.ledger:
            if row.kind == "reserve":
                counts.reserved_units += row.delta_reserved
            elif row.kind == "release":
                counts.released_units -= row.delta_reserved
            elif row.kind == "deduct":
                counts.deducted_units -= row.delta_on_hand
            elif row.kind == "restock":
                counts.restocked_units += row.delta_on_hand

    problems = _problems(conn, channel, plans)
    attention = {order_id: False for order_id in order_ids}
    for plan in plans:
        if not plan.settled:  # unresolved with a stock effect, or short of stock
            attention[plan.row.order_id] = True
    # An order just inserted needs no attention yet: only those that do are written (one lookup per order
    # for nothing cost Postgres 0.015 ms an order of a backfill, issue 22).
    attention = {i: flag for i, flag in attention.items() if flag or i not in new_orders}
    if attention:
        conn.execute(
            text(
                "UPDATE orders o SET needs_attention = v.flag "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:flags AS boolean[])) AS v(id, flag) "
                "WHERE o.id = v.id AND o.needs_attention IS DISTINCT FROM v.flag"
            ),
            {"ids": list(attention), "flags": list(attention.values())},
        )
    return counts, problems


LINE_COLUMN_TYPES = {
    "id": "bigint",
    "order_id": "bigint",
    "external_line_id": "text",
    "merchant_sku": "text",
    "channel_product_id": "text",
    "channel_variant_id": "text",
    "title": "text",
    "quantity": "int",
    "unit_price": "numeric",
    "line_total": "numeric",
    "shipped_quantity": "int",
    "refunded_quantity": "int",
    "restocked_quantity": "int",
    "sku_id": "bigint",
    "removed": "boolean",
    "location_id": "bigint",
    "reserved_quantity": "int",
    "deducted_quantity": "int",
    "restocked_applied": "int",
    "ledger_steps": "jsonb",
    "applied_components": "jsonb",
}
NEW_LINE_COLUMNS = tuple(
    (name, LINE_COLUMN_TYPES[name])
    for name in ("id", "order_id", "external_line_id", *PLATFORM_FIELDS, *STATE_FIELDS)
)
CHANGED_LINE_COLUMNS = tuple(
    (name, LINE_COLUMN_TYPES[name]) for name in ("id", *PLATFORM_FIELDS, *STATE_FIELDS)
)
UPDATE_LINES_SQL = f"""
UPDATE order_lines l
   SET {", ".join(f"{name} = v.{name}" for name, _ in CHANGED_LINE_COLUMNS[1:])}
  FROM {unnest(CHANGED_LINE_COLUMNS)}
 WHERE l.id = v.id
"""


def _write_lines(conn: Connection, plans: list[_LinePlan]) -> None:
    """Each line once, with what it holds now: new lines by COPY, stored lines that changed by one UPDATE."""
    for plan in plans:
        if plan.ledger:  # it applied stock: where, how much, which steps, which components
            line = plan.row
            line.location_id = line.stock_location_id
            line.reserved_quantity, line.deducted_quantity = plan.reserved, plan.deducted
            line.restocked_applied, line.ledger_steps = plan.restocked, plan.steps_taken
            line.applied_components = _applied_components(plan)
    if new := [plan.row for plan in plans if plan.row.stored is None]:
        copy_rows(conn, "order_lines", NEW_LINE_COLUMNS, (
            (line.id, line.order_id, line.external_line_id, *line.values()) for line in new
        ))  # fmt: skip
    if changed := [
        _as_update(line) for line in (plan.row for plan in plans) if line.stored not in (None, line.values())
    ]:
        run(conn, UPDATE_LINES_SQL, arrays(CHANGED_LINE_COLUMNS, changed))


def _as_update(line: Line) -> tuple[Any, ...]:
    # The UPDATE's jsonb arrays travel as text (cast per element); COPY's values as they are.
    values = dict(zip((*PLATFORM_FIELDS, *STATE_FIELDS), line.values(), strict=True))
    values["ledger_steps"] = json.dumps(line.ledger_steps)
    values["applied_components"] = _json_or_none(line.applied_components)
    return (line.id, *values.values())


def _applied_components(plan: _LinePlan) -> dict[str, int] | None:
    if not any(part.code for part in plan.parts) or not (plan.reserved or plan.deducted or plan.restocked):
        return None
    return {str(part.sku_id): part.units for part in plan.parts}


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def location_codes(conn: Connection, location_ids: Iterable[int]) -> dict[int, str]:
    return dict(
        run(conn, "SELECT id, code FROM locations WHERE id = ANY(%(ids)b)", {"ids": sorted(location_ids)})
    )


def sku_codes(conn: Connection, sku_ids: Iterable[int]) -> dict[int, str]:
    return dict(run(conn, "SELECT id, code FROM skus WHERE id = ANY(%(ids)b)", {"ids": sorted(sku_ids)}))
