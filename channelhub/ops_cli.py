"""``channelhub exceptions list|show|retry|resolve|ignore`` and ``channelhub listings map``: working the
exception queue from a shell. The same functions back the ChannelHub page in the Airflow UI.

Exceptions are chosen by id or by filter (``--channel``, ``--reason``, ``--sku``, ``--order``,
``--older-than 2h``); acting on a filter acts on every open exception it matches (a bulk retry, say every
``unknown_sku`` of one SKU after ``listings map``). Every action is logged with who (``--by``, default the
login name) and the note. Exit codes: 0 done, 1 some retried exceptions are still open, 2 a usage error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
from datetime import timedelta
from typing import Any

from warehouse.exceptions import ExceptionFilter

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class UsageError(Exception):
    """Reported in one line with exit code 2."""


MAX_AGE = timedelta(days=36_500)  # a century: older than any queued problem; far more leaves Postgres' range


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: write a duration like 30m, 2h or 3d")
    try:
        age = timedelta(**{UNITS[match[2]]: float(match[1])})
    except OverflowError:
        age = MAX_AGE + MAX_AGE
    if age > MAX_AGE:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_AGE.days} days")
    return age


def default_actor() -> str:
    return os.environ.get("CHANNELHUB_ACTOR") or getpass.getuser()


def _filters(args: argparse.Namespace, status: str | None = "open") -> ExceptionFilter:
    return ExceptionFilter(
        status=status,
        channel=args.channel,
        reason=args.reason,
        sku=args.sku,
        external_id=args.order,
        older_than=args.older_than,
        ids=tuple(args.ids),
        limit=getattr(args, "limit", None),
    )


def _chosen(args: argparse.Namespace) -> ExceptionFilter:
    """The open exceptions an action applies to: ids, or a filter; never the whole queue by accident."""
    chosen = _filters(args)
    if (
        not args.ids
        and not args.all
        and not any((args.channel, args.reason, args.sku, args.order, args.older_than))
    ):
        raise UsageError(
            "name exception ids, or a filter (--channel/--reason/--sku/--order/--older-than), or --all"
        )
    return chosen


def _engine_and_config() -> tuple[Any, Any]:
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.sync import register_config

    engine, config = get_engine(), load_config()
    register_config(engine, config)
    return engine, config


def _row_line(row: dict[str, Any]) -> str:
    subject = row["external_id"] or (f"sku {row['sku']}" if row["sku"] else "-")
    detail = " ".join((row["detail"] or "").split())
    return (
        f"#{row['id']:<6} {row['status']:<8} {row['created_at']:%Y-%m-%d %H:%M} {row['channel'] or '-':<14} "
        f"{row['reason']:<18} {subject:<24} x{row['attempts']}  {detail[:90]}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    from channelhub.exception_ops import list_exceptions

    engine, _ = _engine_and_config()
    status = None if args.status == "any" else args.status
    rows = list_exceptions(engine, _filters(args, status))
    if args.json:
        print(json.dumps(rows, default=str, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        print(_row_line(row))
    print(f"{len(rows)} exception(s)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from channelhub.exception_ops import show_exception

    engine, _ = _engine_and_config()
    found = show_exception(engine, args.id)
    if found is None:
        raise UsageError(f"no exception #{args.id}")
    if args.json:
        print(json.dumps(found, default=str, indent=2, ensure_ascii=False))
        return 0
    for name in (
        "id",
        "status",
        "channel",
        "reason",
        "external_id",
        "sku",
        "attempts",
        "created_at",
        "updated_at",
        "resolved_at",
        "note",
        "detail",
    ):
        print(f"{name:>12}: {found[name] if found[name] is not None else '-'}")
    payload = json.dumps(found["payload"], ensure_ascii=False)[:2000] if found["payload"] else "-"
    print(f"{'payload':>12}: {payload}")
    print("     actions:" + ("" if found["actions"] else " none"))
    for action in found["actions"]:
        note = f" note={action['note']!r}" if action["note"] else ""
        when = f"{action['created_at']:%Y-%m-%d %H:%M:%S}"
        print(f"  {when} {action['actor']}: {action['action']}{note} {action['outcome']}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from channelhub.exception_ops import list_exceptions, retry_exceptions

    engine, config = _engine_and_config()
    ids = [row["id"] for row in list_exceptions(engine, _chosen(args))]
    missing = sorted(set(args.ids) - set(ids))
    outcomes = retry_exceptions(engine, config, ids, args.by, args.note)
    for outcome in outcomes:
        print(f"#{outcome.exception_id}: {outcome.status}: {outcome.detail}")
    for exception_id in missing:
        print(f"#{exception_id}: not open (or no such exception): nothing to retry")
    resolved = sum(o.status == "resolved" for o in outcomes)
    print(f"retried {len(outcomes)}: {resolved} resolved, {len(outcomes) - resolved} still open")
    return 0 if resolved == len(outcomes) and not missing else 1


def cmd_close(args: argparse.Namespace) -> int:
    from channelhub.exception_ops import close_exceptions, list_exceptions

    if not (args.note or "").strip():
        raise UsageError(f"{args.action} needs --note: say why, for whoever reads the queue next")
    engine, _ = _engine_and_config()
    ids = [row["id"] for row in list_exceptions(engine, _chosen(args))]
    status = "resolved" if args.action == "resolve" else "ignored"
    closed = close_exceptions(engine, ids, status, args.by, args.note)
    print(f"{status} {closed} exception(s)")
    return 0


def cmd_listings_map(args: argparse.Namespace) -> int:
    from channelhub.exception_ops import list_exceptions, retry_exceptions
    from warehouse import catalog

    if not (args.merchant_sku or args.product_id):
        raise UsageError("listings map needs --merchant-sku and/or --product-id (with --variant-id)")
    engine, config = _engine_and_config()
    config.channel(args.channel)  # a clear error for a channel that is not configured
    with engine.begin() as conn:
        if args.title:
            catalog.upsert_sku(conn, args.sku, args.title)
        try:
            listing_id = catalog.upsert_listing(
                conn,
                args.channel,
                args.sku,
                merchant_sku=args.merchant_sku,
                channel_product_id=args.product_id,
                channel_variant_id=args.variant_id,
            )
        except (catalog.CatalogError, ValueError) as err:
            raise UsageError(f"{err}" + ("" if args.title else " (add --title to create the SKU)")) from None
    print(f"listing #{listing_id}: {args.channel} {args.merchant_sku or args.product_id} -> {args.sku}")
    channel_ref = args.merchant_sku or (
        f"product:{args.product_id}" + (f"/variant:{args.variant_id}" if args.variant_id else "")
    )
    waiting = list_exceptions(
        engine, ExceptionFilter(channel=args.channel, reason="unknown_sku", sku=channel_ref)
    )
    if not waiting:
        return 0
    if not args.retry:
        print(
            f"{len(waiting)} open unknown_sku exception(s) wait for it: channelhub exceptions retry "
            f"--channel {args.channel} --reason unknown_sku --sku {channel_ref}"
        )
        return 0
    outcomes = retry_exceptions(
        engine, config, [row["id"] for row in waiting], args.by, f"mapped to {args.sku}"
    )
    resolved = sum(o.status == "resolved" for o in outcomes)
    print(f"retried {len(outcomes)} unknown_sku exception(s): {resolved} resolved")
    return 0 if resolved == len(outcomes) else 1


def _add_filters(parser: argparse.ArgumentParser, *, ids: bool = True) -> None:
    if ids:
        parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="exception ids")
    parser.add_argument("--channel")
    parser.add_argument("--reason", help="e.g. unknown_sku, amount_mismatch, bad_import_row")
    parser.add_argument("--sku", help="the SKU the exception names (the channel's SKU for unknown_sku)")
    parser.add_argument("--order", help="the channel's order id")
    parser.add_argument(
        "--older-than", type=parse_duration, metavar="AGE", help="first queued before: 30m, 2h, 3d"
    )


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    exceptions = subparsers.add_parser(
        "exceptions", help="work the exception queue: list|show|retry|resolve|ignore"
    )
    actions = exceptions.add_subparsers(dest="action", required=True)

    p = actions.add_parser("list", help="exceptions, oldest first (open ones unless --status)")
    _add_filters(p)
    p.add_argument("--status", default="open", choices=["open", "resolved", "ignored", "any"])
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = actions.add_parser("show", help="one exception: detail, raw payload, every action on it")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    for name, func, what in (
        ("retry", cmd_retry, "retry (re-map, re-evaluate, re-fetch, re-push, re-import)"),
        ("resolve", cmd_close, "close as fixed"),
        ("ignore", cmd_close, "close without a fix"),
    ):
        p = actions.add_parser(name, help=f"{what} the chosen open exceptions")
        _add_filters(p)
        p.add_argument("--all", action="store_true", help="every open exception")
        p.add_argument("--note", help="why (required for resolve and ignore)")
        p.add_argument("--by", default=default_actor(), help="who acts (default: your login name)")
        p.set_defaults(func=func)

    listings = subparsers.add_parser("listings", help="the channel listing map: listings map ...")
    listing_actions = listings.add_subparsers(dest="action", required=True)
    p = listing_actions.add_parser("map", help="map a channel's SKU (or product/variant) to an internal SKU")
    p.add_argument("--channel", required=True)
    p.add_argument("--sku", required=True, help="the internal SKU")
    p.add_argument("--merchant-sku", help="the channel's SKU code")
    p.add_argument("--product-id", help="the channel's product id")
    p.add_argument("--variant-id", help="the channel's variant/SKU id")
    p.add_argument("--title", help="create the internal SKU with this title if it does not exist")
    p.add_argument(
        "--retry", action="store_true", help="then retry the unknown_sku exceptions waiting for it"
    )
    p.add_argument("--by", default=default_actor(), help="who acts (default: your login name)")
    p.set_defaults(func=cmd_listings_map)
