"""The webhook receiver's durable inbox: verified push events, stored before the platform is answered.

The receiver stores a delivery's events in one transaction (``store_events``: a redelivered event id is a
no-op) and only then answers 200; appliers take pending rows with ``claim_pending`` (``FOR UPDATE SKIP
LOCKED`` inside the caller's transaction, held while the row is applied, so two appliers never take one row
and a killed applier's rows go back to pending with its transaction), then ``mark_done`` or ``mark_failed``
(backoff, ``failed`` after ``max_attempts``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from warehouse.catalog import channel_id_of
from warehouse.models import channels, webhook_inbox

# Header names never stored (whatever their case): a credential may ride in any of them.
_SECRET_HEADER_PARTS = ("authorization", "cookie", "token", "secret", "password", "api-key", "apikey")


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """One verified event to store (the receiver builds it from ``connectors.webhooks.WebhookEvent``)."""

    event_id: str
    topic: str
    order_id: str | None
    order_payload: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    channel: str
    event_id: str
    topic: str
    order_external_id: str | None
    order_payload: dict[str, Any] | None
    attempts: int


def storable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with lower-cased names, without any that may carry a credential."""
    kept = {}
    for name, value in headers.items():
        lowered = name.lower()
        if not any(part in lowered for part in _SECRET_HEADER_PARTS):
            kept[lowered] = value
    return kept


def store_events(
    conn: Connection,
    channel: str,
    events: Sequence[InboxEvent],
    *,
    raw_body: bytes,
    headers: Mapping[str, str],
    received_at: datetime,
) -> list[int]:
    """Insert ``events`` of ``channel``; returns the ids of the rows that are new (a duplicate event id of the
    channel inserts nothing and returns nothing)."""
    if not events:
        return []
    channel_id = channel_id_of(conn, channel)
    kept_headers = storable_headers(headers)
    rows = [
        {
            "channel_id": channel_id,
            "event_id": event.event_id,
            "topic": event.topic,
            "order_external_id": event.order_id,
            "order_payload": event.order_payload,
            "raw_body": raw_body,
            "headers": kept_headers,
            "received_at": received_at,
        }
        for event in {e.event_id: e for e in events}.values()  # one delivery may repeat an event
    ]
    inserted = conn.execute(
        insert(webhook_inbox)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["channel_id", "event_id"])
        .returning(webhook_inbox.c.id)
    )
    return [row.id for row in inserted]


def claim_pending(
    conn: Connection,
    *,
    ids: Iterable[int] | None = None,
    older_than: timedelta | None = None,
    now: datetime | None = None,
    limit: int = 100,
) -> list[InboxRow]:
    """Lock up to ``limit`` pending rows due now (``ids`` only, when given; received before ``now -
    older_than``, when given), oldest first, skipping rows another applier holds. The locks last as long as
    the caller's transaction: mark the rows in it."""
    clock = now if now is not None else func.now()
    due = [
        webhook_inbox.c.status == "pending",
        or_(webhook_inbox.c.next_attempt_at.is_(None), webhook_inbox.c.next_attempt_at <= clock),
    ]
    if ids is not None:
        due.append(webhook_inbox.c.id.in_(list(ids)))
    if older_than is not None:
        due.append(webhook_inbox.c.received_at <= clock - older_than)
    query = (
        select(
            webhook_inbox.c.id,
            channels.c.code.label("channel"),
            webhook_inbox.c.event_id,
            webhook_inbox.c.topic,
            webhook_inbox.c.order_external_id,
            webhook_inbox.c.order_payload,
            webhook_inbox.c.attempts,
        )
        .join(channels, channels.c.id == webhook_inbox.c.channel_id)
        .where(and_(*due))
        .order_by(webhook_inbox.c.received_at, webhook_inbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=webhook_inbox)
    )
    return [InboxRow(**row._mapping) for row in conn.execute(query)]


def mark_done(conn: Connection, ids: Sequence[int], status: str = "applied") -> None:
    """``applied`` (its order went through ingest) or ``no_order`` (nothing to apply).

    An applied row drops its body and order: they hold the buyer's personal data unmasked, and the order's
    payload now lives on in ``raw_payloads``, masked as ingest masks every payload (issue 17's rules). The
    event id, topic and headers stay, for dedupe and for the record."""
    if status not in ("applied", "no_order"):
        raise ValueError(f"not a final status: {status!r}")
    if ids:
        done = {"status": status, "applied_at": func.now(), "last_error": None, "next_attempt_at": None}
        if status == "applied":
            done |= {"raw_body": b"", "order_payload": None}
        conn.execute(update(webhook_inbox).where(webhook_inbox.c.id.in_(list(ids))).values(**done))


def mark_failed(
    conn: Connection,
    row_id: int,
    error: str,
    *,
    max_attempts: int,
    backoff: timedelta,
    max_backoff: timedelta = timedelta(hours=1),
) -> str:
    """One more failed attempt: pending again after ``backoff`` doubled per attempt (at most
    ``max_backoff``), ``failed`` after ``max_attempts``; returns the row's new status."""
    attempts = conn.execute(select(webhook_inbox.c.attempts).where(webhook_inbox.c.id == row_id)).scalar_one()
    attempts += 1
    status = "failed" if attempts >= max_attempts else "pending"
    delay = min(backoff * (2 ** (attempts - 1)), max_backoff)
    conn.execute(
        update(webhook_inbox)
        .where(webhook_inbox.c.id == row_id)
        .values(
            attempts=attempts,
            status=status,
            last_error=error[:1000],
            next_attempt_at=func.now() + delay if status == "pending" else None,
        )
    )
    return status


def inbox_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Rows per channel and status (the ChannelHub page and the summary)."""
    query = (
        select(channels.c.code, webhook_inbox.c.status, func.count())
        .join(channels, channels.c.id == webhook_inbox.c.channel_id)
        .group_by(channels.c.code, webhook_inbox.c.status)
        .order_by(channels.c.code, webhook_inbox.c.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for code, status, count in conn.execute(query):
        counts.setdefault(code, {})[status] = count
    return counts
