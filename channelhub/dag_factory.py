"""The shape every per-channel DAG shares: one task, the channel's pool, retries with exponential backoff,
``max_active_runs=1``. The task's work is a function of ``channelhub.tasks`` (imported when the task runs, so
parsing the DAG files stays light); DAG files only choose the schedule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from importlib import import_module
from typing import Any

from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowFailException

from channelhub.alerts import HubNotifier
from channelhub.config import ChannelConfig, load_config
from connectors.errors import AuthError


def channel_dag(
    channel: ChannelConfig,
    *,
    kind: str,
    description: str,
    doc_md: str,
    schedule: Any,
    outlets: Sequence[Asset] = (),
    params: dict[str, Any] | None = None,
):  # -> airflow.sdk.DAG
    """DAG ``<kind>__<channel>`` whose task calls ``channelhub.tasks.<kind>(channel_code, context)``."""

    @dag(
        dag_id=f"{kind}__{channel.code}",
        description=description,
        doc_md=doc_md,
        schedule=schedule,
        start_date=channel.start_date,
        catchup=False,
        max_active_runs=1,
        tags=["channelhub", kind, channel.platform],
        params=params or {},
        default_args={
            "retries": channel.retries,
            "retry_delay": channel.retry_delay,
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
            "execution_timeout": timedelta(minutes=30),
            "on_failure_callback": [HubNotifier()],  # a run that failed for good alerts the people on duty
        },
    )
    def channel_dag_definition() -> None:
        @task(task_id=kind, pool=channel.pool, outlets=list(outlets))
        def run(**context: Any) -> dict:
            work = getattr(import_module("channelhub.tasks"), kind)
            try:
                return work(channel.code, context)
            except AuthError as refused:
                # Retrying a refused credential repeats the refusal (and may get the app locked out): the
                # run fails at once and alerts; a person fixes the Airflow connection and clears the run.
                raise AirflowFailException(str(refused)) from refused

        run()

    return channel_dag_definition()


def enabled_channels() -> list[ChannelConfig]:
    return [channel for channel in load_config().channels if channel.enabled]
