"""Order-to-stock latency on the standalone stack: from an order created on one sandbox channel to the new
sellable quantity on every other channel.

Runs ``channelhub demo`` (Postgres, a sandbox per demo channel, ``airflow standalone``) twice: with webhooks
(the receiver lands each order as the platform pushes it and posts a stock asset event through Airflow's
API, so every ``push_stock__*`` runs at once; the syncs keep the demo's schedules as the safety net), and
without (every channel's sync on a one-minute schedule, the best polling does). Each run lets the
sandboxes' live order streams go for ``--minutes``, then measures from the warehouse's own records, for each
order created meanwhile:

    latency = (the last of: each other channel's first accepted stock push of the order's SKU
               made after the order's reservation landed) - (the order's creation time on its platform)

Orders whose SKUs have not yet reached every other channel when the run ends are counted as not propagated.
It prints one line per mode: ``webhooks on|off (...): order-to-stock p50 <s> s | p95 <s> s | max <s> s``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from channelhub import db  # noqa: E402
from platforms.registry import DECLARATIONS  # noqa: E402

LATENCY_SQL = """
WITH new_lines AS (
    SELECT o.id AS order_id, o.channel_id, o.created_at, o.ingested_at, l.sku_id
      FROM orders o JOIN order_lines l ON l.order_id = o.id
     WHERE o.created_at >= :since AND l.sku_id IS NOT NULL AND l.reserved_quantity > 0
),
reached AS (
    SELECT n.order_id, n.created_at, other.id AS other_channel,
           (SELECT min(p.created_at) FROM channel_listings cl
              JOIN stock_push_log p ON p.listing_id = cl.id
             WHERE cl.channel_id = other.id AND cl.sku_id = n.sku_id AND p.created_at >= n.ingested_at
               AND p.status IN ('pushed', 'already_done')) AS seen
      FROM new_lines n JOIN channels other ON other.id <> n.channel_id
     WHERE EXISTS (SELECT 1 FROM channel_listings cl WHERE cl.channel_id = other.id AND cl.sku_id = n.sku_id)
)
SELECT r.order_id, c.code AS channel, min(r.created_at) AS created_at, min(o.ingested_at) AS ingested_at,
       bool_and(r.seen IS NOT NULL) AS everywhere, max(r.seen) AS last_seen
  FROM reached r JOIN orders o ON o.id = r.order_id JOIN channels c ON c.id = o.channel_id
 GROUP BY r.order_id, c.code
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


POLLING_SCHEDULE_MINUTES = 1  # a polled channel's latency is dominated by its schedule: the shortest one
PUSHING = frozenset(name for name, declared in DECLARATIONS.items() if declared.webhooks is not None)


def bench_config(folder: Path, webhooks: bool) -> Path:
    """The demo's channels. With webhooks, the channels whose platform pushes keep the demo's schedules (the
    scheduled pulls are only their safety net); every other channel polls every minute, the best polling
    does."""
    config = yaml.safe_load((PROJECT_ROOT / "config" / "channels.yaml").read_text())
    for channel in config["channels"]:
        if not (webhooks and channel["platform"] in PUSHING):
            channel["schedule_minutes"] = POLLING_SCHEDULE_MINUTES
            channel["overlap_minutes"] = 2
    path = folder / "channels.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Group:
    """The orders of some channels in one run."""

    label: str
    channels: list[dict]
    latencies: list[float]
    landed: list[float]  # creation -> in the warehouse, reserved (the sync or the webhook)
    pending: int

    def line(self) -> str:
        schedules = "/".join(
            str(m) for m in sorted({int(c.get("schedule_minutes", 15)) for c in self.channels})
        )
        head = f"{self.label} ({len(self.channels)} channels, syncs every {schedules} min):"
        if not self.latencies:
            return f"{head} order-to-stock p50 - s | p95 - s | max - s | orders 0 ({self.pending} not yet)"
        return (
            f"{head} order-to-stock p50 {percentile(self.latencies, 0.5):.1f} s | "
            f"p95 {percentile(self.latencies, 0.95):.1f} s | max {max(self.latencies):.1f} s | "
            f"orders {len(self.latencies)} ({self.pending} not yet)"
        )


def groups_of(webhooks: bool, channels: list[dict], rows: list[Any]) -> list[Group]:
    """With webhooks: the pushed channels' orders, then the polled ones'; without: all of them."""

    def group(label: str, members: list[dict]) -> Group:
        codes = {c["code"] for c in members}
        mine = [r for r in rows if r.channel in codes]
        return Group(
            label,
            members,
            [(r.last_seen - r.created_at).total_seconds() for r in mine if r.everywhere],
            [(r.ingested_at - r.created_at).total_seconds() for r in mine if r.everywhere],
            sum(1 for r in mine if not r.everywhere),
        )

    if not webhooks:
        return [group("webhooks off", channels)]
    pushed = [c for c in channels if c["platform"] in PUSHING]
    polled = [c for c in channels if c["platform"] not in PUSHING]
    return [group("webhooks on ", pushed)] + ([group("  no push  ", polled)] if polled else [])


def measure(webhooks: bool, minutes: float, port: str, warmup: float) -> list[Group]:
    """One run of the standalone stack (``channelhub demo``, with or without its webhook receiver)."""
    work = Path(tempfile.mkdtemp(prefix="channelhub-latency-"))
    server = db.local_server_url()
    stop_server = None
    if server is None:
        server = db.start_embedded(work / "pgdata", "postgres")
        stop_server = work / "pgdata"
    database = f"channelhub_latency_{os.getpid()}_{'on' if webhooks else 'off'}"
    db.ensure_database(server, database)
    url = make_url(server).set(database=database).render_as_string(hide_password=False)
    config_path = bench_config(work, webhooks)
    channels = yaml.safe_load(config_path.read_text())["channels"]
    env = {
        **os.environ,
        "HUB_DATABASE_URL": url,
        "HUB_STATE_DIR": str(work / "state"),
        "HUB_CHANNELS_CONFIG": str(config_path),
        "HUB_IMPORT_EVERY_MINUTES": "1",
        "HUB_WEBHOOK_PORT": str(free_port()),
        "AIRFLOW__API__PORT": port,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
    }
    log_path = work / "demo.log"
    mode = "on" if webhooks else "off"
    print(f"- webhooks {mode}: starting the standalone stack (log: {log_path}) ...", flush=True)
    command = [sys.executable, "-m", "channelhub.cli", "demo", "--history-hours", "0.25"]
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            command + ([] if webhooks else ["--no-webhooks"]),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
        try:
            deadline = time.monotonic() + 300
            while b"Airflow UI:" not in log_path.read_bytes():
                if demo.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the demo did not come up; see {log_path}")
                time.sleep(2)
            # The first minutes push every listing of every channel once (the history's orders moved them
            # all; Shopify's 2 requests/s make its first push ~40 s): orders created then would measure that.
            print(f"- stack up; warming up for {warmup:g} s", flush=True)
            time.sleep(warmup)
            since = datetime.now(UTC)
            print(f"- orders created from {since:%H:%M:%S} for {minutes:g} min", flush=True)
            time.sleep(minutes * 60)
            engine = create_engine(url)
            with engine.connect() as conn:
                rows = conn.execute(text(LATENCY_SQL), {"since": since}).all()
            engine.dispose()
        finally:
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(timeout=120)
            except subprocess.TimeoutExpired:
                demo.kill()
    db.drop_database(server, database)
    db.drop_database(server, f"{database}_airflow")  # the demo's Airflow metadata (demo.airflow_metadata_url)
    if stop_server is not None:
        db.stop_embedded(stop_server)
    return groups_of(webhooks, channels, rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=8.0, help="how long the live streams run, per mode")
    parser.add_argument("--port", default="8080", help="the Airflow API server port")
    parser.add_argument("--webhooks", choices=["both", "on", "off"], default="both")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds before measuring (first pushes)")
    args = parser.parse_args()
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.webhooks]
    groups = [
        group for webhooks in modes for group in measure(webhooks, args.minutes, args.port, args.warmup)
    ]
    python = sys.version.split()[0]
    print(f"machine   {os.cpu_count()} cores, Python {python}; airflow standalone (LocalExecutor)")
    for group in groups:
        if group.latencies:
            pushed = [t - landed for t, landed in zip(group.latencies, group.landed, strict=True)]
            landed = f"{percentile(group.landed, 0.5):.1f} / {percentile(group.landed, 0.95):.1f} s"
            then = f"{percentile(pushed, 0.5):.1f} / {percentile(pushed, 0.95):.1f} s"
            print(
                f"{group.label.strip():13} mean {statistics.fmean(group.latencies):.1f} s: landed p50/p95 "
                f"{landed}, then on every other channel p50/p95 {then}"
            )
    for group in groups:
        print(group.line())
    return 0 if all(group.latencies for group in groups) else 1


if __name__ == "__main__":
    sys.exit(main())
