"""Applying the webhook inbox: each pending event's order goes through exactly what the scheduled sync runs.

For each claimed row: the order as the body carried it, or fetched with the channel's connector
(``get_order``); ``Platform.prepare`` (schema check, mapping) -> ``Landed`` / ``Rejected`` / ``Skipped``; then
``warehouse.ingest.ingest_orders`` per channel, as ``channelhub.sync`` does (a bad payload is an exception
with its typed reason, nothing is lost). A fetch that fails leaves the row pending with a backoff (``failed``
after ``MAX_ATTEMPTS``; the next scheduled sync still lands the order). After a batch whose ingest changed
anything, ``stock_changed`` is called once (one asset event, so ``push_stock__*`` runs for every channel).

``sweep_inbox`` applies what a killed receiver left pending: the receiver runs it at start and every
``SWEEP_EVERY_SECONDS``; ``channelhub webhooks sweep`` and the ``webhook_inbox_sweep`` DAG run it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from channelhub.config import ChannelConfig, HubConfig
from channelhub.credentials import ChannelCredentials, load_credentials
from channelhub.platforms import ChannelConnector, Skipped, channel_connector, get_platform
from warehouse import webhook_inbox
from warehouse.ingest import IngestCounts, Landed, Rejected, ingest_orders

log = logging.getLogger("channelhub.webhooks")

MAX_ATTEMPTS = 8
RETRY_BACKOFF = timedelta(seconds=30)  # doubled per failed attempt, at most an hour
BATCH_ROWS = 100
SWEEP_OLDER_THAN = timedelta(seconds=30)  # younger pending rows are the live worker's

StockChanged = Callable[[dict[str, Any]], None]
CredentialsFor = Callable[[ChannelConfig], ChannelCredentials]


def credentials_from_airflow(channel: ChannelConfig) -> ChannelCredentials:
    return load_credentials(channel.conn_id)


@dataclass
class ApplyReport:
    claimed: int = 0
    applied: int = 0
    no_order: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0  # orders the mapping says are none (drafts)
    counts: IngestCounts = field(default_factory=IngestCounts)
    channels: set[str] = field(default_factory=set)  # channels whose ingest changed something

    def merge(self, other: ApplyReport) -> None:
        for name in ("claimed", "applied", "no_order", "retrying", "failed", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.counts.merge(other.counts)
        self.channels |= other.channels

    @property
    def changed_stock(self) -> bool:
        c = self.counts
        return bool(
            c.new
            or c.updated
            or c.reserved_units
            or c.released_units
            or c.deducted_units
            or c.restocked_units
        )

    def summary_line(self) -> str:
        return (
            f"webhook inbox: claimed={self.claimed} applied={self.applied} no_order={self.no_order} "
            f"retrying={self.retrying} failed={self.failed} skipped={self.skipped} new={self.counts.new} "
            f"updated={self.counts.updated} reserved_units={self.counts.reserved_units}"
        )


def apply_pending(
    engine: Engine,
    config: HubConfig,
    *,
    ids: Iterable[int] | None = None,
    older_than: timedelta | None = None,
    credentials: CredentialsFor = credentials_from_airflow,
    stock_changed: StockChanged | None = None,
    limit: int = BATCH_ROWS,
) -> ApplyReport:
    """Claim one batch of pending rows (``ids`` only, when given), apply them, mark them, commit; then one
    ``stock_changed`` call when the batch's ingest changed anything."""
    report = ApplyReport()
    with engine.begin() as conn:  # the claim's row locks last until the rows are marked
        rows = webhook_inbox.claim_pending(conn, ids=ids, older_than=older_than, limit=limit)
        report.claimed = len(rows)
        by_channel: dict[str, list[webhook_inbox.InboxRow]] = {}
        for row in rows:
            by_channel.setdefault(row.channel, []).append(row)
        for code, channel_rows in by_channel.items():
            _apply_channel(engine, conn, config, code, channel_rows, credentials, report)
    if report.changed_stock and stock_changed is not None:
        event = {**report.counts.as_dict(), "channels": sorted(report.channels), "source": "webhooks"}
        try:
            stock_changed(event)
        except Exception as err:  # the scheduled push still runs; the inbox work is committed
            log.warning("webhooks: the stock asset event failed: %s", type(err).__name__)
    if report.claimed:
        log.info(report.summary_line())
    return report


def _apply_channel(
    engine: Engine,
    conn: Any,
    config: HubConfig,
    code: str,
    rows: list[webhook_inbox.InboxRow],
    credentials: CredentialsFor,
    report: ApplyReport,
) -> None:
    try:
        channel = config.channel(code)
    except KeyError:
        for row in rows:
            _failed(conn, row, "UnknownChannel: the channel is no longer configured", report)
        return
    platform = get_platform(channel.platform)
    connector: ChannelConnector | None = None
    landed: list[Landed] = []
    rejected: list[Rejected] = []
    done: list[int] = []
    no_order: list[int] = []
    for row in rows:
        if row.order_external_id is None and row.order_payload is None:
            _no_order(channel, row)
            no_order.append(row.id)
            continue
        payload = row.order_payload
        if payload is None:
            try:
                if connector is None:
                    connector = channel_connector(channel, credentials(channel), engine=engine)
                payload = connector.get_order(str(row.order_external_id))
            except Exception as err:  # typed connector errors carry no secrets (connectors.errors)
                _failed(conn, row, f"{type(err).__name__}: {err}", report)
                continue
        prepared = platform.prepare(payload, channel)
        if isinstance(prepared, Skipped):
            report.skipped += 1
        else:
            (landed if isinstance(prepared, Landed) else rejected).append(prepared)
        done.append(row.id)
    if landed or rejected:
        try:
            counts = ingest_orders(engine, channel.code, landed, rejected)
        except Exception as err:  # the warehouse refused the batch: every row of it is tried again later
            for row in rows:
                if row.id in done:
                    _failed(conn, row, f"{type(err).__name__}: ingest failed", report)
            log.warning("webhooks %s: ingest failed (%s); retried later", code, type(err).__name__)
            done = []
        else:
            report.counts.merge(counts)
            if counts.new or counts.updated or counts.reserved_units or counts.released_units:
                report.channels.add(code)
    webhook_inbox.mark_done(conn, done, "applied")
    webhook_inbox.mark_done(conn, no_order, "no_order")
    report.applied += len(done)
    report.no_order += len(no_order)


def _failed(conn: Any, row: webhook_inbox.InboxRow, error: str, report: ApplyReport) -> None:
    status = webhook_inbox.mark_failed(conn, row.id, error, max_attempts=MAX_ATTEMPTS, backoff=RETRY_BACKOFF)
    if status == "failed":
        report.failed += 1
        log.error(
            "webhooks %s: event %s failed %d times, left for the scheduled sync: %s",
            row.channel, row.event_id, MAX_ATTEMPTS, error,
        )  # fmt: skip
    else:
        report.retrying += 1
        log.warning("webhooks %s: event %s: %s; retried later", row.channel, row.event_id, error)


def _no_order(channel: ChannelConfig, row: webhook_inbox.InboxRow) -> None:
    """An event about no order. The app being uninstalled stops every pull and push of the channel: alert."""
    if "uninstall" not in row.topic.lower():
        log.info("webhooks %s: %s event %s carries no order", channel.code, row.topic, row.event_id)
        return
    from channelhub.alerts import Alert, send

    send(
        Alert(
            f"webhook_uninstalled:{channel.code}",
            "error",
            f"{channel.code}: the hub's app was uninstalled",
            f"{channel.platform} sent {row.topic}: the channel's credentials no longer work; "
            "reinstall the app",
        )
    )


def sweep_inbox(
    engine: Engine,
    config: HubConfig,
    *,
    older_than: timedelta = SWEEP_OLDER_THAN,
    credentials: CredentialsFor = credentials_from_airflow,
    stock_changed: StockChanged | None = None,
    max_batches: int = 50,
) -> ApplyReport:
    """Apply the pending rows received before ``older_than`` ago (a killed receiver's, and failed attempts
    whose backoff is over), batch after batch until none is left (at most ``max_batches``)."""
    total = ApplyReport()
    for _ in range(max_batches):
        report = apply_pending(
            engine, config, older_than=older_than, credentials=credentials, stock_changed=stock_changed
        )
        total.merge(report)
        if report.claimed < BATCH_ROWS:
            break
    return total
