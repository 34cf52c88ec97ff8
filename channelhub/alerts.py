"""Alerts for the people on duty: a run that failed for good, a channel with no good sync for N intervals.

Every alert is logged (logger ``channelhub.alerts``). When the Airflow connection ``channelhub_alerts`` is
defined, it is also POSTed as JSON to the webhook URL in its host (a chat or paging webhook URL usually
embeds a token, so it is a credential: it lives in a connection and is never logged), e.g.
``AIRFLOW_CONN_CHANNELHUB_ALERTS='{"conn_type": "http", "host": "https://hooks.example.com/T0/B0/XYZ"}'``.
A webhook that fails is logged and never fails the job that raised the alert.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseNotifier
from sqlalchemy import Engine
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from channelhub.config import HubConfig
from channelhub.credentials import CredentialsError, load_credentials
from connectors.errors import register_secret
from connectors.http import install_urllib_filter
from warehouse import health

log = logging.getLogger("channelhub.alerts")

ALERTS_CONN_ID = "channelhub_alerts"
WEBHOOK_TIMEOUT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Alert:
    key: str  # what the alert is about, e.g. "stale_sync:shop_main"
    severity: str  # error | warning | resolved
    title: str
    message: str
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at or datetime.now(UTC).isoformat(), "source": "channelhub"}


def webhook_url() -> str | None:
    try:
        return load_credentials(ALERTS_CONN_ID).base_url or None
    except CredentialsError:
        return None


def send(alert: Alert) -> bool:
    """Log the alert and, when a webhook is configured, deliver it; True when it reached the webhook."""
    level = logging.INFO if alert.severity == "resolved" else logging.ERROR
    log.log(level, "ALERT %s [%s] %s: %s", alert.severity.upper(), alert.key, alert.title, alert.message)
    url = webhook_url()
    if url is None:
        return False
    # The URL is a credential (its path holds the webhook's token): urllib3 logs the path at DEBUG.
    parts = urlsplit(url)
    register_secret(parts.path + (f"?{parts.query}" if parts.query else ""))
    install_urllib_filter()
    try:
        for attempt in Retrying(
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception_type(requests.RequestException),
            reraise=True,
        ):
            with attempt:
                response = requests.post(url, json=alert.as_dict(), timeout=WEBHOOK_TIMEOUT_SECONDS)
                response.raise_for_status()
    except requests.RequestException as err:
        # Never the URL: it holds the webhook's token.
        status = getattr(err.response, "status_code", None)
        log.error(
            "alert webhook delivery failed: %s%s", type(err).__name__, f" (HTTP {status})" if status else ""
        )
        return False
    return True


class HubNotifier(BaseNotifier):
    """Airflow ``on_failure_callback`` of every hub DAG's task: the run failed after its retries."""

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        dag_id = getattr(ti, "dag_id", None) or context["dag"].dag_id
        run_id = getattr(context.get("dag_run"), "run_id", "?")
        error = context.get("exception")
        where = f"run {run_id}, task {getattr(ti, 'task_id', '?')}, try {getattr(ti, 'try_number', '?')}"
        # A chat webhook is no place for an exception's text (hosts, SQL, a platform's answer): it names the
        # kind and a log id, and this log line, beside the task's own log, has the rest.
        log_id = uuid.uuid4().hex[:12]
        if error is not None:
            log.error("%s failed, %s [log id %s]: %s: %s", dag_id, where, log_id, type(error).__name__, error)
        what = (
            f"{type(error).__name__} (log id {log_id}; the task log has the cause)"
            if error
            else "see the task log"
        )
        send(Alert(f"failed_run:{dag_id}", "error", f"{dag_id} failed", f"{where}: {what}"))


def check_stale_syncs(engine: Engine, config: HubConfig, now: datetime | None = None) -> list[Alert]:
    """Alert (once) for each enabled channel with no good sync for ``alert_after_missed_syncs`` intervals,
    and (once) when it syncs again; returns the alerts sent."""
    now = now or datetime.now(UTC)
    sent = []
    with engine.begin() as conn:
        by_channel = {row["channel"]: row for row in health.channel_health(conn)}
        for channel in config.channels:
            if not channel.enabled:
                continue
            key = f"stale_sync:{channel.code}"
            allowed = channel.stale_after
            watermark = by_channel.get(channel.code, {}).get("watermark")
            behind = None if watermark is None else now - watermark
            if behind is None or behind > allowed:
                since = (
                    "never synced"
                    if watermark is None
                    else f"last synced up to {watermark:%Y-%m-%d %H:%M} UTC"
                )
                message = f"no good sync of {channel.code} for over {allowed} ({since})"
                if health.open_alert(conn, key, message):
                    sent.append(Alert(key, "warning", f"{channel.code}: sync is behind", message))
            elif health.close_alert(conn, key) is not None:
                sent.append(
                    Alert(
                        key,
                        "resolved",
                        f"{channel.code}: sync caught up",
                        f"synced up to {watermark:%Y-%m-%d %H:%M} UTC",
                    )
                )
    for alert in sent:  # after the commit: a slow webhook never holds the alert rows
        send(alert)
    return sent
