"""Backfill speed: pull and apply N orders from a Shopify sandbox over HTTP, window after window.

    .venv/bin/python bench/backfill.py --orders 100000 300000 1000000      (or: make bench-backfill)

Per N, in a child process of its own (so its peak memory is its own):

1. a scratch database on the chosen server (as ``bench/ingest.py`` picks it), migrated, seeded with the
   world's catalog, listings and more than enough stock;
2. a Shopify sandbox in a separate process (``python -m sandbox``), its clock frozen, holding exactly N
   orders (one every ``--interval-seconds``), its rate limit opened wide;
3. timed: ``channelhub.sync.sync_orders`` over consecutive windows of ``--window-hours``, oldest first, the
   way an Airflow backfill runs the channel's sync DAG interval by interval (the connector pages the
   platform's real API; schema check, mapping and the warehouse apply as in production);
4. checked: every order stored once, the ledger equals the levels, nothing oversold.

``--pull-only`` times the same windows through the same connector with the hub's work taken out (no schema
check, mapping or warehouse): the sandbox rendering, HTTP and JSON decoding alone, the floor under any sync.

It prints one line per N (seconds, orders/s, the hub process's peak RSS, the sandbox's) and then how the time
grows with N (seconds per 100 k orders at each N: flat means linear).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import postmaster_pid, process_cpu, server_cpu
from ingest import choose_server, machine_lines, scratch_database

from channelhub.config import parse_config
from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.platforms import channel_connector
from channelhub.sync import register_config, roomy_gc, sync_orders
from connectors.auth import Secret
from sandbox.clock import Clock
from sandbox.server import sandbox_connection
from sandbox.shopify import DEFAULT_ACCESS_TOKEN
from sandbox.world import World
from warehouse import catalog, stock

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SEED = 20261124
CHANNEL = "bench_backfill"
LOCATION = "BENCH-WH"
PLENTY = 10**9  # units received per SKU: every line reserves, the bench measures speed not shortage


DOCUMENT = {
    "locations": [{"code": LOCATION, "name": "Benchmark warehouse"}],
    "channels": [
        {"code": CHANNEL, "platform": "shopify", "conn_id": "bench_unused", "fulfilment_location": LOCATION,
         "overlap_minutes": 0}
    ],
}  # fmt: skip
_worker: dict = {}  # what one process needs to sync a window: engine, channel, credentials


def _worker_setup(url: str, document: dict, conn_info: dict) -> None:
    _worker["engine"] = create_engine(url, pool_size=2)
    _worker["channel"] = parse_config(document, "<bench>").channel(CHANNEL)
    _worker["credentials"] = ChannelCredentials(
        "shopify", conn_info["host"], secret=Secret(conn_info["password"]), extra=conn_info.get("extra", {})
    )


def _sync_window(window: tuple[datetime, datetime]) -> int:
    """One backfill run: the channel's sync of one window; returns the orders fetched."""
    result = sync_orders(_worker["engine"], _worker["channel"], *window, credentials=_worker["credentials"])
    return result.fetched


def _pull_window(window: tuple[datetime, datetime]) -> int:
    """The fetch of one window as the sync runs it (same connector, same window, the sync's garbage-collector
    setting), nothing done with the pages; returns the orders fetched."""
    channel = _worker["channel"]
    connector = channel_connector(channel, _worker["credentials"])
    with roomy_gc():  # without it decoding a page cost 4x the CPU (250 against 65 us an order)
        return sum(len(page) for page in connector.fetch_orders(window[0] - channel.overlap, window[1]))


class Progress:
    """The rate of each tenth of N, on stderr: does the apply slow down as the tables grow?"""

    def __init__(self, orders: int) -> None:
        self.orders, self.pulled, self.reported = orders, 0, 0
        self.began = self.last_report = perf_counter()

    def add(self, fetched: int) -> None:
        self.pulled += fetched
        if self.pulled - self.reported >= self.orders / 10 or self.pulled >= self.orders:
            now, count = perf_counter(), self.pulled - self.reported
            print(
                f"    {self.pulled:>9,} pulled, {now - self.began:6.1f} s; the last {count:,} at "
                f"{count / (now - self.last_report):,.0f} orders/s",
                file=sys.stderr,
                flush=True,
            )
            self.reported, self.last_report = self.pulled, now


def run_one(
    orders: int,
    interval: float,
    window_hours: float,
    database_url: str | None,
    runs_at_once: int = 1,
    pull_only: bool = False,
) -> dict:
    """One N, measured in this process; returns the figures as a dict."""
    document = DOCUMENT
    server = choose_server(database_url, keep=False)
    start = NOW - timedelta(seconds=interval * (orders - 0.5))  # order N-1 is the last created before NOW
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "shopify", "--seed", str(SEED), "--start", start.isoformat(),
         "--interval-seconds", str(interval), "--freeze-at", NOW.isoformat(),
         "--bucket-size", "1000000", "--leak-per-second", "1000000"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base_url = sandbox.stdout.readline().split(" at ", 1)[1].split()[0]
        with scratch_database(server, keep=False) as url:
            engine = create_engine(url, pool_size=2)
            config = parse_config(document, "<bench>")
            channel = config.channel(CHANNEL)
            register_config(engine, config)
            world = World(SEED, start=start, interval=timedelta(seconds=interval), clock=Clock.frozen(NOW))
            expected = world.order_count()
            seed_from_catalog(engine, channel, world.catalog)
            with engine.begin() as conn:
                for variant in world.catalog.variants:
                    catalog.receive_stock(conn, variant.sku, LOCATION, PLENTY, f"receive:bench:{variant.sku}")
            conn_info = sandbox_connection("shopify", base_url, DEFAULT_ACCESS_TOKEN)
            machine = machine_lines(engine, server)
            window = timedelta(hours=window_hours)
            windows = []
            while not windows or windows[-1][1] < NOW:
                window_start = windows[-1][1] if windows else start
                windows.append((window_start, min(window_start + window, NOW)))
            postmaster = postmaster_pid(engine)
            cpu_before = _cpu(sandbox.pid, postmaster)
            progress = Progress(orders)
            one_window = _pull_window if pull_only else _sync_window
            with ExitStack() as stack:
                if runs_at_once == 1:
                    _worker_setup(url, document, conn_info)
                    fetched_per_window = map(one_window, windows)
                else:  # as `airflow backfill create --max-active-runs N`: one task process per run
                    pool = ProcessPoolExecutor(
                        runs_at_once, initializer=_worker_setup, initargs=(url, document, conn_info)
                    )
                    stack.enter_context(pool)
                    fetched_per_window = pool.map(one_window, windows)
                for fetched in fetched_per_window:
                    progress.add(fetched)
            seconds, pulled = perf_counter() - progress.began, progress.pulled
            cpu = {name: after - cpu_before[name] for name, after in _cpu(sandbox.pid, postmaster).items()}
            run_processes_kib = _children_peak_kib(runs_at_once)  # reaped by now; the sandbox is not yet
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
                problems = []
                if expected != orders:
                    problems.append(f"the sandbox has {expected} orders, asked {orders}")
                if pull_only:  # an order updated on a window's bound is listed by both windows
                    if pulled < expected:
                        problems.append(f"{pulled} orders pulled, the sandbox has {expected}")
                elif stored != expected:
                    problems.append(f"{stored} orders stored, the sandbox has {expected}")
                if drift := stock.ledger_drift(conn):
                    problems.append(f"{len(drift)} stock levels disagree with the ledger")
                if units := stock.oversold(conn):
                    problems.append(f"{units} units oversold")
            engine.dispose()
            _worker.get("engine", engine).dispose()
    finally:
        sandbox_rss = _peak_rss_of(sandbox.pid)
        sandbox.terminate()
        sandbox.wait(timeout=30)
        server.stop()
    return {
        "orders": orders,
        "pulled": pulled,
        "seconds": seconds,
        # The largest hub process: this one, or (runs at once) the largest run process.
        "hub_peak_mib": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, run_processes_kib) / 1024,
        "runs_at_once": runs_at_once,
        "pull_only": pull_only,
        "sandbox_peak_mib": sandbox_rss,
        "problems": problems,
        "machine": machine,
        "cpu_seconds": cpu,
    }


def cpu_line(result: dict) -> str:
    """The CPU per order of one N: the hub's own (its processes + Postgres), and each part."""
    per_order = {name: seconds / result["orders"] * 1000 for name, seconds in result["cpu_seconds"].items()}
    per_100k = result["seconds"] / result["orders"] * 100_000
    machine = result["machine"][0].split(maxsplit=1)[1].split(", Linux")[0]
    return (
        f"hub CPU per order at {result['orders']:,}: {per_order['hub'] + per_order['postgres']:.3f} ms "
        f"(hub processes {per_order['hub']:.3f} + Postgres {per_order['postgres']:.3f}; the sandbox "
        f"{per_order['sandbox']:.3f} more) | {per_100k:.1f} s per 100k | {machine}"
    )


def _cpu(sandbox_pid: int, postmaster: int | None) -> dict[str, float]:
    """CPU seconds so far of the hub (this process and its reaped run processes), Postgres (nan when the
    server is on another machine) and the sandbox. The pool's run processes are reaped when it closes,
    before the second reading."""
    own = os.times()
    return {
        "hub": own.user + own.system + own.children_user + own.children_system,
        "postgres": server_cpu(postmaster) if postmaster else float("nan"),
        "sandbox": process_cpu(sandbox_pid),
    }


def _children_peak_kib(runs_at_once: int) -> int:
    # The largest reaped child: taken before the sandbox (measured apart, VmHWM) is reaped too. With one run
    # at a time there is no run process, and this process's own peak is the hub's.
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if runs_at_once > 1 else 0


def _peak_rss_of(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/backfill.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--interval-seconds", type=float, default=10.0, help="between two orders")
    parser.add_argument("--window-hours", type=float, default=24.0, help="one sync run's window")
    parser.add_argument("--database-url", default=os.environ.get("HUB_DATABASE_URL"))
    parser.add_argument(
        "--runs-at-once",
        type=int,
        default=1,
        help="windows synced at once, a process each",
    )
    parser.add_argument(
        "--pull-only",
        action="store_true",
        help="fetch and decode the same windows, no schema check, mapping or warehouse (the floor)",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child of one N
    args = parser.parse_args(argv)
    if args.one:
        figures = run_one(
            args.orders[0],
            args.interval_seconds,
            args.window_hours,
            args.database_url,
            args.runs_at_once,
            args.pull_only,
        )
        print(json.dumps(figures))
        return 0

    results = []
    for orders in args.orders:
        print(f"- backfilling {orders:,} orders ...", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--one", "--orders", str(orders),
             "--interval-seconds", str(args.interval_seconds), "--window-hours", str(args.window_hours),
             "--runs-at-once", str(args.runs_at_once), *(["--pull-only"] if args.pull_only else []),
             *(["--database-url", args.database_url] if args.database_url else [])],
            stdout=subprocess.PIPE, text=True, check=True,
        )  # fmt: skip
        result = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(result)
        verdict = "ok" if not result["problems"] else "PROBLEMS: " + "; ".join(result["problems"])
        print(
            f"  {orders:>9,} orders  {result['seconds']:7.1f} s  {orders / result['seconds']:7,.0f} orders/s"
            f"  peak {result['hub_peak_mib']:.0f} MiB a hub process, sandbox {result['sandbox_peak_mib']:.0f}"
            f"  {verdict}",
            flush=True,
        )
    print("\n".join(results[0]["machine"]))
    print(
        f"windows of {args.window_hours:g} h, {args.runs_at_once} at once, one order every "
        f"{args.interval_seconds:g} s (Shopify sandbox)"
        + ("; PULL ONLY: fetched and decoded, nothing checked, mapped or stored" if args.pull_only else "")
    )
    print("seconds per 100k orders: " + ", ".join(
        f"{r['orders']:,}: {r['seconds'] / r['orders'] * 100_000:.1f}" for r in results
    ))  # fmt: skip
    for r in results:
        print(cpu_line(r))
    return 0 if all(not r["problems"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
