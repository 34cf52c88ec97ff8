"""Keep the planner's statistics of the tables ingest grows up to date.

Ingest looks a batch's rows up by key; the planner only chooses index lookups when it knows how big the
tables are and how their keys spread. Autovacuum's ANALYZE keeps that knowledge, but it can be switched off
or lag behind a backfill that lands a million orders in minutes, and without statistics the planner took a
batch's lookup of its order lines for a scan of all of them: a backfill slowed down as it went. So, as the
Postgres manual advises after a bulk load, a sync that grew a table by a tenth since its last ANALYZE
analyzes it (the same rule as autovacuum's, checked in line).
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text

log = logging.getLogger("warehouse.maintenance")

GROWN_BY_INGEST = ("raw_payloads", "orders", "order_lines", "stock_ledger")
STALE_SQL = """
SELECT relname FROM pg_stat_user_tables
 WHERE schemaname = current_schema() AND relname = ANY(:tables)
   AND n_mod_since_analyze > :threshold + :scale * greatest(n_live_tup, 0)
 ORDER BY relname
"""


def analyze_if_stale(
    engine: Engine, tables: tuple[str, ...] = GROWN_BY_INGEST, threshold: int = 1000, scale: float = 0.1
) -> list[str]:
    """ANALYZE each of ``tables`` changed in more than ``threshold + scale * rows`` rows since its last
    ANALYZE; returns the tables analyzed."""
    with engine.connect() as conn:
        stale = [
            row[0]
            for row in conn.execute(
                text(STALE_SQL), {"tables": list(tables), "threshold": threshold, "scale": scale}
            )
        ]
        for table in stale:  # names from the fixed list above, never from input
            conn.execute(text(f'ANALYZE "{table}"'))
        conn.commit()
    if stale:
        log.info("analyzed %s (grown by a tenth since their statistics)", ", ".join(stale))
    return stale
