"""Hub-wide ops DAGs: ``exceptions_retest`` (every 30 minutes: retry the open exceptions that can be re-tested
unattended and close the ones that now pass), ``channel_health`` (every 15 minutes: alert when a channel
has had no good sync for its ``alert_after_missed_syncs`` intervals, and again when it recovers) and
``personal_data_retention`` (daily: blank the buyers' personal data of orders closed for
``retention.personal_data_days``) and ``webhook_inbox_sweep`` (every 5 minutes: apply the webhook inbox rows a
receiver left pending, so an event stored by a killed receiver still lands) and ``returns_check`` (daily:
queue returned units a channel has not refunded after 14 days, reserve exchanges waiting for stock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

from airflow.sdk import dag, task

from channelhub.alerts import HubNotifier

DEFAULTS = {
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": [HubNotifier()],
}


def hub_dag(dag_id: str, description: str, every: timedelta, task_id: str, work: str):  # -> airflow.sdk.DAG
    """A hub-wide DAG of one task that calls ``channelhub.tasks.<work>(context)`` every ``every``."""

    @dag(
        dag_id=dag_id,
        description=description,
        doc_md=__doc__,
        schedule=every,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["channelhub", "ops"],
        default_args=DEFAULTS,
    )
    def definition() -> None:
        @task(task_id=task_id)
        def run(**context: Any) -> dict:
            return getattr(import_module("channelhub.tasks"), work)(context)

        run()

    return definition()


hub_dag(
    "exceptions_retest",
    "Re-test open exceptions and close the ones that now pass",
    timedelta(minutes=30),
    "retest",
    "retest_exceptions",
)
hub_dag(
    "channel_health", "Alert on channels whose sync is behind", timedelta(minutes=15), "check_syncs",
    "check_channel_health",
)  # fmt: skip
hub_dag(
    "personal_data_retention",
    "Blank buyers' personal data of orders closed for the configured days",
    timedelta(days=1),
    "erase_personal_data",
    "erase_personal_data",
)
hub_dag(
    "webhook_inbox_sweep",
    "Apply the webhook inbox rows a receiver left pending",
    timedelta(minutes=5),
    "sweep",
    "sweep_webhook_inbox",
)
hub_dag(
    "returns_check",
    "Queue returns not refunded in time; reserve exchanges waiting for stock",
    timedelta(days=1),
    "check_returns",
    "check_returns",
)
