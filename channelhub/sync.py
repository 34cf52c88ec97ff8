"""Pull one channel's orders for one window into the warehouse: connector -> schema check -> mapping -> apply.

The DAGs, the CLI, the demo and the tests all call ``sync_orders``; the DAG only decides the window (its
data interval). The pull covers ``[window_start - overlap, window_end)`` of the platform's *updated* time;
re-reading the overlap is cheap because ingest is idempotent.

The next pages are fetched, schema-checked and mapped in a thread while the current batch is
applied (``prefetched``, ``prepared_pages``): the platform, the hub's Python and Postgres work at the same
time, and at most ``PREFETCH_PAGES`` pages wait in memory.

While a sync runs, the garbage collector's youngest generation holds ``SYNC_GC_YOUNG`` objects instead of
Python's 700 (``roomy_gc``): a decoded page is ~700k dicts and lists, and collecting every 700 allocations
walked them over and over (15 % of the hub's CPU in a backfill). Nothing the sync allocates needs the cycle
collector sooner; reference counting frees pages and batches as before.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from channelhub.config import ChannelConfig, HubConfig
from channelhub.credentials import ChannelCredentials
from channelhub.platforms import Platform, Skipped, channel_connector, get_platform
from connectors.framework import SyncWarning
from warehouse import catalog, sync_state
from warehouse.ingest import IngestCounts, Landed, Rejected, ingest_orders
from warehouse.maintenance import analyze_if_stale
from warehouse.route_lines import set_channel_routing

log = logging.getLogger("channelhub.sync")

ORDERS_STREAM = "orders"
PREFETCH_PAGES = 2
STATISTICS_CHECK_EVERY = 5000  # orders
SYNC_GC_YOUNG = 100_000  # objects allocated between two collections of the youngest generation
T = TypeVar("T")


def sync_is_current(conn: Connection, channel: ChannelConfig, now: datetime | None = None) -> bool:
    """Whether a sync of ``channel``'s orders succeeded within its ``stale_after`` (the hub's clock). Before
    its first good run, or while its runs fail, the units it sold are not reserved in the warehouse."""
    state = sync_state.get_state(conn, channel.code, ORDERS_STREAM)
    last_good = state and state["last_run_at"]
    return last_good is not None and (now or datetime.now(UTC)) - last_good <= channel.stale_after


@dataclass
class SyncResult:
    channel: str
    window_start: datetime
    window_end: datetime
    pulled_from: datetime
    fetched: int = 0
    pages: int = 0
    skipped: int = 0  # fetched records that are no orders (checkout drafts): neither landed nor queued
    counts: IngestCounts = field(default_factory=IngestCounts)
    # What may be missing from this run though it succeeded (kept with the run: the ChannelHub page shows them
    # until a later run of the channel has none).
    warnings: list[SyncWarning] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "pulled_from": self.pulled_from.isoformat(),
            "fetched": self.fetched,
            "pages": self.pages,
            "skipped": self.skipped,
            **self.counts.as_dict(),
            "warnings": [warning.as_dict() for warning in self.warnings],
        }

    def summary_line(self) -> str:
        exceptions = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.exceptions.items())) or "none"
        return (
            f"{self.channel} [{self.pulled_from:%Y-%m-%d %H:%M:%S} .. {self.window_end:%Y-%m-%d %H:%M:%S}) "
            f"fetched={self.fetched} skipped={self.skipped} new={self.counts.new} "
            f"updated={self.counts.updated} unchanged={self.counts.unchanged} stale={self.counts.stale} "
            f"reserved_units={self.counts.reserved_units} exceptions: {exceptions}"
            + (f" warnings: {', '.join(w.code for w in self.warnings)}" if self.warnings else "")
        )


def as_utc(value: datetime) -> datetime:
    """A plain UTC ``datetime``: Airflow hands tasks pendulum objects, which break timedelta arithmetic."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: window bounds must carry a timezone")
    return datetime.fromtimestamp(value.timestamp(), UTC)


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant from a person (CLI, DAG params); naive means UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def register_config(engine: Engine, config: HubConfig) -> None:
    """Make the warehouse know every configured location and channel (idempotent)."""
    with engine.begin() as conn:
        for location in config.locations:
            catalog.upsert_location(
                conn,
                location.code,
                location.name,
                location.kind,
                location.max_units_per_row,
                province=location.province,
                city=location.city,
            )
        for channel in config.channels:
            catalog.upsert_channel(
                conn, channel.code, channel.platform, channel.name, channel.fulfilment_location
            )
            set_channel_routing(conn, channel.code, channel.routing)


def sync_orders(
    engine: Engine,
    channel: ChannelConfig,
    window_start: datetime,
    window_end: datetime,
    *,
    credentials: ChannelCredentials | None = None,
) -> SyncResult:
    window_start, window_end = as_utc(window_start), as_utc(window_end)
    if window_end <= window_start:
        raise ValueError(f"empty window [{window_start}, {window_end})")
    platform = get_platform(channel.platform)
    connector = channel_connector(channel, credentials, engine=engine)
    result = SyncResult(channel.code, window_start, window_end, pulled_from=window_start - channel.overlap)
    result.warnings = connector.warnings_for_window(result.pulled_from, window_end)
    for warning in result.warnings:
        log.warning("sync %s: %s [%s]", channel.code, warning.message, warning.code)

    landed: list[Landed] = []
    rejected: list[Rejected] = []

    checked_at = 0  # orders fetched when the tables' statistics were last checked

    def flush() -> None:
        nonlocal checked_at
        if landed or rejected:
            result.counts.merge(ingest_orders(engine, channel.code, landed, rejected))
            landed.clear()
            rejected.clear()
        if result.fetched - checked_at >= STATISTICS_CHECK_EVERY:
            analyze_if_stale(engine)  # a long backfill must not outgrow the planner's statistics
            checked_at = result.fetched

    pages = prefetched(
        prepared_pages(platform, connector.fetch_orders(result.pulled_from, window_end), channel),
        PREFETCH_PAGES,
    )
    with roomy_gc(), closing(pages):  # an apply error stops the fetching thread at once
        for page in pages:
            result.pages += 1
            result.fetched += len(page)
            for prepared in page:
                if isinstance(prepared, Skipped):
                    result.skipped += 1
                else:
                    (landed if isinstance(prepared, Landed) else rejected).append(prepared)
            if len(landed) + len(rejected) >= channel.batch_size:
                flush()
    flush()

    with engine.begin() as conn:
        sync_state.record_run(conn, channel.code, ORDERS_STREAM, window_end, result.as_dict())
    log.info("sync %s", result.summary_line())
    return result


def prepared_pages(
    platform: Platform, pages: Iterable[list[Any]], channel: ChannelConfig | None = None
) -> Iterator[list[Landed | Rejected | Skipped]]:
    """Each page's payloads schema-checked and mapped (with ``channel``'s mapping options), in the fetch
    thread while the previous batch applies (the applying thread mostly waits on Postgres, without holding
    the GIL)."""
    for page in pages:
        yield [platform.prepare(payload, channel) for payload in page]


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_threshold_before: tuple[int, ...] = ()


@contextmanager
def roomy_gc() -> Iterator[None]:
    """The youngest generation at ``SYNC_GC_YOUNG`` while any sync of this process runs (syncs in threads
    share it: the last one out restores the threshold the first one found)."""
    global _gc_holders, _gc_threshold_before
    with _gc_lock:
        if _gc_holders == 0:
            _gc_threshold_before = gc.get_threshold()
            gc.set_threshold(max(SYNC_GC_YOUNG, _gc_threshold_before[0]), *_gc_threshold_before[1:])
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0:
                gc.set_threshold(*_gc_threshold_before)


def prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    """``items``, produced by a thread that runs at most ``depth`` items ahead of the consumer.

    The producer's error surfaces after the items it produced before it, as it would unthreaded; when the
    consumer stops (an error of its own, or ``close``), the producer stops at its next item.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def offer(message: tuple[str, Any]) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(("item", item)):
                    return
            offer(("done", None))
        except BaseException as err:  # handed to the consumer, raised there
            offer(("error", err))

    producer = threading.Thread(target=produce, name="prefetch", daemon=True)
    producer.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stopped.set()
        producer.join()
