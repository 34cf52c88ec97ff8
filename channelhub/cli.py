"""``channelhub``: the command line of the hub (the same functions the DAGs call)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


class CliError(Exception):
    """A problem to report in one line and exit 2 (no traceback for things a person can fix)."""


def cmd_map(args: argparse.Namespace) -> int:
    from canonical.order import MappingError
    from channelhub.config import ConfigError, load_config
    from channelhub.platforms import Skipped, get_platform
    from warehouse.ingest import Rejected

    channel = None
    if args.channel:
        try:
            channel = load_config(args.config).channel(args.channel)
        except (ConfigError, KeyError) as err:
            raise CliError(str(err).strip("'\"")) from None
    name = args.platform or (channel.platform if channel else None)
    if name is None:
        raise CliError("say --platform, or --channel to map with that channel's options")
    if channel is not None and channel.platform != name:
        raise CliError(f"channel {channel.code!r} is a {channel.platform} channel, not {name}")
    platform = get_platform(name)
    try:
        document = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as err:
        raise CliError(f"{args.file}: cannot read JSON: {err}") from None
    try:
        payloads = platform.unwrap(document)
    except MappingError as err:
        raise CliError(f"{args.file}: {err.reason}: {err.detail}") from None
    results = [platform.prepare(payload, channel) for payload in payloads]
    failures = [(i, r) for i, r in enumerate(results) if isinstance(r, Rejected)]
    for index, failure in failures:
        ref = failure.external_id or f"#{index}"
        print(f"{args.file}: order {ref}: {failure.reason}: {failure.detail}", file=sys.stderr)
    for index, skipped in enumerate(results):
        if isinstance(skipped, Skipped):
            print(
                f"{args.file}: {skipped.external_id or f'#{index}'}: skipped: {skipped.detail}",
                file=sys.stderr,
            )
    mapped = [r.canonical.to_json() for r in results if not isinstance(r, Rejected | Skipped)]
    single = len(payloads) == 1 and not _in_a_list(document, payloads[0])
    print(json.dumps(mapped[0] if single and mapped else mapped, indent=2, ensure_ascii=False))
    return 1 if failures else 0


def _in_a_list(document: Any, payload: Any) -> bool:
    """Whether the file holds ``payload`` inside a list (an orders page), so the output is a list too."""
    if isinstance(document, list):
        return any(item is payload or _in_a_list(item, payload) for item in document)
    if isinstance(document, dict):
        return any(_in_a_list(value, payload) for value in document.values())
    return False


def cmd_config_check(args: argparse.Namespace) -> int:
    from channelhub.config import load_config

    config = load_config(args.file)
    print(f"{config.source}: OK ({len(config.locations)} locations, {len(config.channels)} channels)")
    for channel in config.channels:
        state = "enabled" if channel.enabled else "disabled"
        print(
            f"  {channel.dag_id}: {channel.platform}, every {channel.schedule}, "
            f"overlap {channel.overlap}, {state}"
        )
        if channel.routing is not None:
            rules = channel.routing
            print(
                f"    routing: {', '.join(rules.locations or (channel.fulfilment_location,))}"
                f"{', whole order first' if rules.whole_order else ''}{', split' if rules.split else ''}"
                f"{', nearest' if rules.nearest else ''}"
                f"{f', store floor {rules.store_floor}' if rules.store_floor else ''}"
            )
    print(f"  personal data of closed orders blanked after {config.retention.personal_data_days} days")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from channelhub import db

    if args.action == "url":
        print(db.database_url())
    elif args.action == "migrate":
        db.migrate()
        print("warehouse schema is at the newest revision")
    elif args.action == "start":
        print(db.start_embedded())
    elif args.action == "stop":
        db.stop_embedded()
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.sync import parse_instant, register_config, sync_orders

    config = load_config()
    channel = config.channel(args.channel)
    until = parse_instant(args.until) if args.until else datetime.now(UTC)
    since = parse_instant(args.since) if args.since else until - channel.schedule
    engine = get_engine()
    register_config(engine, config)
    result = sync_orders(engine, channel, since, until)
    print(result.summary_line())
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.outbound import PushIncomplete
    from channelhub.shipment_push import push_shipments
    from channelhub.stock_push import push_stock
    from channelhub.sync import register_config

    config = load_config()
    channel = config.channel(args.channel)
    engine = get_engine()
    register_config(engine, config)
    push = push_shipments if args.what == "shipments" else push_stock
    try:
        report = push(engine, channel)
    except PushIncomplete as err:
        print(f"channelhub: {err}", file=sys.stderr)
        return 1
    print(report.summary_line())
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.retention import run_retention

    report = run_retention(get_engine(), load_config(), days=args.days, dry_run=args.dry_run)
    print(report.summary_line())
    return 0


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of days from 1 to 3650")
    return days


def cmd_summary(args: argparse.Namespace) -> int:
    from channelhub.db import get_engine
    from channelhub.report import print_summary

    print_summary(get_engine())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from channelhub.demo import run_demo

    return run_demo(
        once=args.once, history=timedelta(hours=args.history_hours), webhooks=not args.no_webhooks
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="channelhub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("map", help="print the canonical order(s) of a platform payload file")
    p.add_argument("--platform", help="the payload's platform (default: --channel's)")
    p.add_argument("--channel", help="map with this channel's options (WooCommerce: its status_map)")
    p.add_argument("--config", help="channels config for --channel (default: HUB_CHANNELS_CONFIG or ours)")
    p.add_argument("file")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("config", help="check config/channels.yaml (or FILE)")
    p.add_argument("action", choices=["check"])
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_config_check)

    p = sub.add_parser("db", help="warehouse database: url | migrate | start | stop (embedded server)")
    p.add_argument("action", choices=["url", "migrate", "start", "stop"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("sync", help="pull one channel's orders now, outside Airflow")
    p.add_argument("--channel", required=True)
    p.add_argument("--since", help="ISO-8601; default: one schedule interval before --until")
    p.add_argument("--until", help="ISO-8601; default: now")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "push", help="push one channel's pending shipments or changed stock now, outside Airflow"
    )
    p.add_argument("what", choices=["shipments", "stock"])
    p.add_argument("--channel", required=True)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "retention", help="blank buyers' personal data of orders closed long enough ago: retention run"
    )
    p.add_argument("action", choices=["run"])
    p.add_argument(
        "--days", type=_days, help="orders closed this many days ago (default: the config's retention)"
    )
    p.add_argument("--dry-run", action="store_true", help="count what would be blanked, change nothing")
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("summary", help="orders landed, units reserved and open exceptions per channel")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("demo", help="embedded Postgres + sandbox channels + Airflow, with a first sync")
    p.add_argument(
        "--once", action="store_true", help="one sync cycle through the real DAGs, a summary, exit"
    )
    p.add_argument("--history-hours", type=float, default=6.0, help="how much sandbox history to load first")
    p.add_argument(
        "--no-webhooks",
        action="store_true",
        help="no webhook receiver: orders arrive by the scheduled syncs only (bench-latency's polling line)",
    )
    p.set_defaults(func=cmd_demo)

    from channelhub import (
        import_cli,
        ops_cli,
        report_cli,
        returns_cli,
        route_cli,
        store_feed_cli,
        transfer_cli,
        webhook_cli,
    )

    import_cli.add_parser(sub)  # channelhub import shipments|counts|sales|returns FILE
    returns_cli.add_parsers(sub)  # channelhub returns receive|list|check-refunds|ship-exchange|...
    ops_cli.add_parsers(sub)  # channelhub exceptions ... | listings map ...
    route_cli.add_parsers(sub)  # channelhub route move|away|show
    webhook_cli.add_parsers(sub)  # channelhub webhooks serve|register|list|remove|sweep
    store_feed_cli.add_parsers(sub)  # channelhub stores serve (the live POS feed)
    report_cli.add_parsers(sub)  # channelhub report sales --by ...
    transfer_cli.add_parsers(sub)  # channelhub transfer send|receive|close|accept|list | receipt ...
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from channelhub.config import ConfigError
    from channelhub.credentials import CredentialsError
    from channelhub.ops_cli import UsageError

    try:
        return args.func(args)
    except (CliError, UsageError, ConfigError, CredentialsError, KeyError) as err:
        message: Any = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"channelhub: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
