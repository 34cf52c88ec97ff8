"""``channelhub returns receive|list|check-refunds|ship-exchange|cancel-exchange|demo``: returns and exchanges
(退换货) from a shell; the rules are ``warehouse.returns`` (docs/returns.md). A file of returns goes through
``channelhub import returns FILE`` like every store file.

Exit codes: 0 done (or done before), 2 refused (the reason on stderr, e.g. ``never_shipped: ...``) or a
usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from canonical.store_files import ReturnRow


def _engine() -> Any:
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.sync import register_config

    engine = get_engine()
    register_config(engine, load_config())  # the configured locations and channels exist in the warehouse
    return engine


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: an ISO-8601 time, e.g. 2026-12-07T10:00:00+08:00"
        ) from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_receive(args: argparse.Namespace) -> int:
    from warehouse.returns import ReturnRefused, receive_return

    if (args.channel is None) != (args.order is None):
        print("channelhub: --channel and --order go together (neither: a walk-in return)", file=sys.stderr)
        return 2
    row = ReturnRow(
        line=0,
        raw={},
        return_id=args.return_id,
        line_no=args.line_no,
        location=args.location,
        sku=args.sku,
        quantity=args.quantity,
        reason=args.reason.strip().lower(),
        returned_at=_when(args.at),
        channel=args.channel,
        order_id=args.order,
        order_line_id=args.line,
        exchange_sku=args.exchange_sku,
        exchange_quantity=args.exchange_quantity or (args.quantity if args.exchange_sku else None),
    )
    engine = _engine()
    try:
        with engine.begin() as conn:
            changed = receive_return(conn, row, source="cli")
    except ReturnRefused as err:
        print(f"channelhub: return refused: {err.reason}", file=sys.stderr)
        return 2
    print(f"{row.key}: {'received' if changed else 'already received, nothing changed'}")
    return 0


def _line(row: dict[str, Any]) -> str:
    order = f"{row['channel']}/{row['order_id']}#{row['order_line_id']}" if row["channel"] else "walk-in"
    exchange = (
        f"  exchange {row['exchange_quantity']} x {row['exchange_sku']} ({row['exchange_status']})"
        if row["exchange_sku"]
        else ""
    )
    return (
        f"{row['returned_at']:%Y-%m-%d %H:%M} {row['location']:<12} {row['return_id']}/{row['line_no']:<4} "
        f"{order:<28} {row['quantity']:>4} x {row['sku']:<14} {row['reason']:<12} "
        f"-> {row['stock_location']:<18} {row['refund_status']}"
        f"{' OVERDUE' if row['overdue'] else ''}{exchange}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    from warehouse.return_refunds import list_returns

    with _engine().connect() as conn:
        rows = list_returns(
            conn,
            channel=args.channel,
            order_id=args.order,
            location=args.location,
            awaiting_refund_days=args.awaiting_refund_days,
            limit=args.limit,
        )
    if args.awaiting_refund:
        rows = [row for row in rows if row["refund_status"] in ("awaiting_refund", "partly_refunded")]
    if args.json:
        print(json.dumps(rows, default=str, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        print(_line(row))
    print(f"{len(rows)} return line(s)")
    return 0


def cmd_check_refunds(args: argparse.Namespace) -> int:
    from warehouse.return_refunds import NOT_REFUNDED, queue_unrefunded_returns

    with _engine().begin() as conn:
        queued = queue_unrefunded_returns(conn, args.days)
    print(
        f"{queued} order(s) with returned units not refunded after {args.days} days: queued as {NOT_REFUNDED}"
    )
    return 0


def cmd_exchange(args: argparse.Namespace) -> int:
    from warehouse.returns import ReturnRefused, cancel_exchange, ship_exchange

    act = ship_exchange if args.action == "ship-exchange" else cancel_exchange
    try:
        with _engine().begin() as conn:
            changed = act(conn, args.location, args.return_id, args.line_no)
    except ReturnRefused as err:
        print(f"channelhub: refused: {err.reason}", file=sys.stderr)
        return 2
    done = "shipped" if args.action == "ship-exchange" else "cancelled"
    print(f"exchange of return {args.return_id} line {args.line_no}: {done if changed else f'{done} before'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from channelhub.demo_returns import demo_return

    return demo_return(_engine(), args.channel, args.store)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``returns ...`` on the ``channelhub`` command line."""
    parser = subparsers.add_parser("returns", help="returns and exchanges (退换货): receive, list, refunds")
    sub = parser.add_subparsers(dest="returns_command", required=True)

    p = sub.add_parser("receive", help="receive one return line at a store or warehouse")
    p.add_argument("--return-id", required=True)
    p.add_argument("--line-no", default="1")
    p.add_argument("--location", required=True, help="where it was received")
    p.add_argument("--sku", required=True, help="the internal SKU, or the channel's SKU as on the order line")
    p.add_argument("--quantity", type=int, required=True)
    p.add_argument("--reason", required=True, help="a declared reason code (docs/returns.md)")
    p.add_argument("--at", help="when it came back (ISO-8601; default now)")
    p.add_argument("--channel", help="the order's channel (none: a walk-in return)")
    p.add_argument("--order", help="the channel's order id")
    p.add_argument("--line", help="the order's external line id (default: its line of --sku)")
    p.add_argument("--exchange-sku", help="an exchange: the replacement SKU, reserved at --location")
    p.add_argument("--exchange-quantity", type=int)
    p.set_defaults(func=cmd_receive)

    p = sub.add_parser("list", help="return lines with their refund status (newest first)")
    p.add_argument("--channel")
    p.add_argument("--order")
    p.add_argument("--location")
    p.add_argument("--awaiting-refund", action="store_true", help="only lines the channel has not refunded")
    p.add_argument(
        "--awaiting-refund-days", type=int, default=14, help="mark OVERDUE when not refunded after N days"
    )
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "check-refunds", help="queue returned-but-not-refunded orders for a person (return_not_refunded)"
    )
    p.add_argument("--days", type=int, default=14)
    p.set_defaults(func=cmd_check_refunds)

    for action, text in (
        ("ship-exchange", "the replacement left (handed over or shipped): deduct it"),
        ("cancel-exchange", "the replacement will not be given: release its reservation"),
    ):
        p = sub.add_parser(action, help=text)
        p.add_argument("--location", required=True)
        p.add_argument("--return-id", required=True)
        p.add_argument("--line-no", default="1")
        p.set_defaults(func=cmd_exchange, action=action)

    p = sub.add_parser(
        "demo", help="receive one unit of a shipped order back at a store and show the effects"
    )
    p.add_argument("--channel")
    p.add_argument("--store")
    p.set_defaults(func=cmd_demo)
