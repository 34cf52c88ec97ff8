"""Ingest speed: map and apply N Shopify orders from pre-fetched pages, against raw COPY of the same rows.

    .venv/bin/python bench/ingest.py --orders 100000        (or: make bench-ingest N=100000)

1. A scratch database ``channelhub_bench_<random>`` on ``--database-url`` / ``HUB_DATABASE_URL`` (its server),
   else the server on 127.0.0.1:5432 when one answers, else an embedded server under a temporary folder;
   migrated, and dropped at the end (also on Ctrl-C / SIGTERM) unless ``--keep``.
2. Not timed: the sandbox world renders N orders through the Shopify renderer in-process (no HTTP), as the
   sandbox's ``orders.json`` serves them, into pages held as JSON text; the warehouse is seeded like the demo
   (SKUs, listings, opening stock) plus enough received stock for every order to reserve.
3. Timed: per page, the JSON is decoded (measured, but NOT counted: the connector's fetch decodes), then
   ``platform.prepare`` (schema check + mapping) runs per payload and ``ingest_orders`` applies batches
   exactly as ``channelhub.sync.sync_orders`` does. Stages are timed separately in the same run.
4. COPY baseline, same run, same rows: the rows ingest wrote (raw_payloads, orders, order_lines, the orders'
   stock_ledger rows, exceptions) are read out in COPY binary format before timing, then loaded with
   ``COPY ... FROM STDIN (FORMAT binary)`` into empty tables created ``LIKE`` the originals: once with the
   same indexes, unique and check constraints (``INCLUDING ALL``; no foreign keys), once bare. Only the COPY
   (and its commit) is timed; the headline uses the same-indexes load.

The last line is ``ingest <n> orders/s | copy <n> orders/s | ratio <r>`` (ratio = ingest / copy).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import platform as host
import pstats
import shutil
import signal
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean, quantiles
from time import perf_counter
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from channelhub import db
from channelhub.config import ChannelConfig, HubConfig, parse_config
from channelhub.demo import seed_from_catalog
from channelhub.platforms import Platform, get_platform
from channelhub.sync import register_config, roomy_gc
from sandbox.clock import Clock
from sandbox.shopify import ShopifyRenderer
from sandbox.world import World
from warehouse import catalog, stock
from warehouse.ingest import IngestCounts, Landed, Rejected, ingest_orders

DEFAULT_ORDERS = 100_000
DEFAULT_SEED = 20261124
# The world's clock stands still here; the N orders end just before it (older ones have finished their lives).
WORLD_NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ORDER_INTERVAL = timedelta(seconds=30)
BENCH_LOCATION = "BENCH-WH"
BENCH_CHANNEL = "bench_shopify"
STOCK_MARGIN = 1.10  # received stock = 110 % of the units the N orders ask for, per SKU
PROGRESS_STEPS = 10

# What ingest wrote, per table: the rows of the bench channel (the ledger's "receive" rows are seeding).
COPY_TABLES: tuple[tuple[str, str], ...] = (
    ("raw_payloads", "channel_id = {channel}"),
    ("orders", "channel_id = {channel}"),
    ("order_lines", "order_id IN (SELECT id FROM orders WHERE channel_id = {channel})"),
    ("stock_ledger", "order_id IN (SELECT id FROM orders WHERE channel_id = {channel})"),
    ("exceptions", "channel_id = {channel}"),
)


# -- where the scratch database lives -------------------------------------------------------------


@dataclass
class Server:
    url: str  # SQLAlchemy URL of a database to run CREATE/DROP DATABASE from
    description: str
    stop: Callable[[], None] = lambda: None


def choose_server(database_url: str | None, keep: bool) -> Server:
    if database_url:
        url = db.normalise_url(database_url)
        parsed = make_url(url)
        return Server(url, f"{parsed.host or 'local socket'}:{parsed.port or 5432} (given URL)")
    if local := db.local_server_url():
        return Server(local, "127.0.0.1:5432 (local server)")
    folder = Path(tempfile.mkdtemp(prefix="channelhub-bench-pg-"))
    print(f"- starting an embedded Postgres under {folder} ...", flush=True)
    url = db.start_embedded(folder / "pgdata", "postgres")

    def stop() -> None:
        if keep:
            print(f"- embedded Postgres left running under {folder} (--keep)")
            return
        db.stop_embedded(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)

    return Server(url, f"embedded server under {folder}", stop)


def libpq_url(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def scratch_database(server: Server, keep: bool) -> Iterator[str]:
    name = f"channelhub_bench_{uuid.uuid4().hex[:8]}"
    url = make_url(server.url).set(database=name).render_as_string(hide_password=False)
    created = False
    try:
        db.ensure_database(server.url, name)
        created = True
        db.migrate(url)
        yield url
    finally:
        if created and not keep:
            db.drop_database(server.url, name)
            print(f"- dropped database {name}", flush=True)
        elif created:
            print(f"- kept database {make_url(url).render_as_string(hide_password=True)}", flush=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- pre-fetched pages (not timed) -----------------------------------------------------------------


@dataclass
class Pages:
    texts: list[str]  # one orders.json response body per page
    world: World
    demand: Counter[str]  # units ordered per merchant SKU
    orders: int
    payload_bytes: int
    seconds: float


def render_pages(orders: int, page_size: int, seed: int) -> Pages:
    """N orders as the Shopify sandbox serves them (``{"orders": [...]}`` bodies of ``page_size``)."""
    start = WORLD_NOW - ORDER_INTERVAL * (orders + 2)
    world = World(seed, start=start, interval=ORDER_INTERVAL, clock=Clock.frozen(WORLD_NOW))
    renderer = ShopifyRenderer(world)
    now_ts = WORLD_NOW.timestamp()
    if world.order_count() < orders:
        raise RuntimeError(f"the world holds {world.order_count()} orders at {WORLD_NOW}, wanted {orders}")
    texts: list[str] = []
    demand: Counter[str] = Counter()
    payload_bytes = 0
    began = perf_counter()
    step = max(1, orders // PROGRESS_STEPS)
    for first in range(0, orders, page_size):
        bodies = []
        for index in range(first, min(first + page_size, orders)):
            state = world.state(index, now_ts)
            if state is None:
                raise RuntimeError(f"order {index} does not exist at {WORLD_NOW}")
            for line in state.order.lines:
                demand[line.variant.sku] += line.quantity
            body = renderer.render_json(state)
            payload_bytes += len(body)
            bodies.append(body)
            done = index + 1
            if done % step == 0 or done == orders:
                elapsed = perf_counter() - began
                print(f"  rendered {done:>9,} / {orders:,} orders ({elapsed:6.1f} s)", flush=True)
        texts.append('{"orders":[' + ",".join(bodies) + "]}")
    return Pages(texts, world, demand, orders, payload_bytes, perf_counter() - began)


def bench_config(page_size: int) -> HubConfig:
    """One Shopify channel with the project's own defaults (batch size, ...) from the config parser."""
    document = {
        "locations": [{"code": BENCH_LOCATION, "name": "Benchmark warehouse"}],
        "channels": [
            {
                "code": BENCH_CHANNEL,
                "platform": "shopify",
                "name": "Benchmark Shopify shop",
                "conn_id": "bench_unused",
                "fulfilment_location": BENCH_LOCATION,
                "page_size": page_size,
            }
        ],
    }
    return parse_config(document, "<bench>")


def seed_warehouse(engine: Engine, config: HubConfig, pages: Pages) -> int:
    """The demo's catalog, listings and opening stock, plus stock for every ordered unit; returns units."""
    channel = config.channels[0]
    register_config(engine, config)
    seed_from_catalog(engine, channel, pages.world.catalog)
    received = 0
    with engine.begin() as conn:
        for sku, units in sorted(pages.demand.items()):
            extra = math.ceil(units * STOCK_MARGIN)
            catalog.receive_stock(conn, sku, channel.fulfilment_location, extra, f"receive:bench:{sku}")
            received += extra
    return received


# -- timed ingest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimedPlatform(Platform):
    """The registry's platform, its schema check timed; ``prepare`` itself is the real one, untouched."""

    schema_seconds: list[float] = field(default_factory=lambda: [0.0], compare=False)

    @classmethod
    def of(cls, base: Platform) -> TimedPlatform:
        return cls(**{f.name: getattr(base, f.name) for f in fields(base)})

    def schema_problem(self, payload: Any) -> str | None:
        began = perf_counter()
        try:
            return super().schema_problem(payload)
        finally:
            self.schema_seconds[0] += perf_counter() - began


@dataclass
class IngestRun:
    orders: int = 0
    landed: int = 0
    rejected: int = 0
    decode_seconds: float = 0.0  # measured, not part of ingest
    prepare_seconds: float = 0.0  # schema check + mapping (+ the loop around them)
    schema_seconds: float = 0.0
    apply_seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    counts: IngestCounts = field(default_factory=IngestCounts)
    profile: cProfile.Profile | None = None

    @property
    def mapping_seconds(self) -> float:
        return self.prepare_seconds - self.schema_seconds

    @property
    def seconds(self) -> float:
        return self.prepare_seconds + self.apply_seconds


def run_ingest(
    engine: Engine, channel: ChannelConfig, pages: Pages, batch_size: int, profile: bool
) -> IngestRun:
    """The body of ``sync_orders`` over pre-fetched pages: prepare each payload, flush at ``batch_size``."""
    platform = TimedPlatform.of(get_platform(channel.platform))
    platform.prepare(json.loads(pages.texts[0])["orders"][0])  # untimed: compile the schema, import mapping
    platform.schema_seconds[0] = 0.0
    result = IngestRun(profile=cProfile.Profile() if profile else None)
    landed: list[Landed] = []
    rejected: list[Rejected] = []

    def timed(section: Callable[[], None]) -> float:
        if result.profile is not None:
            result.profile.enable()
        began = perf_counter()
        section()
        elapsed = perf_counter() - began
        if result.profile is not None:
            result.profile.disable()
        return elapsed

    def flush() -> None:
        if landed or rejected:
            result.counts.merge(ingest_orders(engine, channel.code, landed, rejected))
            landed.clear()
            rejected.clear()

    def prepare_page(payloads: list[Any]) -> None:
        for payload in payloads:
            prepared = platform.prepare(payload)
            (landed if isinstance(prepared, Landed) else rejected).append(prepared)

    step = max(1, len(pages.texts) // PROGRESS_STEPS)
    with roomy_gc():  # the garbage collector as sync_orders runs it
        for number, page_text in enumerate(pages.texts, start=1):
            began = perf_counter()
            payloads = platform.unwrap(json.loads(page_text))
            result.decode_seconds += perf_counter() - began
            result.orders += len(payloads)
            result.prepare_seconds += timed(lambda payloads=payloads: prepare_page(payloads))
            if len(landed) + len(rejected) >= batch_size:
                result.landed += len(landed)
                result.rejected += len(rejected)
                result.batch_sizes.append(len(landed) + len(rejected))
                result.batch_seconds.append(timed(flush))
                result.apply_seconds += result.batch_seconds[-1]
            if number % step == 0 or number == len(pages.texts):
                rate_now = result.orders / max(result.seconds, 1e-9)
                print(
                    f"  ingested {result.orders:>9,} / {pages.orders:,} orders "
                    f"({result.seconds:6.1f} s timed, {rate_now:7.0f} orders/s)",
                    flush=True,
                )
        if landed or rejected:
            result.landed += len(landed)
            result.rejected += len(rejected)
            result.batch_sizes.append(len(landed) + len(rejected))
            result.batch_seconds.append(timed(flush))
            result.apply_seconds += result.batch_seconds[-1]
    result.schema_seconds = platform.schema_seconds[0]
    return result


# -- COPY baseline ---------------------------------------------------------------------------------


@dataclass
class CopyData:
    table: str
    rows: int
    chunks: list[bytes]

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks)


@dataclass
class CopyRun:
    label: str
    seconds: float
    per_table: dict[str, float]


def read_rows(conninfo: str, channel_id: int) -> list[CopyData]:
    """The rows ingest wrote, as COPY binary data in memory (read before any timing)."""
    data: list[CopyData] = []
    with psycopg.connect(conninfo) as conn:
        for table, where in COPY_TABLES:
            query = sql.SQL("COPY (SELECT * FROM {} WHERE {}) TO STDOUT (FORMAT binary)").format(
                sql.Identifier(table), sql.SQL(where.format(channel=int(channel_id)))
            )
            chunks: list[bytes] = []
            with conn.cursor() as cur:
                with cur.copy(query) as copy:
                    for chunk in copy:
                        chunks.append(bytes(chunk))
                rows = cur.rowcount
            data.append(CopyData(table, rows, chunks))
    return data


def copy_load(conninfo: str, data: list[CopyData], like: str, label: str) -> CopyRun:
    """Create empty ``bench_copy_*`` tables ``LIKE`` the originals (committed first, so the COPY is WAL-logged
    like any load), then time COPY FROM STDIN of every table in one transaction, commit included."""
    targets = {d.table: f"bench_copy_{d.table}" for d in data}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table, target in targets.items():
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (LIKE {src} {like})").format(
                    t=sql.Identifier(target), src=sql.Identifier(table), like=sql.SQL(like)
                )
            )
        _checkpoint(conn)
    per_table: dict[str, float] = {}
    try:
        with psycopg.connect(conninfo) as conn:
            began = perf_counter()
            for item in data:
                table_began = perf_counter()
                with conn.cursor() as cur:
                    query = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(
                        sql.Identifier(targets[item.table])
                    )
                    with cur.copy(query) as copy:
                        for chunk in item.chunks:
                            copy.write(chunk)
                per_table[item.table] = perf_counter() - table_began
            commit_began = perf_counter()
            conn.commit()
            per_table["(commit)"] = perf_counter() - commit_began
            seconds = perf_counter() - began
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for target in targets.values():
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(target)))
    return CopyRun(label, seconds, per_table)


def _checkpoint(conn: psycopg.Connection) -> None:
    """Start each timed phase without the previous phase's dirty buffers, where the role may do so."""
    with suppress(psycopg.Error):
        conn.execute("CHECKPOINT")


# -- the report ------------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def format_ratio(value: float) -> str:
    """Two significant digits, never an exponent (0.18, 0.043, 1.50)."""
    if value <= 0 or not math.isfinite(value):
        return f"{value}"
    return f"{value:.{max(2, 1 - math.floor(math.log10(value)))}f}"


def machine_lines(engine: Engine, server: Server) -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.1f} GiB RAM"
    except (ValueError, OSError):
        memory = "? RAM"
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
        settings = {
            name: conn.execute(text(f"SHOW {name}")).scalar_one()
            for name in ("shared_buffers", "synchronous_commit", "fsync", "max_wal_size")
        }
    return [
        f"machine   {os.cpu_count()} cores ({cpu}), {memory}, {host.system()} {host.release()}",
        f"python    {host.python_version()}, psycopg {psycopg.__version__}",
        f"postgres  {version} on {server.description}; " + ", ".join(f"{k}={v}" for k, v in settings.items()),
    ]


def print_stages(run: IngestRun) -> None:
    total = run.seconds
    rows = [
        ("schema check (compiled + jsonschema)", run.schema_seconds),
        ("mapping (payload -> canonical order)", run.mapping_seconds),
        ("warehouse apply (ingest_orders)", run.apply_seconds),
    ]
    print(f"  {'stage':<40}{'seconds':>10}{'share':>8}{'ms/order':>10}")
    for name, seconds in rows:
        print(f"  {name:<40}{seconds:>10.2f}{seconds / total:>8.1%}{seconds / run.orders * 1e3:>10.3f}")
    print(f"  {'total ingest':<40}{total:>10.2f}{1:>8.1%}{total / run.orders * 1e3:>10.3f}")
    print(
        f"  {'(not counted) JSON decode of pages':<40}{run.decode_seconds:>10.2f}{'':>8}"
        f"{run.decode_seconds / run.orders * 1e3:>10.3f}"
    )
    batches = run.batch_seconds
    if batches:
        tenth = max(1, len(batches) // 10)
        ms = [seconds * 1e3 for seconds in batches]
        spread = quantiles(ms, n=20) if len(ms) > 1 else [ms[0]] * 19
        print(
            f"  apply per batch ({len(ms)} batches of ~{round(mean(run.batch_sizes))} orders): "
            f"mean {mean(ms):.0f} ms, p50 {spread[9]:.0f} ms, p95 {spread[18]:.0f} ms; "
            f"first 10 % {mean(ms[:tenth]):.0f} ms, last 10 % {mean(ms[-tenth:]):.0f} ms"
        )


def print_profile(profile: cProfile.Profile, path: str) -> None:
    stats = pstats.Stats(profile)
    if path:
        stats.dump_stats(path)
        print(f"  profile written to {path} (python -m pstats {path})")
    groups: Counter[str] = Counter()
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        groups[_group_of(filename, function)] += tottime
    total = sum(groups.values())
    print("  own time by package (cProfile tottime; profiling inflates Python-heavy parts):")
    for group, seconds in groups.most_common(12):
        print(f"    {group:<48}{seconds:>9.2f} s {seconds / total:>7.1%}")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(20)
    print("  top functions by own time:")
    for line in out.getvalue().splitlines():
        if line.strip() and "Ordered by" not in line and "List reduced" not in line:
            print(f"    {line}")


def _group_of(filename: str, function: str) -> str:
    if filename == "~":  # C functions: name them, they are often where the waiting happens
        return f"builtin {function}"
    if filename.startswith("<"):  # generated code, e.g. "<attrs generated methods ...>"
        return filename.strip("<>").split(" ")[0] + " (generated)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    root = db.PROJECT_ROOT.parts
    if parts[: len(root)] == root and len(parts) > len(root) + 1:
        return "/".join(parts[len(root) : len(root) + 2])
    return Path(filename).stem if "python3" in filename else filename


def verify(engine: Engine, channel: ChannelConfig, run: IngestRun) -> list[str]:
    """What the run must have produced: every landed order stored once, stock consistent, nothing oversold."""
    problems = []
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM orders o JOIN channels c ON c.id = o.channel_id WHERE c.code = :c"),
            {"c": channel.code},
        ).scalar_one()
        if stored != run.counts.new or run.counts.new != run.landed:
            problems.append(f"orders stored {stored}, new {run.counts.new}, landed {run.landed}")
        if drift := stock.ledger_drift(conn):
            problems.append(f"{len(drift)} stock levels disagree with the ledger")
        if units := stock.oversold(conn):
            problems.append(f"{units} units oversold")
    return problems


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orders", type=int, default=DEFAULT_ORDERS, help="orders to ingest (default 100000)"
    )
    parser.add_argument(
        "--batch-size", type=int, help="orders per ingest_orders call (default: the channel's)"
    )
    parser.add_argument("--page-size", type=int, default=250, help="orders per pre-fetched page (max 250)")
    parser.add_argument(
        "--database-url", help="a server to create the scratch database on (HUB_DATABASE_URL)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (and embedded server)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="sandbox world seed")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="",
        metavar="FILE",
        help="cProfile the timed sections and print where time goes (figures are then inflated)",
    )
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error("--orders must be at least 1")
    if not 1 <= args.page_size <= 250:
        parser.error("--page-size must be 1..250 (Shopify's limit)")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    config = bench_config(args.page_size)
    channel = config.channels[0]
    batch_size = args.batch_size or channel.batch_size

    print(f"ChannelHub ingest benchmark: {args.orders:,} Shopify orders", flush=True)
    server: Server | None = None
    try:
        print(
            f"- rendering {args.orders:,} orders with the Shopify sandbox renderer (not timed) ...",
            flush=True,
        )
        pages = render_pages(args.orders, args.page_size, args.seed)
        print(
            f"  {len(pages.texts)} pages, {pages.payload_bytes / 2**20:,.0f} MiB of JSON, "
            f"{pages.seconds:.1f} s",
            flush=True,
        )
        server = choose_server(args.database_url or os.environ.get("HUB_DATABASE_URL"), args.keep)
        with scratch_database(server, args.keep) as url:
            print(f"- scratch database {make_url(url).database} on {server.description}", flush=True)
            engine = create_engine(url, pool_size=2, max_overflow=2)
            try:
                return measure(engine, url, server, config, pages, batch_size, args)
            finally:
                engine.dispose()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()


def measure(
    engine: Engine,
    url: str,
    server: Server,
    config: HubConfig,
    pages: Pages,
    batch_size: int,
    args: argparse.Namespace,
) -> int:
    channel = config.channels[0]
    received = seed_warehouse(engine, config, pages)
    print(
        f"- warehouse seeded: {len(pages.world.catalog.variants)} SKUs, opening stock + {received:,} units "
        f"received for {sum(pages.demand.values()):,} units ordered",
        flush=True,
    )
    conninfo = libpq_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        _checkpoint(conn)

    print(f"- timed ingest: prepare + ingest_orders in batches of {batch_size} ...", flush=True)
    run = run_ingest(engine, channel, pages, batch_size, args.profile is not None)
    problems = verify(engine, channel, run)

    with engine.connect() as conn:
        channel_id = conn.execute(
            text("SELECT id FROM channels WHERE code = :c"), {"c": channel.code}
        ).scalar_one()
    print("- reading the rows ingest wrote (not timed) ...", flush=True)
    data = read_rows(conninfo, channel_id)
    print("- timed COPY FROM STDIN (binary) of the same rows ...", flush=True)
    same = copy_load(conninfo, data, "INCLUDING ALL", "same indexes + unique/check constraints, no FKs")
    bare = copy_load(conninfo, data, "INCLUDING DEFAULTS", "no indexes or constraints (bare heap)")

    ingest_rate = rate(run.orders, run.seconds)
    copy_rate = rate(run.orders, same.seconds)

    print()
    print("=" * 100)
    for line in machine_lines(engine, server):
        print(line)
    print(
        f"run       N={run.orders:,} orders in {len(pages.texts)} pages of {args.page_size}, "
        f"batches of {batch_size}, world seed {args.seed}"
    )
    print(
        "measured  ingest = platform.prepare (schema check + mapping) + warehouse.ingest.ingest_orders, "
        "from decoded pages (JSON decoding is the fetch's, not counted)"
    )
    exceptions = ", ".join(f"{k}={v}" for k, v in sorted(run.counts.exceptions.items())) or "none"
    print(
        f"result    landed {run.landed:,}, rejected {run.rejected:,}; new {run.counts.new:,}, "
        f"updated {run.counts.updated:,}; units reserved {run.counts.reserved_units:,}, "
        f"deducted {run.counts.deducted_units:,}, released {run.counts.released_units:,}, "
        f"restocked {run.counts.restocked_units:,}; exceptions: {exceptions}"
    )
    print(
        "checks    "
        + ("; ".join(problems) if problems else "ok (orders stored once, ledger = levels, none oversold)")
    )
    print()
    print(f"ingest stages ({ingest_rate:,.0f} orders/s):")
    print_stages(run)
    if run.profile is not None:
        print()
        print_profile(run.profile, args.profile)
    print()
    print("COPY of the same rows (rows read out beforehand; only COPY and its commit timed):")
    sizes = "  ".join(f"{d.table} {d.rows:,} rows / {d.size / 2**20:,.1f} MiB" for d in data)
    print(f"  {sizes}")
    for copy_run in (same, bare):
        tables = ", ".join(f"{t} {s:.2f}" for t, s in copy_run.per_table.items())
        print(
            f"  {copy_run.label:<50} {copy_run.seconds:8.2f} s  {rate(run.orders, copy_run.seconds):>9,.0f} "
            f"orders/s  ({tables})"
        )
    print(
        f"  headline copy rate: the same-indexes load; ingest/bare-copy ratio would be "
        f"{format_ratio(ingest_rate / rate(run.orders, bare.seconds))}"
    )
    print()
    print(
        f"ingest {ingest_rate:.0f} orders/s | copy {copy_rate:.0f} orders/s "
        f"| ratio {format_ratio(ingest_rate / copy_rate)}"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
