"""One DAG per configured channel, ``sync_orders__<channel>``: pull its data interval into the warehouse.

The DAG only decides *when* and *which window*; the work is ``channelhub.sync.sync_orders``, the same function
the CLI and the tests call. A DeltaDataIntervalTimetable gives every run a real data interval, so an Airflow
backfill over past dates re-pulls exactly those windows (plus the channel's overlap).
"""

from __future__ import annotations

from airflow.sdk import Param
from airflow.timetables.interval import DeltaDataIntervalTimetable

from channelhub.assets import WAREHOUSE_STOCK
from channelhub.dag_factory import channel_dag, enabled_channels

DOC = """
### Order sync for channel `{code}` ({platform})

Each run pulls the orders whose **updated time** falls in the run's data interval, reaching back
`{overlap}` before it, validates them against the platform schema, maps them to canonical orders and
applies them to the warehouse (reservations included). Orders that do not fit go to the exception
queue with a typed reason; the rest of the batch carries on.

* Credentials: Airflow connection `{conn_id}`.
* Re-pull a lost window: `airflow backfill create --dag-id {dag_id} --from-date <start> --to-date <end>`
  (re-running a window already synced changes nothing).
* First load or an ad-hoc repair: trigger a run with `{{"since": "2026-11-01T00:00:00Z"}}` to pull from
  that instant up to the run's interval end.
* The task's return value (XCom) and log hold the run's counts.
"""

for channel in enabled_channels():
    globals()[channel.dag_id] = channel_dag(
        channel,
        kind="sync_orders",
        description=f"Pull {channel.platform} orders of {channel.code} into the warehouse",
        doc_md=DOC.format(
            code=channel.code,
            platform=channel.platform,
            overlap=channel.overlap,
            conn_id=channel.conn_id,
            dag_id=channel.dag_id,
        ),
        schedule=DeltaDataIntervalTimetable(channel.schedule),
        # New orders reserve stock: the stock push DAGs run as soon as a sync lands.
        outlets=[WAREHOUSE_STOCK],
        params={
            "since": Param(
                None,
                type=["null", "string"],
                format="date-time",
                description="Manual runs only: pull from this instant instead of the interval start.",
            )
        },
    )
