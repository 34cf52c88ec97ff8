"""The exception queue: everything that did not fit, with a typed reason and the raw payload kept.

One OPEN exception per (channel, reason, order — or the raw payload when the order id is unknown — , sku);
a problem of no channel (a bad row of a store count or sales file) has channel NULL, one per subject too:
recording the same problem again bumps ``attempts`` and refreshes ``detail`` instead of adding a row.
Ops resolve or ignore an exception; ingest resolves ``unknown_sku`` / ``insufficient_stock`` itself once a
retry finds the order fixed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from warehouse.bulk import arrays, copy_new, run, unnest
from warehouse.models import (
    EXCEPTION_SKU,
    EXCEPTION_SUBJECT,
    channels,
    exception_actions,
    exceptions,
    raw_payloads,
)

# The reason codes in use (others are accepted, so that a new connector can queue its own).
REASONS = (
    "schema_invalid",
    "mapping_failed",
    "unknown_sku",
    "insufficient_stock",
    "apply_failed",  # the database refused an order that passed mapping (kept raw, with the error)
    "amount_mismatch",
    "status_mismatch",
    "bad_address",
    "push_failed",
    "bad_import_row",  # a row of a store/warehouse import file that could not apply (detail: file:line: why)
    "ledger_drift",  # a stock level that reconciliation could not bring back to its ledger sums
)
DETAIL_LIMIT = 4000
CLOSING_ACTIONS = {"resolved": "resolve", "ignored": "ignore"}
AUTO_ACTOR = "hub:ingest"  # the actor of resolutions a later ingest or import made on its own
# The payload goes to COPY as the UTF-8 bytes of its JSON text: what binary COPY sends for a json column.
RAW_COLUMNS = (("channel_id", "bigint"), ("external_id", "text"), ("digest", "text"), ("payload", "json"))
# When COPY lost a race: the payload travels as text[] cast per row (a json[] parameter costs more).
RAW_COLUMNS_AS_TEXT = (*RAW_COLUMNS[:3], ("payload", "text"))


@dataclass(slots=True, frozen=True)
class ExceptionRecord:
    """One problem to queue (the batch form of ``record_exception``)."""

    reason: str
    external_id: str | None
    detail: str
    raw_payload_id: int | None = None
    sku: str | None = None

    @property
    def identity(self) -> tuple[str, str, str]:
        subject = self.external_id if self.external_id is not None else f"raw:{self.raw_payload_id or ''}"
        return (self.reason, subject, self.sku or "")


_CANONICAL_ENCODER = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> str:
    """The JSON text a digest is taken of: sorted keys, no insignificant whitespace.

    msgspec writes it ~4x faster than ``json.dumps`` (it was a tenth of ingest time) and the same text for
    what JSON decoding yields, but for floats, written in their shortest form (``0.00001`` for ``1e-05``).
    What it cannot encode (lone surrogates) takes the ``json`` path.
    """
    return canonical_json_bytes(value).decode("utf-8")


def canonical_json_bytes(value: Any) -> bytes:
    """``canonical_json`` as UTF-8, as it is digested and stored: no decoding and encoding it again."""
    try:
        return _CANONICAL_ENCODER.encode(value)
    except (TypeError, ValueError, UnicodeError, msgspec.EncodeError):
        text_ = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return text_.encode("utf-8")


def digest_of(json_text: str | bytes) -> str:
    return hashlib.sha256(json_text.encode("utf-8") if isinstance(json_text, str) else json_text).hexdigest()


def land_raw(conn: Connection, channel_id: int | None, items: Sequence[tuple[str | None, Any]]) -> list[int]:
    """Store raw payloads once per (channel, digest); returns the raw_payload id of each item, in order.
    ``channel_id`` None: payloads of no channel (rows of store/warehouse import files)."""
    texts = [canonical_json_bytes(payload) for _, payload in items]
    digests = [digest_of(t) for t in texts]
    ids = _raw_ids(conn, channel_id, set(digests))
    missing: dict[str, tuple[int | None, str | None, str, bytes]] = {}
    for (external_id, _), text_, digest in zip(items, texts, digests, strict=True):
        if digest not in ids and digest not in missing:
            missing[digest] = (channel_id, external_id, digest, text_)
    if missing:
        # Sorted by digest so that concurrent writers of the same payloads wait in one order.
        new_rows = [missing[d] for d in sorted(missing)]
        raw_ids = copy_new(conn, "raw_payloads", RAW_COLUMNS, new_rows)
        if raw_ids is not None:
            ids.update((row[2], raw_id) for row, raw_id in zip(new_rows, raw_ids, strict=True))
        else:  # a concurrent writer landed some of them since the lookup
            landed = run(
                conn,
                f"INSERT INTO raw_payloads (channel_id, external_id, digest, payload) "
                f"SELECT channel_id, external_id, digest, CAST(payload AS json) "
                f"FROM {unnest(RAW_COLUMNS_AS_TEXT)} ON CONFLICT (channel_id, digest) DO NOTHING "
                "RETURNING digest, id",
                arrays(RAW_COLUMNS_AS_TEXT, [(*row[:3], row[3].decode("utf-8")) for row in new_rows]),
            )
            ids.update((digest, raw_id) for digest, raw_id in landed)
            if beaten := set(missing) - ids.keys():
                ids.update(_raw_ids(conn, channel_id, beaten))
    return [ids[d] for d in digests]


def _raw_ids(conn: Connection, channel_id: int | None, digests: set[str]) -> dict[str, int]:
    if not digests:
        return {}
    channel_match = "channel_id IS NULL" if channel_id is None else "channel_id = %(channel_id)s"
    rows = run(
        conn,
        f"SELECT digest, id FROM raw_payloads WHERE {channel_match} AND digest = ANY(%(digests)b)",
        {"channel_id": channel_id, "digests": sorted(digests)},
    )
    return {digest: raw_id for digest, raw_id in rows}


def upsert_exceptions(
    conn: Connection, channel_id: int | None, records: Sequence[ExceptionRecord]
) -> list[int]:
    """Open (or bump) one exception per record; returns their ids in the given order."""
    if not records:
        return []
    merged: dict[tuple[str, str, str], ExceptionRecord] = {}
    for record in records:
        merged[record.identity] = record  # the last word on one problem wins within a batch
    stmt = pg_insert(exceptions)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            exceptions.c.channel_id,
            exceptions.c.reason,
            text(f"({EXCEPTION_SUBJECT})"),
            text(f"({EXCEPTION_SKU})"),
        ],
        index_where=text("status = 'open'"),
        set_={
            "attempts": exceptions.c.attempts + 1,
            "detail": excluded.detail,
            "raw_payload_id": func.coalesce(excluded.raw_payload_id, exceptions.c.raw_payload_id),
            "updated_at": func.now(),
        },
    ).returning(exceptions.c.id)
    ids: dict[tuple[str, str, str], int] = {}
    for key in sorted(merged):  # a stable order, so concurrent writers do not deadlock on these rows
        record = merged[key]
        ids[key] = conn.execute(
            stmt,
            {
                "channel_id": channel_id,
                "reason": record.reason,
                "external_id": record.external_id,
                "raw_payload_id": record.raw_payload_id,
                "sku": record.sku,
                "detail": record.detail[:DETAIL_LIMIT],
            },
        ).scalar_one()
    return [ids[r.identity] for r in records]


def record_exception(
    conn: Connection,
    *,
    channel: str | None,
    reason: str,
    external_id: str | None,
    detail: str,
    raw: Any = None,
    raw_payload_id: int | None = None,
    sku: str | None = None,
) -> int:
    """Queue one problem (landing ``raw`` first when given); returns the exception id. ``channel`` None: a
    problem of no channel (a bad row of a store/warehouse import file)."""
    if not reason or not isinstance(reason, str):
        raise ValueError(f"an exception needs a reason code, got {reason!r}")
    channel_id = None if channel is None else _channel_id(conn, channel)
    if raw is not None and raw_payload_id is None:
        raw_payload_id = land_raw(conn, channel_id, [(external_id, raw)])[0]
    record = ExceptionRecord(reason, external_id, detail, raw_payload_id, sku)
    return upsert_exceptions(conn, channel_id, [record])[0]


@dataclass(frozen=True, slots=True)
class ExceptionFilter:
    """Which exceptions to list or act on; every field left at its default matches all."""

    status: str | None = "open"  # None: any status
    channel: str | None = None
    reason: str | None = None
    sku: str | None = None
    external_id: str | None = None
    older_than: timedelta | None = None  # first queued at least this long ago
    ids: tuple[int, ...] = ()
    limit: int | None = None

    def where(self) -> list[Any]:
        conditions: list[Any] = []
        if self.status is not None:
            conditions.append(exceptions.c.status == self.status)
        if self.channel is not None:
            conditions.append(channels.c.code == self.channel)
        if self.reason is not None:
            conditions.append(exceptions.c.reason == self.reason)
        if self.sku is not None:
            conditions.append(exceptions.c.sku == self.sku)
        if self.external_id is not None:
            conditions.append(exceptions.c.external_id == self.external_id)
        if self.older_than is not None:
            conditions.append(exceptions.c.created_at <= func.now() - self.older_than)
        if self.ids:
            conditions.append(exceptions.c.id.in_(self.ids))
        return conditions


def search(conn: Connection, filters: ExceptionFilter) -> list[dict[str, Any]]:
    """Exceptions matching ``filters``, oldest first, with their channel code (None: a problem of no
    channel)."""
    query = (
        select(channels.c.code.label("channel"), *[c for c in exceptions.c if c.name != "channel_id"])
        .outerjoin(channels, channels.c.id == exceptions.c.channel_id)
        .where(*filters.where())
        .order_by(exceptions.c.created_at, exceptions.c.id)
        .limit(filters.limit)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def list_open(
    conn: Connection, channel: str | None = None, reason: str | None = None
) -> list[dict[str, Any]]:
    """Open exceptions, oldest first, with their channel code (None for problems of no channel)."""
    return search(conn, ExceptionFilter(channel=channel, reason=reason))


def get(conn: Connection, exception_id: int) -> dict[str, Any] | None:
    """One exception with its raw payload (``payload``), e.g. to re-map it after a mapping fix."""
    row = conn.execute(
        select(channels.c.code.label("channel"), *exceptions.c, raw_payloads.c.payload)
        .outerjoin(channels, channels.c.id == exceptions.c.channel_id)
        .outerjoin(raw_payloads, raw_payloads.c.id == exceptions.c.raw_payload_id)
        .where(exceptions.c.id == exception_id)
    ).first()
    return dict(row._mapping) if row else None


def close(conn: Connection, exception_id: int, *, status: str, actor: str, note: str | None = None) -> bool:
    """Close an open exception as ``resolved`` or ``ignored`` on a person's (or a job's) word, logged with
    who and why; False when it was not open."""
    if status not in ("resolved", "ignored"):
        raise ValueError(f"close as 'resolved' or 'ignored', not {status!r}")
    done = conn.execute(
        exceptions.update()
        .where(exceptions.c.id == exception_id, exceptions.c.status == "open")
        .values(status=status, note=note, resolved_at=func.now(), updated_at=func.now())
    )
    if done.rowcount != 1:
        return False
    log_action(conn, exception_id, CLOSING_ACTIONS[status], actor, note)
    return True


def close_many(
    conn: Connection, exception_ids: Sequence[int], *, status: str, actor: str, note: str | None = None
) -> list[int]:
    """``close`` for many exceptions in one UPDATE (and one INSERT of their audit lines); returns the ids
    that were open and are now closed."""
    if status not in ("resolved", "ignored"):
        raise ValueError(f"close as 'resolved' or 'ignored', not {status!r}")
    closed = list(
        conn.execute(
            exceptions.update()
            .where(exceptions.c.id.in_(sorted(set(exception_ids))), exceptions.c.status == "open")
            .values(status=status, note=note, resolved_at=func.now(), updated_at=func.now())
            .returning(exceptions.c.id)
        ).scalars()
    )
    if closed:
        conn.execute(
            insert(exception_actions),
            [
                {"exception_id": i, "action": CLOSING_ACTIONS[status], "actor": actor, "note": note}
                for i in sorted(closed)
            ],
        )
    return closed


def log_action(
    conn: Connection, exception_id: int, action: str, actor: str, note: str | None = None, outcome: str = ""
) -> None:
    """One line of an exception's audit trail: who did what, why, and what came of it."""
    conn.execute(
        insert(exception_actions).values(
            exception_id=exception_id, action=action, actor=actor, note=note, outcome=outcome[:DETAIL_LIMIT]
        )
    )


def actions_of(conn: Connection, exception_id: int) -> list[dict[str, Any]]:
    """An exception's audit trail, oldest first."""
    rows = conn.execute(
        select(exception_actions)
        .where(exception_actions.c.exception_id == exception_id)
        .order_by(exception_actions.c.created_at, exception_actions.c.id)
    )
    return [dict(row._mapping) for row in rows]


def resolve_cleared(
    conn: Connection,
    channel_id: int,
    external_ids: Sequence[str],
    reasons: Sequence[str],
    still_open: Sequence[ExceptionRecord] = (),
    note: str = "cleared: a later ingest found the order fixed",
) -> int:
    """Resolve the open exceptions of these orders and reasons, except the problems in ``still_open``."""
    if not external_ids:
        return 0
    keep = [r for r in still_open if r.external_id is not None]
    result = conn.execute(
        text(
            """
            UPDATE exceptions e
               SET status = 'resolved', resolved_at = now(), updated_at = now(), note = :note
             WHERE e.channel_id = :channel_id AND e.status = 'open'
               AND e.reason = ANY(CAST(:reasons AS text[]))
               AND e.external_id = ANY(CAST(:external_ids AS text[]))
               AND NOT EXISTS (
                   SELECT 1
                     FROM unnest(CAST(:k_ext AS text[]), CAST(:k_reason AS text[]), CAST(:k_sku AS text[]))
                          AS k(external_id, reason, sku)
                    WHERE k.external_id = e.external_id AND k.reason = e.reason
                      AND k.sku = coalesce(e.sku, ''))
            RETURNING e.id
            """
        ),
        {
            "note": note,
            "channel_id": channel_id,
            "reasons": list(reasons),
            "external_ids": sorted(set(external_ids)),
            "k_ext": [r.external_id for r in keep],
            "k_reason": [r.reason for r in keep],
            "k_sku": [r.sku or "" for r in keep],
        },
    )
    closed = [row.id for row in result]
    log_auto_resolved(conn, closed, note)
    return len(closed)


def log_auto_resolved(conn: Connection, exception_ids: Sequence[int], note: str) -> None:
    """Audit the exceptions that a later ingest or import found fixed and closed on its own."""
    if exception_ids:
        conn.execute(
            insert(exception_actions),
            [
                {"exception_id": i, "action": "auto_resolve", "actor": AUTO_ACTOR, "note": note}
                for i in exception_ids
            ],
        )


def _channel_id(conn: Connection, code: str) -> int:
    from warehouse.catalog import channel_id_of

    return channel_id_of(conn, code)
