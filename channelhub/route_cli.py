"""``channelhub route move|away|show``: move reservations between locations when one cannot ship.

- ``route move --channel C --order EXT [--line L] --to LOC``: the line's reservation (every reserved line of
  the order without ``--line``) released where it is and reserved at LOC, in one transaction;
- ``route away --location LOC [--channel C]``: every open reservation at LOC re-routed by its channel's rules
  (LOC left out); lines no other location can take stay and are listed;
- ``route show --channel C --order EXT``: each line's location and reservation, and the moves made.

Every move is in the ledger (release + reserve) and in ``line_routes`` with who (``--by``, default the login
name) and why (``--note``). Exit codes: 0 done, 1 ``away`` left some lines where they are, 2 refused (unknown
channel, order, line or location, a shipped line, a target without the free stock): nothing changed.
"""

from __future__ import annotations

import argparse
import sys

from channelhub.ops_cli import UsageError, default_actor


def cmd_move(args: argparse.Namespace) -> int:
    from channelhub.ops_cli import _engine_and_config
    from warehouse.route_moves import RouteError, move_line_now

    engine, _ = _engine_and_config()
    try:
        moved = move_line_now(
            engine, args.channel, args.order, args.to, line=args.line, actor=args.by, note=args.note
        )
    except RouteError as err:
        raise UsageError(str(err)) from None
    for move in moved:
        print(f"moved {move}")
    return 0


def cmd_away(args: argparse.Namespace) -> int:
    from channelhub.ops_cli import _engine_and_config
    from warehouse.route_moves import RouteError, move_away

    engine, _ = _engine_and_config()
    try:
        report = move_away(engine, args.location, channel=args.channel, actor=args.by, note=args.note)
    except RouteError as err:
        raise UsageError(str(err)) from None
    for move in report.moved:
        print(f"moved {move}")
    for why in report.left:
        print(f"left  {why}", file=sys.stderr)
    print(f"{args.location}: {len(report.moved)} line(s) moved, {len(report.left)} left")
    return 1 if report.left else 0


def cmd_show(args: argparse.Namespace) -> int:
    from channelhub.ops_cli import _engine_and_config
    from warehouse.route_moves import order_locations, route_history

    engine, _ = _engine_and_config()
    with engine.connect() as conn:
        lines = order_locations(conn, args.channel, args.order)
        history = route_history(conn, args.channel, args.order)
    if not lines:
        raise UsageError(f"order {args.order} of channel {args.channel} is not in the warehouse")
    for line in lines:
        print(
            f"line {line['line']:<8} {line['sku'] or '(no sku)':<20} x{line['quantity']:<4} "
            f"at {line['location']:<16} reserved {line['reserved']}, shipped {line['shipped']}"
        )
    for move in history:
        print(
            f"  {move['created_at']:%Y-%m-%d %H:%M} line {move['line']}: {move['units']} unit(s) "
            f"{move['from_location']} -> {move['to_location']} ({move['cause']} by {move['actor']}"
            f"{': ' + move['note'] if move['note'] else ''})"
        )
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``route move|away|show`` on the ``channelhub`` command line."""
    route = subparsers.add_parser("route", help="order routing: move reservations between locations")
    actions = route.add_subparsers(dest="action", required=True)

    def who(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--by", default=default_actor(), help="who moves it (default: login name)")
        parser.add_argument("--note", help="why (kept with the move)")

    p = actions.add_parser("move", help="move one order's line (or reserved lines) to another location")
    p.add_argument("--channel", required=True)
    p.add_argument("--order", required=True, help="the channel's order id")
    p.add_argument("--line", help="the channel's line id (default: every reserved line of the order)")
    p.add_argument("--to", required=True, help="the location code to reserve at")
    who(p)
    p.set_defaults(func=cmd_move)

    p = actions.add_parser("away", help="re-route every open reservation at a location by the rules")
    p.add_argument("--location", required=True)
    p.add_argument("--channel", help="only this channel's orders")
    who(p)
    p.set_defaults(func=cmd_away)

    p = actions.add_parser("show", help="an order's lines, their locations and the moves made")
    p.add_argument("--channel", required=True)
    p.add_argument("--order", required=True)
    p.set_defaults(func=cmd_show)
