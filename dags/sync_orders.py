"""One DAG per configured channel, ``sync_orders__<channel>``: pull its data interval into the warehouse.

The DAG only decides *when* and *which window*; the work is ``channelhub.sync.sync_orders``, the same function
the CLI and the tests call. A DeltaDataIntervalTimetable gives every run a real data interval, so an Airflow
backfill over past dates re-pulls exactly those windows (plus the channel's overlap).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.interval import DeltaDataIntervalTimetable

from channelhub.config import ChannelConfig, load_config

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


def build_dag(channel: ChannelConfig):  # -> airflow.sdk.DAG
    @dag(
        dag_id=channel.dag_id,
        description=f"Pull {channel.platform} orders of {channel.code} into the warehouse",
        doc_md=DOC.format(
            code=channel.code,
            platform=channel.platform,
            overlap=channel.overlap,
            conn_id=channel.conn_id,
            dag_id=channel.dag_id,
        ),
        schedule=DeltaDataIntervalTimetable(channel.schedule),
        start_date=channel.start_date,
        catchup=False,
        max_active_runs=1,
        tags=["channelhub", "sync", channel.platform],
        params={
            "since": Param(
                None,
                type=["null", "string"],
                format="date-time",
                description="Manual runs only: pull from this instant instead of the interval start.",
            )
        },
        default_args={
            "retries": channel.retries,
            "retry_delay": channel.retry_delay,
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
            "execution_timeout": timedelta(minutes=30),
        },
    )
    def sync_orders_dag() -> None:
        @task(task_id="sync_orders", pool=channel.pool)
        def sync_orders_task(
            data_interval_start=None, data_interval_end=None, params=None, dag_run=None
        ) -> dict:
            # Imported here so that parsing the DAG file stays light.
            from channelhub.db import get_engine
            from channelhub.sync import parse_instant, register_config, sync_orders

            config = load_config()
            engine = get_engine()
            register_config(engine, config)
            configured = config.channel(channel.code)
            # Airflow 3 gives a manual run without a logical date no data interval: it covers the
            # schedule interval up to the moment it was triggered (or from its "since" param).
            window_end = data_interval_end or dag_run.run_after
            since = (params or {}).get("since")
            if since:
                window_start = parse_instant(since)
            else:
                window_start = data_interval_start or window_end - configured.schedule
            result = sync_orders(engine, configured, window_start, window_end)
            print(result.summary_line())  # the run's counts, readable in the task log
            return result.as_dict()

        sync_orders_task()

    return sync_orders_dag()


for _channel in load_config().channels:
    if _channel.enabled:
        globals()[_channel.dag_id] = build_dag(_channel)
