"""Per channel and stream (e.g. "orders"): how far a pull has got (watermark) and what its last run did."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from warehouse.catalog import channel_id_of
from warehouse.models import channels, sync_state


def get_watermark(conn: Connection, channel: str, stream: str) -> datetime | None:
    """The end of the newest window pulled (UTC), or None before the first run."""
    value = conn.execute(
        select(sync_state.c.watermark)
        .join(channels, channels.c.id == sync_state.c.channel_id)
        .where(channels.c.code == channel, sync_state.c.stream == stream)
    ).scalar()
    return value.astimezone(UTC) if value is not None else None


def record_run(
    conn: Connection, channel: str, stream: str, watermark: datetime, counts: dict[str, Any]
) -> None:
    """Note a finished run. The watermark only moves forward: a backfill of an old window keeps it."""
    if watermark.tzinfo is None:
        raise ValueError(f"naive watermark {watermark!r}: use a UTC datetime")
    stmt = insert(sync_state).values(
        channel_id=channel_id_of(conn, channel),
        stream=stream,
        watermark=watermark,
        last_run_at=func.now(),
        last_counts=json.loads(json.dumps(counts, default=str)),  # JSON-safe (datetimes -> ISO text)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["channel_id", "stream"],
        set_={
            "watermark": func.greatest(sync_state.c.watermark, stmt.excluded.watermark),
            "last_run_at": stmt.excluded.last_run_at,
            "last_counts": stmt.excluded.last_counts,
        },
    )
    conn.execute(stmt)


def get_state(conn: Connection, channel: str, stream: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(sync_state.c.watermark, sync_state.c.last_run_at, sync_state.c.last_counts)
        .join(channels, channels.c.id == sync_state.c.channel_id)
        .where(channels.c.code == channel, sync_state.c.stream == stream)
    ).first()
    return dict(row._mapping) if row else None
