"""Land canonical orders in the warehouse and let their state drive stock (design.md invariants 1-5).

``ingest_orders`` applies one batch of one channel in one transaction:

1. every raw payload is landed once per (channel, sha256 of its canonical JSON), rejects included (as
   ``json`` text, by COPY: ``warehouse.exceptions.land_raw``);
2. orders are upserted with ``INSERT ... ON CONFLICT (channel_id, external_id) DO UPDATE ... WHERE`` the
   incoming version is different (digest of the canonical order) and not older (platform ``updated_at``),
   so concurrent writers can never regress an order; every conflicting row is locked, in external-id order.
   Orders no row held at a first lookup go by COPY instead (``_insert_new_orders``), and by the upsert
   after all when a concurrent writer inserted one of them meanwhile;
3. the lines of new and updated orders — and of unchanged orders still needing attention — are
   re-evaluated (``warehouse.line_stock``): each line's SKU resolves through the channel's listings, its
   stock targets are computed from the order's state and the difference to what was applied becomes
   conditional stock steps plus ledger rows (keys name the cause: ``reserve:<channel>:<order>:<line>``,
   ``#n`` for later steps); each line is written once, with what it holds;
4. what does not fit is queued (unknown_sku, insufficient_stock, the batch's rejects) and exceptions of
   these orders that no longer apply are resolved.

Personal data (``warehouse.retention``): a new version of an order whose personal data retention blanked
lands whole (the platform still holds it, and the order is live again: a change after closing, or a re-open)
and clears ``personal_data_erased_at``, so retention takes it again once it has been closed long enough. An
unchanged version stores nothing new (its raw payload's digest finds the masked row). A payload of an
erased order stored anew without becoming its version (an older version, a reject) clears the mark too.

A database error in the batch (not a deadlock, which retries the batch) redoes it order by order, each in
a savepoint, so only the bad order is queued (``apply_failed``) and the rest lands.

Stock targets per resolved line, at the line's location: the channel's fulfilment location, or where the
channel's routing rules send a line that holds nothing yet (``warehouse.route_lines``); kept on the line:

- shipped units are deducted from on-hand, consuming the line's reservation first; a line's shipped units
  are max(what the platform reports, what the hub's own warehouse reported: ``warehouse_shipped_quantity``,
  see ``warehouse.store_imports``), so one shipment reported by both sides deducts once;
- only a physical return raises on-hand: a return received at a store or warehouse (``warehouse.returns``)
  books its own ``restock`` at the receiving location (or that location's damaged location) and adds to the
  line's ``returned_quantity``. The platform's ``restocked_quantity`` (Shopify's restock_type, ...) is a
  claim: it restocks nothing (a refund without a physical return does not restock), so one return reported
  by both the platform and the store restocks once. Restocks an earlier hub applied from that claim
  (``restocked_applied``) stay as booked: history is never undone;
- reserved = 0 when the order is cancelled or voided or the line was removed, else
  ``quantity - shipped - (refunded - came back)``: units still to ship, where came back =
  min(max(platform restocked, physically returned), shipped): a refunded unit that came back had already
  shipped and does not reduce what is left to ship twice (an unshipped refunded unit releases its
  reservation).

A bundle SKU (``sku_components``) has no stock of its own: the stock policy sells it from its components, so
its lines apply every step to the components, ``units per bundle`` each, all of them or none (a short
component undoes the others), with ledger keys ending ``@<component sku>``. The components a line holds stock
of are kept on it (``applied_components``): a recipe changed later releases what was really reserved.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Connection, Engine, select, text
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from canonical.order import Address, CanonicalOrder, Customer, OrderLine, Totals
from warehouse import exceptions as queue
from warehouse.bulk import arrays, copy_new, run, unnest
from warehouse.catalog import CatalogError
from warehouse.db_errors import DB_ERRORS, error_text, is_retryable, raise_unless_the_rows_fault
from warehouse.exceptions import ExceptionRecord
from warehouse.line_stock import Channel, IngestCounts, evaluate, sku_codes
from warehouse.models import channels, locations, orders
from warehouse.stock import LedgerRow, write_ledger

log = logging.getLogger("warehouse.ingest")

# Exceptions an ingest clears itself: per order once a retry finds it fixed, or once a version lands.
ATTENTION_REASONS = ("unknown_sku", "insufficient_stock")
LANDING_REASONS = ("schema_invalid", "mapping_failed", "apply_failed")
MAX_QUANTITY = 2**31 - 1

T = TypeVar("T")


@dataclass(slots=True)
class Landed:
    """A payload that passed the schema check and mapping."""

    canonical: CanonicalOrder
    raw: dict[str, Any]


@dataclass(slots=True)
class Rejected:
    """A payload that did not: kept raw and queued under ``reason``."""

    external_id: str | None
    reason: str
    detail: str
    raw: object


@dataclass(slots=True)
class _Incoming:
    order: CanonicalOrder
    digest: str  # of the canonical order: a mapping fix re-applies even an unchanged payload
    raw: Any
    raw_payload_id: int | None = None


# -- entry points --------------------------------------------------------------------------------


def ingest_orders(
    engine: Engine, channel: str, landed: Sequence[Landed], rejected: Sequence[Rejected] = ()
) -> IngestCounts:
    """Apply one batch of one channel's orders (and queue its rejects); returns what happened."""
    if not landed and not rejected:
        return IngestCounts()
    ctx = _channel(engine, channel)
    incoming: list[_Incoming] = []
    rejects = list(rejected)
    for item in landed:
        problem = _problem(item.canonical)
        if problem is None:
            incoming.append(_incoming(item))
        else:
            rejects.append(
                Rejected(_text_or_none(item.canonical.external_id), "mapping_failed", problem, item.raw)
            )
    try:
        return _retrying(_ingest_batch, engine, ctx, incoming, rejects)
    except DB_ERRORS as err:
        raise_unless_the_rows_fault(err)
        log.warning(
            "channel %s: batch of %d failed (%s); applying it order by order",
            ctx.code,
            len(incoming) + len(rejects),
            error_text(err),
        )
    return _retrying(_ingest_one_by_one, engine, ctx, incoming, rejects)


def retry_attention(engine: Engine, channel: str, batch_size: int = 500) -> IngestCounts:
    """Re-evaluate the channel's orders that need attention (after mapping a SKU or receiving stock)."""
    ctx = _channel(engine, channel)
    counts = IngestCounts()
    after = ""
    while True:

        def one_batch(after: str = after) -> tuple[IngestCounts, str | None]:
            with engine.begin() as conn:
                rows = conn.execute(
                    select(orders.c.id, orders.c.external_id)
                    .where(
                        orders.c.channel_id == ctx.id, orders.c.needs_attention, orders.c.external_id > after
                    )
                    .order_by(orders.c.external_id)
                    .limit(batch_size)
                    .with_for_update()
                ).all()
                if not rows:
                    return IngestCounts(), None
                ids = [r.id for r in rows]
                batch_counts, problems = evaluate(conn, ctx, ids)
                _queue(conn, ctx, batch_counts, problems, [r.external_id for r in rows], [])
                return batch_counts, rows[-1].external_id

        batch_counts, last = _retrying(one_batch)
        counts.merge(batch_counts)
        if last is None:
            return counts
        after = last


def reevaluate_orders(conn: Connection, channel: str, order_ids: Sequence[int]) -> IngestCounts:
    """Bring these orders' stock to their targets inside the caller's transaction, which must hold their
    row locks (``SELECT ... FOR UPDATE``); queues or clears their attention exceptions like an ingest.

    For facts the hub learns outside the channel's payload (a shipment the warehouse reported)."""
    ctx = _channel_in(conn, channel)
    ids = sorted(set(order_ids))
    counts, problems = evaluate(conn, ctx, ids)
    external_ids = list(conn.execute(select(orders.c.external_id).where(orders.c.id.in_(ids))).scalars())
    _queue(conn, ctx, counts, problems, sorted(external_ids), [])
    return counts


def forget_versions(conn: Connection, channel: str, external_ids: Sequence[str]) -> int:
    """Make the next ingest of these orders re-apply them even when the channel's version is the one already
    held (a person chose the channel's version over a warehouse row that disagrees with it)."""
    if not external_ids:
        return 0
    done = conn.execute(
        orders.update()
        .where(
            orders.c.channel_id == _channel_in(conn, channel).id, orders.c.external_id.in_(list(external_ids))
        )
        .values(payload_digest="")
    )
    return done.rowcount


# Lines holding a reservation of the SKU at the location: lines of the SKU itself, and bundle lines whose
# applied components include it.
RESERVING_LINES_SQL = """
SELECT l.id, l.order_id, l.external_line_id, l.reserved_quantity, l.ledger_steps, l.applied_components,
       o.external_id AS order_external_id, c.id AS channel_id, c.code AS channel_code, s.code AS sku_code
  FROM order_lines l
  JOIN orders o ON o.id = l.order_id
  JOIN channels c ON c.id = o.channel_id
  JOIN skus s ON s.id = l.sku_id
 WHERE l.location_id = %(location_id)s AND l.reserved_quantity > 0
   AND ((l.sku_id = %(sku_id)s AND l.applied_components IS NULL)
        OR (l.applied_components IS NOT NULL AND l.applied_components ? %(sku_key)s))
 ORDER BY o.created_at DESC, o.id DESC, l.id DESC
   FOR UPDATE OF o, l
"""


def release_beyond_on_hand(conn: Connection, sku_id: int, location_id: int, cause: str) -> int:
    """On-hand fell below what is reserved (a stock count or a store sale found fewer units): release the
    newest orders' reservations of this SKU at this location until ``reserved <= on_hand`` (invariant 3:
    never negative availability). A bundle line holding it releases whole bundles, with their other
    components. Their orders need attention with an ``insufficient_stock`` exception naming the SKU,
    location and shortfall, and ``retry_attention`` re-reserves them once stock comes.

    Runs in the caller's transaction; returns the units of this SKU released."""
    level = conn.execute(
        text(
            "SELECT on_hand, reserved FROM stock_levels "
            "WHERE sku_id = :sku_id AND location_id = :location_id FOR UPDATE"
        ),
        {"sku_id": sku_id, "location_id": location_id},
    ).first()
    if level is None or level.reserved <= level.on_hand:
        return 0
    shortfall = level.reserved - level.on_hand
    location_code = conn.execute(select(locations.c.code).where(locations.c.id == location_id)).scalar_one()
    left = shortfall
    ledger: list[LedgerRow] = []
    applied: list[tuple[Any, ...]] = []
    released: Counter[int] = Counter()  # units released per SKU (a bundle's other components too)
    problems: dict[int, list[ExceptionRecord]] = {}
    params = {"sku_id": sku_id, "location_id": location_id, "sku_key": str(sku_id)}
    for line in run(conn, RESERVING_LINES_SQL, params):
        if left <= 0:
            break
        parts = {int(k): units for k, units in (line.applied_components or {str(sku_id): 1}).items()}
        take = min(line.reserved_quantity, -(-left // parts[sku_id]))  # whole line units, rounded up
        left -= take * parts[sku_id]
        steps = dict(line.ledger_steps)
        steps["release"] = steps.get("release", 0) + 1
        key = f"release:{line.channel_code}:{line.order_external_id}:{line.external_line_id}" + (
            f"#{steps['release']}" if steps["release"] > 1 else ""
        )
        codes = sku_codes(conn, parts) if line.applied_components else {}
        what = f"sku {codes[sku_id]} (in bundle {line.sku_code})" if codes else f"sku {line.sku_code}"
        for part_sku_id, units in sorted(parts.items()):
            part_key = f"{key}@{codes[part_sku_id]}" if codes else key
            ledger.append(
                LedgerRow(
                    part_key, part_sku_id, location_id, "release", 0, -take * units, line.order_id, line.id
                )
            )
            released[part_sku_id] += take * units
        applied.append((line.id, line.reserved_quantity - take, json.dumps(steps)))
        detail = (
            f"{what} at {location_code}: {cause} left on-hand {level.on_hand} below the "
            f"{level.reserved} reserved (short {shortfall}); released {take} of line "
            f"{line.external_line_id}, which waits for stock"
        )
        problems.setdefault(line.channel_id, []).append(
            ExceptionRecord("insufficient_stock", line.order_external_id, detail, None, line.sku_code)
        )
    if left > 0:  # reserved units no order line holds: the levels and the lines disagree
        raise RuntimeError(f"sku_id={sku_id} at {location_code}: {left} reserved units held by no order line")
    write_ledger(conn, ledger)
    conn.execute(
        text(
            "UPDATE stock_levels l SET reserved = l.reserved - v.released, updated_at = now() "
            "FROM unnest(CAST(:skus AS bigint[]), CAST(:released AS int[])) AS v(sku_id, released) "
            "WHERE l.sku_id = v.sku_id AND l.location_id = :location_id"
        ),
        {
            "skus": sorted(released),
            "released": [released[k] for k in sorted(released)],
            "location_id": location_id,
        },
    )
    conn.execute(
        text(
            "UPDATE order_lines l SET reserved_quantity = v.reserved, ledger_steps = v.steps "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:reserved AS int[]), CAST(:steps AS jsonb[])) "
            "AS v(id, reserved, steps) WHERE l.id = v.id"
        ),
        {
            "ids": [a[0] for a in applied],
            "reserved": [a[1] for a in applied],
            "steps": [a[2] for a in applied],
        },
    )
    conn.execute(
        orders.update().where(orders.c.id.in_([row.order_id for row in ledger])).values(needs_attention=True)
    )
    for channel_id, records in sorted(problems.items()):
        queue.upsert_exceptions(conn, channel_id, records)
    log.warning(
        "sku_id=%s at %s: %s; released %d reserved units", sku_id, location_code, cause, released[sku_id]
    )
    return released[sku_id]


# -- batch and fallback --------------------------------------------------------------------------


def _ingest_batch(
    engine: Engine, ctx: Channel, incoming: list[_Incoming], rejects: list[Rejected]
) -> IngestCounts:
    with engine.begin() as conn:
        return _apply(conn, ctx, incoming, rejects)


def _ingest_one_by_one(
    engine: Engine, ctx: Channel, incoming: list[_Incoming], rejects: list[Rejected]
) -> IngestCounts:
    counts = IngestCounts()
    with engine.begin() as conn:
        for item in [*incoming, *rejects]:
            one = ([item], []) if isinstance(item, _Incoming) else ([], [item])
            try:
                with conn.begin_nested():
                    counts.merge(_apply(conn, ctx, *one))
            except DB_ERRORS as err:
                raise_unless_the_rows_fault(err)
                counts.merge(_queue_apply_failed(conn, ctx, item, err))
    return counts


def _queue_apply_failed(
    conn: Connection, ctx: Channel, item: _Incoming | Rejected, err: Exception
) -> IngestCounts:
    """The database refused this order: queue it with the error, with its raw payload if that can land."""
    if isinstance(item, _Incoming):
        external_id, reason, detail, raw = item.order.external_id, "apply_failed", error_text(err), item.raw
    else:
        external_id, reason, detail, raw = item.external_id, item.reason, item.detail, item.raw
    external_id = _clean(external_id)
    log.warning("channel %s: order %s queued as %s: %s", ctx.code, external_id, reason, detail)
    raw_payload_id = None
    try:
        with conn.begin_nested():
            raw_payload_id = queue.land_raw(conn, ctx.id, [(external_id, raw)])[0]
    except DB_ERRORS as land_err:
        raise_unless_the_rows_fault(land_err)
        detail += f" (raw payload not stored: {error_text(land_err)})"
    record = ExceptionRecord(reason, external_id, _clean(detail) or reason, raw_payload_id)
    queue.upsert_exceptions(conn, ctx.id, [record])
    return IngestCounts(exceptions=Counter([reason]))


def _retrying(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` (one transaction), again from the start after a deadlock or serialization failure."""
    retrying = Retrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(8),
        wait=wait_random_exponential(multiplier=0.02, max=1.0),
        reraise=True,
        before_sleep=lambda state: log.info("retrying after %s", error_text(state.outcome.exception())),
    )
    return retrying(fn, *args)


# -- one transaction -----------------------------------------------------------------------------


def _apply(
    conn: Connection, ctx: Channel, incoming: list[_Incoming], rejects: list[Rejected]
) -> IngestCounts:
    counts = IngestCounts()
    raw_ids = queue.land_raw(
        conn,
        ctx.id,
        [(i.order.external_id, i.raw) for i in incoming] + [(r.external_id, r.raw) for r in rejects],
    )
    for item, raw_id in zip(incoming, raw_ids, strict=False):
        item.raw_payload_id = raw_id
    problems = [
        ExceptionRecord(r.reason, _text_or_none(r.external_id), r.detail, raw_id)
        for r, raw_id in zip(rejects, raw_ids[len(incoming) :], strict=True)
    ]

    winners = _latest_versions(incoming, counts)
    held = _existing_orders(conn, ctx, [w.order.external_id for w in winners])  # unlocked: new or not
    upserted = _insert_new_orders(conn, ctx, [w for w in winners if w.order.external_id not in held])
    upserted.update(_upsert_orders(conn, ctx, [w for w in winners if w.order.external_id in held]))
    existing = _existing_orders(  # read again under the upsert's row locks
        conn, ctx, [w.order.external_id for w in winners if w.order.external_id not in upserted]
    )
    changed: dict[str, tuple[int, bool]] = {}  # external_id -> (order id, inserted)
    to_evaluate: list[int] = []
    for item in winners:
        external_id = item.order.external_id
        if external_id in upserted:
            order_id, inserted = upserted[external_id]
            changed[external_id] = (order_id, inserted)
            to_evaluate.append(order_id)
            if inserted:
                counts.new += 1
            else:
                counts.updated += 1
            continue
        order_id, digest, needs_attention, _ = existing[external_id]
        if digest == item.digest:
            counts.unchanged += 1
        else:
            counts.stale += 1
        if needs_attention:  # a retry re-evaluates it: a SKU may be mapped or stock received since
            to_evaluate.append(order_id)

    erased = {e for e, (*_, was_erased) in existing.items() if was_erased}
    _unerase(
        conn,
        ctx,
        [i.raw_payload_id for i in incoming if i.order.external_id in erased and i.raw_payload_id]
        + [raw_id for r, raw_id in zip(rejects, raw_ids[len(incoming) :], strict=True) if r.external_id],
    )

    by_external_id = {w.order.external_id: w for w in winners}
    evaluated_counts, attention = evaluate(
        conn,
        ctx,
        to_evaluate,
        landed={order_id: by_external_id[e].order for e, (order_id, _) in changed.items()},
        new_orders={order_id for order_id, inserted in changed.values() if inserted},
    )
    counts.merge(evaluated_counts)
    evaluated_ids = [
        e for e in sorted(by_external_id) if e in changed or existing.get(e, (0, "", False, False))[2]
    ]
    _queue(conn, ctx, counts, [*problems, *attention], evaluated_ids, sorted(changed))
    return counts


def _queue(
    conn: Connection,
    ctx: Channel,
    counts: IngestCounts,
    problems: list[ExceptionRecord],
    evaluated: list[str],
    landed: list[str],
) -> None:
    distinct = {p.identity: p for p in problems}
    queue.upsert_exceptions(conn, ctx.id, list(distinct.values()))
    counts.exceptions.update(p.reason for p in distinct.values())
    queue.resolve_cleared(conn, ctx.id, evaluated, ATTENTION_REASONS, problems)
    queue.resolve_cleared(conn, ctx.id, landed, LANDING_REASONS, problems)


def _latest_versions(incoming: list[_Incoming], counts: IngestCounts) -> list[_Incoming]:
    """One version per order (ON CONFLICT cannot touch a row twice in a statement), in external-id order
    so that concurrent batches lock orders in the same order. The others count as unchanged or stale."""
    latest: dict[str, _Incoming] = {}
    for item in incoming:
        current = latest.get(item.order.external_id)
        if current is None:
            latest[item.order.external_id] = item
            continue
        if item.order.updated_at >= current.order.updated_at:  # the later one fetched wins a tie
            latest[item.order.external_id] = item
            loser, winner = current, item
        else:
            loser, winner = item, current
        if loser.digest == winner.digest:
            counts.unchanged += 1
        else:
            counts.stale += 1
    return [latest[e] for e in sorted(latest)]


ORDER_COLUMNS = (
    ("external_id", "text"),
    ("number", "text"),
    ("platform", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("currency", "text"),
    ("payment_status", "text"),
    ("fulfillment_status", "text"),
    ("cancelled", "boolean"),
    ("cancelled_at", "timestamptz"),
    ("subtotal", "numeric"),
    ("discount", "numeric"),
    ("shipping", "numeric"),
    ("tax", "numeric"),
    ("total", "numeric"),
    ("refunded", "numeric"),
    ("customer", "jsonb"),
    ("shipping_address", "jsonb"),
    ("payload_digest", "text"),
    ("raw_payload_id", "bigint"),
)
_ORDER_NAMES = [name for name, _ in ORDER_COLUMNS]

# The version guard lives in the statement: an identical or older version never overwrites, and every
# conflicting row is locked (in array order, i.e. external-id order) even when the guard says no.
UPSERT_ORDERS_SQL = f"""
INSERT INTO orders AS o (channel_id, {", ".join(_ORDER_NAMES)})
SELECT CAST(%(channel_id)s AS bigint), v.* FROM {unnest(ORDER_COLUMNS)}
ON CONFLICT (channel_id, external_id) DO UPDATE
   SET {", ".join(f"{name} = EXCLUDED.{name}" for name in _ORDER_NAMES[1:])}, changed_at = now(),
       personal_data_erased_at = NULL
 WHERE o.payload_digest <> EXCLUDED.payload_digest AND EXCLUDED.updated_at >= o.updated_at
RETURNING o.id, o.external_id, (o.xmax = 0) AS inserted
"""


def _upsert_orders(conn: Connection, ctx: Channel, items: list[_Incoming]) -> dict[str, tuple[int, bool]]:
    """Insert or update; returns {external_id: (id, inserted)} of the rows written (not unchanged/stale)."""
    if not items:
        return {}
    params = arrays(ORDER_COLUMNS, [_order_row(item) for item in items])
    for name in ("customer", "shipping_address"):  # a jsonb[] parameter travels as text, cast per element
        params[name] = [
            None if value is None else json.dumps(value, ensure_ascii=False) for value in params[name]
        ]
    rows = run(conn, UPSERT_ORDERS_SQL, {"channel_id": ctx.id, **params})
    return {external_id: (order_id, inserted) for order_id, external_id, inserted in rows}


def _insert_new_orders(conn: Connection, ctx: Channel, items: list[_Incoming]) -> dict[str, tuple[int, bool]]:
    """Orders no row held at the lookup, by COPY (ids drawn first) in a savepoint; where a concurrent writer
    inserted one of them since, the upsert (and its version guard) takes them all. COPY cost Postgres about
    half of the upsert for a new order (issue 22)."""
    if not items:
        return {}
    rows = [(ctx.id, *_order_row(item)) for item in items]
    order_ids = copy_new(conn, "orders", (("channel_id", "bigint"), *ORDER_COLUMNS), rows)
    if order_ids is None:
        return _upsert_orders(conn, ctx, items)
    return {item.order.external_id: (order_id, True) for order_id, item in zip(order_ids, items, strict=True)}


def _order_row(item: _Incoming) -> tuple[Any, ...]:
    order, totals = item.order, item.order.totals
    return (
        order.external_id,
        order.number,
        order.platform,
        order.created_at,
        order.updated_at,
        order.currency,
        order.payment_status,
        order.fulfillment_status,
        order.cancelled,
        order.cancelled_at,
        totals.subtotal,
        totals.discount,
        totals.shipping,
        totals.tax,
        totals.total,
        totals.refunded,
        _fields_or_none(order.customer),
        _fields_or_none(order.shipping_address),
        item.digest,
        item.raw_payload_id,
    )


def _existing_orders(
    conn: Connection, ctx: Channel, external_ids: list[str]
) -> dict[str, tuple[int, str, bool, bool]]:
    """{external_id: (id, digest, needs attention, personal data erased)} of orders held already."""
    if not external_ids:
        return {}
    rows = run(
        conn,
        "SELECT external_id, id, payload_digest, needs_attention, personal_data_erased_at IS NOT NULL "
        "FROM orders WHERE channel_id = %(channel_id)s AND external_id = ANY(%(external_ids)b)",
        {"channel_id": ctx.id, "external_ids": external_ids},
    )
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def _unerase(conn: Connection, ctx: Channel, raw_ids: list[int]) -> None:
    """Orders that retention erased and that have one of these raw payloads stored unmasked (an older
    version, a reject of it) hold personal data again: retention takes them again."""
    if raw_ids:
        conn.execute(
            text(
                """
                UPDATE orders o SET personal_data_erased_at = NULL
                  FROM raw_payloads r
                 WHERE r.id = ANY(CAST(:raw_ids AS bigint[])) AND r.personal_data_erased_at IS NULL
                   AND o.channel_id = :channel_id AND o.external_id = r.external_id
                   AND o.personal_data_erased_at IS NOT NULL
                """
            ),
            {"raw_ids": sorted(set(raw_ids)), "channel_id": ctx.id},
        )


# -- small helpers -------------------------------------------------------------------------------


def _channel(engine: Engine, code: str) -> Channel:
    with engine.connect() as conn:
        row = conn.execute(
            select(channels.c.id, channels.c.code, channels.c.fulfilment_location_id, channels.c.routing)
            .join(locations, locations.c.id == channels.c.fulfilment_location_id)
            .where(channels.c.code == code)
        ).first()
    if row is None:
        raise CatalogError(f"unknown channel {code!r}: register it (and its fulfilment location) first")
    return Channel(*row)


def _channel_in(conn: Connection, code: str) -> Channel:
    row = conn.execute(
        select(channels.c.id, channels.c.code, channels.c.fulfilment_location_id, channels.c.routing).where(
            channels.c.code == code
        )
    ).first()
    if row is None:
        raise CatalogError(f"unknown channel {code!r}: register it (and its fulfilment location) first")
    return Channel(*row)


def _incoming(item: Landed) -> _Incoming:
    return _Incoming(item.canonical, order_digest(item.canonical), item.raw)


def order_digest(order: CanonicalOrder) -> str:
    """sha256 over every field of the canonical order: equal digests mean nothing the hub stores changed.

    Taken of the canonical order rather than the raw payload, so a fixed mapping re-applies an order even
    when the platform's payload did not change. msgspec writes the fields as JSON (times as the mappings
    give them: UTC) in 6 us against 24 us for the ``repr`` of a tuple walk it replaced (issue 22); the
    ``DIGEST_PREFIX`` tells its digests from the older ones.
    """
    return DIGEST_PREFIX + hashlib.sha256(_DIGEST_ENCODER.encode(order)).hexdigest()


DIGEST_PREFIX = "2:"  # older digests (a bare sha256 hex of the tuple walk) differ from any taken now
_DIGEST_ENCODER = msgspec.json.Encoder()


_DATACLASS_FIELDS = {
    cls: tuple(f.name for f in fields(cls)) for cls in (CanonicalOrder, Totals, OrderLine, Customer, Address)
}


def _fields_or_none(value: Any) -> dict[str, Any] | None:
    return None if value is None else {f: getattr(value, f) for f in _DATACLASS_FIELDS[type(value)]}


def _problem(order: CanonicalOrder) -> str | None:
    """What the warehouse cannot store faithfully (a mapping bug): the order is queued, not guessed at."""
    if not isinstance(order.external_id, str) or not order.external_id.strip():
        return f"external_id must be a non-empty string, got {order.external_id!r}"
    for name in ("created_at", "updated_at", "cancelled_at"):
        value = getattr(order, name)
        if value is not None and value.tzinfo is None:
            return f"{name} {value!r} is naive: convert platform times to UTC at the edge"
    for name in ("subtotal", "discount", "shipping", "tax", "total", "refunded"):
        value = getattr(order.totals, name)
        if not isinstance(value, Decimal) or not value.is_finite():
            return f"totals.{name} must be a finite Decimal, got {value!r}"
    seen: set[str] = set()
    for index, line in enumerate(order.lines):
        where = f"lines[{index}]"
        if not line.external_line_id or line.external_line_id in seen:
            return f"{where}.external_line_id {line.external_line_id!r} is empty or repeated"
        seen.add(line.external_line_id)
        for name in ("quantity", "shipped_quantity", "refunded_quantity", "restocked_quantity"):
            value = getattr(line, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUANTITY:
                return f"{where}.{name} must be a whole number of units, got {value!r}"
        for name in ("unit_price", "line_total"):
            value = getattr(line, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                return f"{where}.{name} must be a finite Decimal, got {value!r}"
    return None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _clean(value: str | None) -> str | None:
    # Postgres text cannot hold NUL; an exception record must always be storable.
    return None if value is None else value.replace("\x00", "\ufffd")
