"""Per channel, what ops look at first: the last good sync and how far behind it is, what its last run warned
of, recent orders, open exceptions by reason (the ChannelHub page in the Airflow UI and the stale-sync alert
read it); and which
alerts are open, so each problem is notified when it starts and when it ends, not on every check."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, text
from sqlalchemy.dialects.postgresql import insert

from warehouse.models import open_alerts

HEALTH_SQL = """
SELECT c.code AS channel, c.platform,
       s.last_run_at AS last_good_sync,
       s.watermark,
       extract(epoch FROM now() - s.watermark)::float AS lag_seconds,
       coalesce(s.last_counts->'warnings', '[]'::jsonb) AS warnings,
       (SELECT count(*) FROM orders o
         WHERE o.channel_id = c.id AND o.created_at >= now() - interval '1 hour') AS orders_last_hour,
       (SELECT count(*) FROM orders o
         WHERE o.channel_id = c.id AND o.created_at >= now() - interval '1 day') AS orders_last_day,
       coalesce((SELECT jsonb_object_agg(reason, n) FROM (
                    SELECT e.reason, count(*) AS n FROM exceptions e
                     WHERE e.channel_id = c.id AND e.status = 'open' GROUP BY e.reason) r), '{}'::jsonb)
           AS open_exceptions
  FROM channels c
  LEFT JOIN sync_state s ON s.channel_id = c.id AND s.stream = 'orders'
 WHERE c.platform <> 'hub'  -- hub-side orders (exchanges, warehouse.returns) are synced from nowhere
 ORDER BY c.code
"""


def channel_health(conn: Connection) -> list[dict[str, Any]]:
    """One dict per channel: channel, platform, last_good_sync (when the last sync run finished, None before
    the first), watermark (the end of the newest window pulled), lag_seconds (now - watermark),
    orders_last_hour / orders_last_day (by the platform's creation time), open_exceptions ({reason: n}),
    warnings (the last run's ``[{code, message}]``: a run without any clears them)."""
    return [
        {**row._mapping, "open_exceptions": dict(row.open_exceptions), "warnings": list(row.warnings)}
        for row in conn.execute(text(HEALTH_SQL))
    ]


def open_alert(conn: Connection, key: str, message: str) -> bool:
    """Note that the problem ``key`` is happening; True only when it was not already open (notify once)."""
    stmt = insert(open_alerts).values(key=key, message=message).on_conflict_do_nothing()
    return conn.execute(stmt.returning(open_alerts.c.key)).scalar() is not None


def close_alert(conn: Connection, key: str) -> str | None:
    """The problem ``key`` is over; returns its message when it was open (notify that it recovered)."""
    return conn.execute(
        delete(open_alerts).where(open_alerts.c.key == key).returning(open_alerts.c.message)
    ).scalar()
