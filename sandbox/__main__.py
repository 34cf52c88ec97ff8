"""``python -m sandbox shopify --port 8701 --seed 1``: serve a simulator in the foreground (demo, humans).

The access token comes from ``--access-token``, else ``SANDBOX_ACCESS_TOKEN``, else the sandbox's test token.
Stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import datetime, timedelta

from sandbox.clock import Clock
from sandbox.faults import Faults
from sandbox.server import PLATFORMS, run_sandbox
from sandbox.shopify import DEFAULT_ACCESS_TOKEN, DEFAULT_SHOP_TIMEZONE
from sandbox.world import DEFAULT_INTERVAL


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Serve a platform simulator.")
    parser.add_argument("platform", choices=PLATFORMS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--access-token", default=None, help="default: $SANDBOX_ACCESS_TOKEN or a test token")
    parser.add_argument("--start", type=_aware, default=None, help="first order time, ISO-8601 with offset")
    parser.add_argument("--interval-seconds", type=float, default=DEFAULT_INTERVAL.total_seconds())
    parser.add_argument("--freeze-at", type=_aware, default=None, help="freeze the clock at this instant")
    parser.add_argument("--bucket-size", type=int, default=40)
    parser.add_argument("--leak-per-second", type=float, default=2.0)
    parser.add_argument("--shop-timezone", default=DEFAULT_SHOP_TIMEZONE)
    parser.add_argument("--rate-limit-storm", type=float, default=0.0)
    parser.add_argument("--server-error-rate", type=float, default=0.0)
    parser.add_argument("--latency-seconds", type=float, default=0.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    token = args.access_token or os.environ.get("SANDBOX_ACCESS_TOKEN") or DEFAULT_ACCESS_TOKEN
    clock = Clock(frozen_at=args.freeze_at) if args.freeze_at else Clock()
    faults = Faults(
        rate_limit_storm=args.rate_limit_storm,
        server_error_rate=args.server_error_rate,
        latency_seconds=args.latency_seconds,
        seed=args.seed,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with run_sandbox(
        args.platform,
        seed=args.seed,
        port=args.port,
        host=args.host,
        access_token=token,
        start=args.start,
        interval=timedelta(seconds=args.interval_seconds),
        clock=clock,
        faults=faults,
        bucket_size=args.bucket_size,
        leak_per_second=args.leak_per_second,
        shop_timezone=args.shop_timezone,
    ) as sandbox:
        token_source = "the sandbox test token" if token == DEFAULT_ACCESS_TOKEN else "the token you supplied"
        print(f"{args.platform} sandbox at {sandbox.base_url} (seed {args.seed}, {token_source})", flush=True)
        print(
            f"world starts {sandbox.world.start.isoformat()}, one order every {args.interval_seconds:g} s",
            flush=True,
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
