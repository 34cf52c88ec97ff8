"""Hub-wide ops DAGs: ``exceptions_retest`` (every 30 minutes: retry the open exceptions that can be re-tested
unattended and close the ones that now pass) and ``channel_health`` (every 15 minutes: alert when a channel
has had no good sync for its ``alert_after_missed_syncs`` intervals, and again when it recovers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from channelhub.alerts import HubNotifier

DEFAULTS = {
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": [HubNotifier()],
}


@dag(
    dag_id="exceptions_retest",
    description="Re-test open exceptions and close the ones that now pass",
    doc_md=__doc__,
    schedule=timedelta(minutes=30),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["channelhub", "ops"],
    default_args=DEFAULTS,
)
def exceptions_retest() -> None:
    @task(task_id="retest")
    def retest(**context: Any) -> dict:
        from channelhub.tasks import retest_exceptions

        return retest_exceptions(context)

    retest()


@dag(
    dag_id="channel_health",
    description="Alert on channels whose sync is behind",
    doc_md=__doc__,
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["channelhub", "ops"],
    default_args=DEFAULTS,
)
def channel_health() -> None:
    @task(task_id="check_syncs")
    def check_syncs(**context: Any) -> dict:
        from channelhub.tasks import check_channel_health

        return check_channel_health(context)

    check_syncs()


exceptions_retest()
channel_health()
