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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import choose_server, machine_lines, scratch_database

from channelhub.config import parse_config
from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config, sync_orders
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


def run_one(orders: int, interval: float, window_hours: float, database_url: str | None) -> dict:
    """One N, measured in this process; returns the figures as a dict."""
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
            config = parse_config(
                {
                    "locations": [{"code": LOCATION, "name": "Benchmark warehouse"}],
                    "channels": [
                        {"code": CHANNEL, "platform": "shopify", "conn_id": "bench_unused",
                         "fulfilment_location": LOCATION, "overlap_minutes": 0}
                    ],
                }, "<bench>",
            )  # fmt: skip
            channel = config.channel(CHANNEL)
            register_config(engine, config)
            world = World(SEED, start=start, interval=timedelta(seconds=interval), clock=Clock.frozen(NOW))
            expected = world.order_count()
            seed_from_catalog(engine, channel, world.catalog)
            with engine.begin() as conn:
                for variant in world.catalog.variants:
                    catalog.receive_stock(conn, variant.sku, LOCATION, PLENTY, f"receive:bench:{variant.sku}")
            conn_info = sandbox_connection("shopify", base_url, DEFAULT_ACCESS_TOKEN)
            creds = ChannelCredentials(
                "shopify",
                conn_info["host"],
                secret=Secret(conn_info["password"]),
                extra=conn_info.get("extra", {}),
            )
            machine = machine_lines(engine, server)
            window = timedelta(hours=window_hours)
            began = last_report = perf_counter()
            pulled = reported = 0
            window_start = start
            while window_start < NOW:
                window_end = min(window_start + window, NOW)
                pulled += sync_orders(engine, channel, window_start, window_end, credentials=creds).fetched
                window_start = window_end
                if pulled - reported >= orders / 10 or window_start >= NOW:  # is it slowing down as it grows?
                    now = perf_counter()
                    print(
                        f"    {pulled:>9,} pulled, {now - began:6.1f} s; the last {pulled - reported:,} at "
                        f"{(pulled - reported) / (now - last_report):,.0f} orders/s",
                        file=sys.stderr,
                        flush=True,
                    )
                    reported, last_report = pulled, now
            seconds = perf_counter() - began
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
                problems = []
                if stored != expected or expected != orders:
                    problems.append(f"{stored} orders stored, the sandbox has {expected}, asked {orders}")
                if drift := stock.ledger_drift(conn):
                    problems.append(f"{len(drift)} stock levels disagree with the ledger")
                if units := stock.oversold(conn):
                    problems.append(f"{units} units oversold")
            engine.dispose()
    finally:
        sandbox_rss = _peak_rss_of(sandbox.pid)
        sandbox.terminate()
        sandbox.wait(timeout=30)
        server.stop()
    return {
        "orders": orders,
        "pulled": pulled,
        "seconds": seconds,
        "hub_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sandbox_peak_mib": sandbox_rss,
        "problems": problems,
        "machine": machine,
    }


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
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child of one N
    args = parser.parse_args(argv)
    if args.one:
        print(
            json.dumps(run_one(args.orders[0], args.interval_seconds, args.window_hours, args.database_url))
        )
        return 0

    results = []
    for orders in args.orders:
        print(f"- backfilling {orders:,} orders ...", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--one", "--orders", str(orders),
             "--interval-seconds", str(args.interval_seconds), "--window-hours", str(args.window_hours),
             *(["--database-url", args.database_url] if args.database_url else [])],
            stdout=subprocess.PIPE, text=True, check=True,
        )  # fmt: skip
        result = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(result)
        verdict = "ok" if not result["problems"] else "PROBLEMS: " + "; ".join(result["problems"])
        print(
            f"  {orders:>9,} orders  {result['seconds']:7.1f} s  {orders / result['seconds']:7,.0f} orders/s"
            f"  hub peak {result['hub_peak_mib']:.0f} MiB, sandbox {result['sandbox_peak_mib']:.0f} MiB"
            f"  {verdict}",
            flush=True,
        )
    print("\n".join(results[0]["machine"]))
    print(
        f"windows of {args.window_hours:g} h, one order every {args.interval_seconds:g} s (Shopify sandbox)"
    )
    print("seconds per 100k orders: " + ", ".join(
        f"{r['orders']:,}: {r['seconds'] / r['orders'] * 100_000:.1f}" for r in results
    ))  # fmt: skip
    return 0 if all(not r["problems"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
