"""Crash injection: the hub's jobs are killed with SIGKILL at random points and run again; nothing may be
lost, duplicated or applied twice.

One *reference* run performs the job sequence once, uninterrupted, against a fresh warehouse and fresh
sandboxes: every channel's order sync, a shipments import, every channel's shipment push and stock push
(each job a ``channelhub`` process, as an Airflow worker would run it). Each *trial* (seeded, reproducible)
repeats the sequence on a fresh warehouse and fresh sandboxes of the same seeds, but kills some jobs' process
at a random moment of their run and then runs the job again to completion. The trial passes when

- the warehouse (orders, lines and their applied stock, ledger, levels, exceptions, shipments, listings)
  equals the reference's, and
- every sandbox holds the same effects (fulfilments with their tracking, listed stock) as the reference's:
  a retried push may repeat an idempotent call, never add a second effect.

``python -m reliability.crash --runs 50 --seed 1`` (``make reliability``) prints one line per trial and a
total; ``tests/test_crash_recovery.py`` runs a few trials in the suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from channelhub import db
from channelhub.config import load_config
from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config
from platforms.registry import PLATFORM_NAMES, declaration
from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.server import run_sandbox, sandbox_connection
from warehouse.shipment_outbox import orders_ready_to_ship

NOW = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
START = NOW - timedelta(hours=5)
LOCATION = "WH-CRASH"
# One channel of every platform (the registry), each on its own sandbox with a fixed seed.
CHANNELS = {f"crash_{name}": (name, 501 + index) for index, name in enumerate(PLATFORM_NAMES)}
CHANNELHUB = str(Path(sys.executable).parent / "channelhub")
KILL_PROBABILITY = 0.6  # each job of a trial is killed once with this probability

STATE_QUERIES = {
    "orders": """
        SELECT c.code, o.external_id, o.payload_digest, o.payment_status, o.fulfillment_status, o.cancelled,
               o.total::text, o.needs_attention
          FROM orders o JOIN channels c ON c.id = o.channel_id ORDER BY 1, 2""",
    "lines": """
        SELECT c.code, o.external_id, l.external_line_id, s.code, l.reserved_quantity, l.deducted_quantity,
               l.restocked_applied, l.shipped_quantity, l.warehouse_shipped_quantity, l.removed,
               l.ledger_steps::text
          FROM order_lines l JOIN orders o ON o.id = l.order_id JOIN channels c ON c.id = o.channel_id
          LEFT JOIN skus s ON s.id = l.sku_id ORDER BY 1, 2, 3""",
    "ledger": """
        SELECT g.idempotency_key, s.code, loc.code, g.kind, g.delta_on_hand, g.delta_reserved
          FROM stock_ledger g JOIN skus s ON s.id = g.sku_id JOIN locations loc ON loc.id = g.location_id
         ORDER BY 1""",
    "levels": """
        SELECT s.code, loc.code, l.on_hand, l.reserved
          FROM stock_levels l JOIN skus s ON s.id = l.sku_id JOIN locations loc ON loc.id = l.location_id
         ORDER BY 1, 2""",
    # attempts count sightings (a killed run may have seen a problem once more): not part of the state
    "exceptions": """
        SELECT coalesce(c.code, ''), e.reason, coalesce(e.external_id, ''), coalesce(e.sku, ''), e.status
          FROM exceptions e LEFT JOIN channels c ON c.id = e.channel_id ORDER BY 1, 2, 3, 4, 5""",
    "shipments": """
        SELECT c.code, s.shipment_key, s.tracking_number, s.push_status
          FROM shipments s JOIN channels c ON c.id = s.channel_id ORDER BY 1, 2""",
    "listings": """
        SELECT c.code, s.code, l.pushed_quantity
          FROM channel_listings l JOIN channels c ON c.id = l.channel_id JOIN skus s ON s.id = l.sku_id
         ORDER BY 1, 2""",
}


@dataclass
class Job:
    name: str
    argv: tuple[str, ...]
    progress_sql: str  # how far the job got (reported for each kill, to show where it landed)


@dataclass
class TrialResult:
    seed: int
    killed: list[tuple[str, float, str]] = field(default_factory=list)  # (job, seconds into it, progress)
    differences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differences


def job_sequence(shipments_csv: Path) -> list[Job]:
    window = ("--since", START.isoformat(), "--until", NOW.isoformat())
    channel = "(SELECT id FROM channels WHERE code = '{code}')"
    orders = "SELECT count(*) || ' orders in' FROM orders WHERE channel_id = " + channel
    shipped = (
        "SELECT count(*) || ' pushed' FROM shipments WHERE push_status = 'pushed' AND channel_id = " + channel
    )
    stock = (
        "SELECT count(*) || ' stock sets' FROM stock_push_log p "
        "JOIN channel_listings l ON l.id = p.listing_id WHERE l.channel_id = " + channel
    )
    return [
        *(
            Job(f"sync {code}", ("sync", "--channel", code, *window), orders.format(code=code))
            for code in CHANNELS
        ),
        Job(
            "import shipments",
            ("import", "shipments", str(shipments_csv)),
            "SELECT count(*) || ' shipment lines in' FROM shipment_lines",
        ),
        *(
            Job(f"push shipments {code}", ("push", "shipments", "--channel", code), shipped.format(code=code))
            for code in CHANNELS
        ),
        *(
            Job(f"push stock {code}", ("push", "stock", "--channel", code), stock.format(code=code))
            for code in CHANNELS
        ),
    ]


class Hub:
    """A fresh warehouse database and fresh sandboxes (fixed seeds), configured and seeded."""

    def __init__(self, stack: ExitStack, server_url: str, folder: Path) -> None:
        self.url = stack.enter_context(fresh_database(server_url))
        name = make_url(self.url).database
        self.engine = create_engine(self.url)
        stack.callback(self.engine.dispose)
        clock = Clock.frozen(NOW)
        self.sandboxes = {
            code: stack.enter_context(
                run_sandbox(
                    platform,
                    seed=seed,
                    start=START,
                    interval=75,
                    clock=clock,
                    leak_per_second=100.0,
                    # Every call takes a little while, so that a kill often lands between a push reaching the
                    # platform and the hub recording it: the case idempotent pushes exist for.
                    faults=Faults(latency_seconds=0.03),
                )
            )
            for code, (platform, seed) in CHANNELS.items()
        }
        config_file = folder / f"{name}.yaml"
        config_file.write_text(
            yaml.safe_dump(
                {
                    "locations": [{"code": LOCATION, "name": "Crash test warehouse"}],
                    "channels": [
                        {
                            "code": code,
                            "platform": platform,
                            "conn_id": code,
                            "fulfilment_location": LOCATION,
                            "overlap_minutes": 0,
                            "page_size": 20,
                            "batch_size": 20,  # many commits: a kill lands between them as often as in one
                            "stock_policy": {"locations": [LOCATION]},
                        }
                        for code, (platform, _) in CHANNELS.items()
                    ],
                }
            )
        )
        config = load_config(config_file)
        register_config(self.engine, config)
        for code, sandbox in self.sandboxes.items():
            seed_from_catalog(self.engine, config.channel(code), sandbox.world.catalog)
        self.env = {**os.environ, "HUB_CHANNELS_CONFIG": str(config_file), "HUB_DATABASE_URL": self.url}
        for code, sandbox in self.sandboxes.items():
            connection = sandbox_connection(sandbox.platform, sandbox.base_url, sandbox.access_token)
            self.env[f"AIRFLOW_CONN_{code.upper()}"] = json.dumps(connection)

    def run(self, job: Job, kill_after: float | None = None) -> tuple[int | None, float]:
        """Run ``job``; with ``kill_after``, SIGKILL it that many seconds in (None: it finished first).
        Returns (exit code, or None when killed; seconds it ran)."""
        started = time.monotonic()
        process = subprocess.Popen(
            [CHANNELHUB, *job.argv], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _, err = process.communicate(timeout=kill_after if kill_after is not None else 600)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.communicate()
            return None, time.monotonic() - started
        if process.returncode not in (0, 1):
            raise RuntimeError(f"{job.name} failed ({process.returncode}): {err.decode()[-2000:]}")
        return process.returncode, time.monotonic() - started

    def state(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found: dict[str, Any] = {
                name: [tuple(row) for row in conn.execute(text(sql))] for name, sql in STATE_QUERIES.items()
            }
        for code, sandbox in self.sandboxes.items():
            overlay = sandbox.world.overlay
            found[f"{code} fulfilments"] = [
                (index, overlay.events_for(index)) for index in overlay.touched_indices()
            ]
            found[f"{code} listed stock"] = sorted(overlay.stock_levels.items())
        return found


def write_shipments(hub: Hub, path: Path, per_channel: int = 8) -> None:
    """The warehouse ships a few ready orders of every channel (one file, the same for every trial)."""
    rows = []
    with hub.engine.connect() as conn:
        for code in CHANNELS:
            for number, (order_id, lines) in enumerate(orders_ready_to_ship(conn, code, per_channel)):
                carrier = declaration(CHANNELS[code][0]).demo_carrier
                rows += [
                    {
                        "shipment_id": f"CRASH-{code}-{order_id}",
                        "channel": code,
                        "order_id": order_id,
                        "line_id": line_id,
                        "quantity": quantity,
                        "carrier": carrier,
                        "tracking_number": f"{carrier[:2]}CRASH{number:04d}{len(rows):04d}",
                        "shipped_at": NOW.isoformat(),
                    }
                    for line_id, _, quantity in lines
                ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    found = []
    for name in want:
        if got.get(name) != want[name]:
            extra = [row for row in got.get(name, []) if row not in want[name]]
            missing = [row for row in want[name] if row not in got.get(name, [])]
            found.append(f"{name}: {len(missing)} missing, {len(extra)} extra, e.g. {(missing or extra)[:2]}")
    return found


@contextmanager
def reference(server_url: str, folder: Path) -> Iterator[tuple[dict[str, Any], dict[str, float], Path]]:
    """The uninterrupted run: its final state, each job's duration, and the shipments file it used."""
    shipments = folder / "shipments_crash.csv"
    with ExitStack() as stack:
        hub = Hub(stack, server_url, folder)
        durations: dict[str, float] = {}
        for job in job_sequence(shipments):
            if job.name == "import shipments":
                write_shipments(hub, shipments)
            _, durations[job.name] = hub.run(job)
        yield hub.state(), durations, shipments


def trial(
    seed: int,
    server_url: str,
    folder: Path,
    want: dict[str, Any],
    durations: dict[str, float],
    shipments: Path,
) -> TrialResult:
    rng = random.Random(seed)
    result = TrialResult(seed)
    started = time.monotonic()
    with ExitStack() as stack:
        hub = Hub(stack, server_url, folder)
        for job in job_sequence(shipments):
            if rng.random() < KILL_PROBABILITY:
                at = rng.uniform(0.3, 1.0) * durations[job.name]  # mostly past the process start-up
                code, ran = hub.run(job, kill_after=at)
                if code is None:
                    with hub.engine.connect() as conn:
                        progress = conn.execute(text(job.progress_sql)).scalar_one()
                    result.killed.append((job.name, round(ran, 2), progress))
            hub.run(job)  # the retry, as Airflow would run it
        result.differences = differences(hub.state(), want)
    result.seconds = time.monotonic() - started
    return result


def run_trials(runs: int, seed: int, server_url: str, report=print) -> list[TrialResult]:
    folder = Path(tempfile.mkdtemp(prefix="channelhub-crash-"))
    results = []
    with reference(server_url, folder) as (want, durations, shipments):
        report(
            "reference run: "
            + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in durations.items())
            + f"; {len(want['orders'])} orders, {len(want['ledger'])} ledger rows, "
            f"{len(want['shipments'])} shipments"
        )
        for number in range(runs):
            result = trial(seed + number, server_url, folder, want, durations, shipments)
            killed = (
                ", ".join(f"{name} @{at}s ({done})" for name, at, done in result.killed) or "no kill landed"
            )
            verdict = "same as reference" if result.ok else "DIFFERS: " + "; ".join(result.differences)
            where = f"trial {number + 1:>3} (seed {result.seed})"
            report(f"{where}: killed {killed} -> {verdict} [{result.seconds:.0f}s]")
            results.append(result)
    kills = sum(len(r.killed) for r in results)
    report(f"{sum(r.ok for r in results)}/{len(results)} trials equal the reference ({kills} kills landed)")
    return results


@contextmanager
def fresh_database(server_url: str | None = None) -> Iterator[str]:
    """A new, migrated warehouse database on ``server_url`` (default: the tests' choice), dropped after."""
    server_url = server_url or server_url_for_runs()
    name = f"channelhub_reliability_{uuid.uuid4().hex[:10]}"
    db.ensure_database(server_url, name)
    try:
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        db.migrate(url)
        yield url
    finally:
        db.drop_database(server_url, name)


def server_url_for_runs() -> str:
    if url := os.environ.get("HUB_TEST_DATABASE_URL"):
        return db.normalise_url(url)
    return db.local_server_url() or db.start_embedded(Path(tempfile.mkdtemp()) / "pgdata", "postgres")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.crash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    results = run_trials(args.runs, args.seed, server_url_for_runs())
    print()
    from reliability.fault_matrix import run_matrix

    with fresh_database() as url:
        cells = run_matrix(url)
    return 0 if all(r.ok for r in results) and all(c.ok for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
