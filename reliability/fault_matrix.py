"""Fault matrix: every platform's sandbox in each fault mode, and the order sync's result is still complete
and exact.

Per platform, a clean sync of a window is the baseline. Each cell then syncs the same window into a channel of
its own while the sandbox misbehaves, re-running a failed sync the way Airflow retries a failed run, and
compares what landed with the baseline: the same orders at the same versions, the same exceptions.

``python -m reliability.fault_matrix`` (also part of ``make reliability``) prints the matrix;
``tests/test_fault_matrix.py`` runs it in the suite. The modes are the sandboxes' fault knobs
(``sandbox/faults.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, text

from channelhub.config import ChannelConfig, parse_config
from channelhub.credentials import ChannelCredentials
from channelhub.demo import seed_from_catalog
from channelhub.sync import register_config, sync_orders
from connectors.auth import Secret
from connectors.errors import ConnectorError
from sandbox.clock import Clock
from sandbox.server import run_sandbox, sandbox_connection

NOW = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=3)
PLATFORMS = ("shopify", "woocommerce", "wechat_channels", "youzan")
MODES: dict[str, dict[str, float]] = {
    "429 storm": {"rate_limit_storm": 0.3},
    "5xx burst": {"server_error_rate": 0.3},
    "slow responses": {"latency_seconds": 0.15},
    "truncated JSON": {"truncated_body_rate": 0.2},
    "malformed orders": {"malformed_order_rate": 0.1},
}
RUN_ATTEMPTS = 6  # a sync that still fails after its connector's own retries is re-run, as Airflow does

LANDED_SQL = """
SELECT o.external_id, o.payload_digest FROM orders o JOIN channels c ON c.id = o.channel_id
 WHERE c.code = :code ORDER BY 1"""
QUEUED_SQL = """
SELECT e.reason, coalesce(e.external_id, ''), coalesce(e.sku, '') FROM exceptions e
  JOIN channels c ON c.id = e.channel_id WHERE c.code = :code AND e.status = 'open' ORDER BY 1, 2, 3"""


@dataclass
class Cell:
    platform: str
    mode: str
    ok: bool
    detail: str
    runs: int
    seconds: float


def _channel(engine: Engine, code: str, platform: str, sandbox: Any) -> ChannelConfig:
    config = parse_config(
        {
            # A location per cell: cells never compete for the same stock.
            "locations": [{"code": f"WH-{code}", "name": f"Fault matrix warehouse of {code}"}],
            "channels": [
                {
                    "code": code,
                    "platform": platform,
                    "conn_id": code,
                    "fulfilment_location": f"WH-{code}",
                    "overlap_minutes": 0,
                    "page_size": 10,  # many pages: many requests for the faults to hit
                }
            ],
        }
    )
    register_config(engine, config)
    seed_from_catalog(engine, config.channel(code), sandbox.world.catalog)
    return config.channel(code)


def _outcome(engine: Engine, code: str) -> tuple[list[tuple], list[tuple]]:
    with engine.connect() as conn:
        landed = [tuple(row) for row in conn.execute(text(LANDED_SQL), {"code": code})]
        queued = [tuple(row) for row in conn.execute(text(QUEUED_SQL), {"code": code})]
    return landed, queued


def _sync_like_airflow(engine: Engine, channel: ChannelConfig, creds: ChannelCredentials) -> int:
    for run in range(1, RUN_ATTEMPTS + 1):
        try:
            sync_orders(engine, channel, START, NOW, credentials=creds)
            return run
        except ConnectorError:
            if run == RUN_ATTEMPTS:
                raise
    return RUN_ATTEMPTS


def run_matrix(
    database_url: str, platforms=PLATFORMS, modes=MODES, report: Callable[[str], None] = print
) -> list[Cell]:
    engine = create_engine(database_url)
    cells = []
    try:
        for index, platform in enumerate(platforms):
            with run_sandbox(
                platform,
                seed=900 + index,
                start=START,
                interval=240,
                clock=Clock.frozen(NOW),
                leak_per_second=100.0,
            ) as sandbox:
                conn = sandbox_connection(platform, sandbox.base_url, sandbox.access_token)
                creds = ChannelCredentials(
                    platform, conn["host"], login=conn.get("login"), secret=Secret(conn["password"]),
                    extra=conn.get("extra", {}),
                )  # fmt: skip
                baseline = _channel(engine, f"fm_{platform}_baseline", platform, sandbox)
                sync_orders(engine, baseline, START, NOW, credentials=creds)
                want_landed, want_queued = _outcome(engine, baseline.code)
                for number, (mode, settings) in enumerate(modes.items()):
                    channel = _channel(engine, f"fm_{platform}_{number}", platform, sandbox)
                    started = time.monotonic()
                    sandbox.faults.update(seed=number + 1, **settings)
                    try:
                        runs = _sync_like_airflow(engine, channel, creds)
                        failure = ""
                    except ConnectorError as err:
                        runs, failure = RUN_ATTEMPTS, f"still failing after {RUN_ATTEMPTS} runs: {err}"[:200]
                    finally:
                        sandbox.faults.clear()
                    if settings.get("malformed_order_rate"):
                        # Malformed orders are queued while the platform serves them so; once it serves them
                        # right, the next sync lands them: the window is then exactly the baseline's.
                        sync_orders(engine, channel, START, NOW, credentials=creds)
                    landed, queued = _outcome(engine, channel.code)
                    problems = [failure] if failure else []
                    if landed != want_landed:
                        missing = len(set(want_landed) - set(landed))
                        problems.append(
                            f"{missing} orders missing, {len(set(landed) - set(want_landed))} differ"
                        )
                    if queued != want_queued:
                        problems.append(f"exceptions differ: {sorted(set(queued) ^ set(want_queued))[:3]}")
                    verdict = "; ".join(problems) or f"{len(landed)} orders exact"
                    cells.append(
                        Cell(platform, mode, not problems, verdict, runs, time.monotonic() - started)
                    )
    finally:
        engine.dispose()
    report(render(cells, platforms, modes))
    return cells


def render(cells: list[Cell], platforms, modes) -> str:
    by_key = {(c.platform, c.mode): c for c in cells}
    width = max(len(m) for m in modes) + 2
    lines = ["fault mode".ljust(width) + "".join(p.ljust(22) for p in platforms)]
    for mode in modes:
        row = mode.ljust(width)
        for platform in platforms:
            cell = by_key.get((platform, mode))
            mark = "-" if cell is None else ("ok" if cell.ok else "FAIL")
            row += (
                f"{mark} ({cell.runs} run{'s' * (cell.runs > 1)}, {cell.seconds:.0f}s)" if cell else mark
            ).ljust(22)
        lines.append(row)
    lines += [f"FAIL {c.platform} / {c.mode}: {c.detail}" for c in cells if not c.ok]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from reliability.crash import fresh_database

    parser = argparse.ArgumentParser(
        prog="python -m reliability.fault_matrix", description=__doc__.split("\n\n")[0]
    )
    parser.parse_args(argv)
    with fresh_database() as url:
        cells = run_matrix(url)
    return 0 if all(c.ok for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
