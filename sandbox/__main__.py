"""``python -m sandbox shopify --port 8701 --seed 1``: serve a simulator in the foreground (demo, humans);
``--tls`` serves HTTPS (``python -m sandbox woocommerce --tls``).

The access token comes from ``--access-token``, else ``SANDBOX_ACCESS_TOKEN``, else the sandbox's test token.
Every fault setting of ``sandbox.faults.Faults`` is a flag (``--rate-limit-storm 0.2``, ``--timeout-rate``,
``--credentials-revoked``, ...; ``--help`` lists them), derived from its fields so the two cannot drift;
``--seed`` seeds the faults as well as the world. Stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import Field, fields
from datetime import datetime, timedelta
from typing import Any

from sandbox.clock import Clock
from sandbox.faults import Faults, check_setting
from sandbox.server import PLATFORMS, run_sandbox
from sandbox.shopify import DEFAULT_ACCESS_TOKEN, DEFAULT_SHOP_TIMEZONE
from sandbox.world import DEFAULT_INTERVAL


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset")
    return parsed


def fault_settings() -> list[Field[Any]]:
    """The fault settings that get a flag each: all of ``Faults``' but ``seed`` (``--seed`` sets it)."""
    return [f for f in fields(Faults) if not f.name.startswith("_") and f.name != "seed"]


def _fault_value(name: str) -> Callable[[str], float | int | bool]:
    def parse(raw: str) -> float | int | bool:
        try:
            return check_setting(name, raw)
        except ValueError as error:  # argparse turns this into "argument --flag: ..." and exit status 2
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _add_fault_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "faults",
        "Injected misbehaviour, also settable at run time (POST /_sandbox/faults). RATE: a probability in "
        "[0, 1], per API request (per listing page for the paging faults, per order for malformed orders).",
    )
    for setting in fault_settings():
        flag = "--" + setting.name.replace("_", "-")
        doc = setting.metadata["help"]  # a KeyError here: a new Faults field without its help text
        if isinstance(setting.default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=setting.default, help=doc)
            continue
        metavar = "SECONDS" if setting.name.endswith("_seconds") else "RATE"
        group.add_argument(
            flag,
            type=_fault_value(setting.name),
            default=setting.default,
            metavar=metavar,
            help=f"{doc} (default: %(default)s)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Serve a platform simulator.")
    parser.add_argument("platform", choices=PLATFORMS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1, help="seeds the order world and the fault draws")
    parser.add_argument("--access-token", default=None, help="default: $SANDBOX_ACCESS_TOKEN or a test token")
    parser.add_argument("--start", type=_aware, default=None, help="first order time, ISO-8601 with offset")
    parser.add_argument("--interval-seconds", type=float, default=DEFAULT_INTERVAL.total_seconds())
    parser.add_argument("--freeze-at", type=_aware, default=None, help="freeze the clock at this instant")
    parser.add_argument("--bucket-size", type=int, default=40)
    parser.add_argument("--leak-per-second", type=float, default=2.0)
    parser.add_argument("--shop-timezone", default=DEFAULT_SHOP_TIMEZONE)
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a throwaway certificate (its CA's PEM path is printed; e.g. WooCommerce then "
        "takes Basic auth, which it refuses over plain http)",
    )
    _add_fault_flags(parser)
    return parser


def faults_from(args: argparse.Namespace) -> Faults:
    return Faults(
        seed=args.seed, **{setting.name: getattr(args, setting.name) for setting in fault_settings()}
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = faults_from(args)  # each flag was checked alone; this checks them together
    except ValueError as error:
        parser.error(str(error))
    token = args.access_token or os.environ.get("SANDBOX_ACCESS_TOKEN") or DEFAULT_ACCESS_TOKEN
    clock = Clock(frozen_at=args.freeze_at) if args.freeze_at else Clock()
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
        tls=args.tls,
    ) as sandbox:
        token_source = "the sandbox test token" if token == DEFAULT_ACCESS_TOKEN else "the token you supplied"
        print(f"{args.platform} sandbox at {sandbox.base_url} (seed {args.seed}, {token_source})", flush=True)
        if sandbox.ca_bundle:
            print(f"TLS: trust the CA in {sandbox.ca_bundle} (the connection extra ca_bundle)", flush=True)
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
