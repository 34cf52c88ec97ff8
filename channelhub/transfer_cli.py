"""``channelhub transfer ...`` (调拨) and ``channelhub receipt ...`` (采购入库) from a shell.

    channelhub transfer send T-1001 --from WH-MAIN --to STORE-SH-01 --line SKU-TEE-M=6 --line SKU-CAP=2
    channelhub transfer receive T-1001 --receipt SH01-R1 --line SKU-TEE-M=4 [--line-no 2=2]
    channelhub transfer close T-1001          # no more receipts: the missing units are written off, queued
    channelhub transfer accept T-1001 --line 1  # a person's yes to units received beyond sent
    channelhub transfer list [--status in_transit] [--id T-1001] [--json]

    channelhub receipt expect PO-88 --supplier "Acme" --location WH-MAIN --line SKU-TEE-M=100
    channelhub receipt receive PO-88 --receipt GRN-1 --line SKU-TEE-M=60
    channelhub receipt accept|reject PO-88 --sku SKU-TEE-M   # units received beyond expected
    channelhub receipt close PO-88
    channelhub receipt list [--status open] [--id PO-88] [--json]

The same rules as the files (``warehouse.transfers``, ``warehouse.purchase_receipts``); a command's lines
apply together or not at all. Exit codes: 0 done (or done before: every command is idempotent), 2 refused
(the reason on stderr, nothing changed) or a usage error. A command that changed stock also tells Airflow
(the stock Asset, when the ``channelhub_airflow_api`` connection is configured), so every channel's stock
push runs now instead of at its next schedule.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from channelhub.ops_cli import UsageError, default_actor


def _engine():
    from channelhub.config import load_config
    from channelhub.db import get_engine
    from channelhub.sync import register_config

    engine = get_engine()
    register_config(engine, load_config())  # the configured locations exist in the warehouse
    return engine


def _pairs(values: list[str] | None, what: str) -> list[tuple[str, int]]:
    """``REF=UNITS`` options as (ref, units)."""
    pairs = []
    for value in values or []:
        ref, sep, units = value.rpartition("=")
        if not sep or not ref or not units.strip().isdigit() or int(units) <= 0:
            raise UsageError(f"{what} {value!r}: write {what.upper()}=UNITS with a positive whole number")
        pairs.append((ref.strip(), int(units)))
    return pairs


def _instant(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not an ISO-8601 time (e.g. 2026-12-01T09:00:00+08:00)") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run(apply: Callable[[Any, Counter[str]], Any], what: str) -> tuple[int, Any]:
    """Apply in one transaction; a refusal rolls it all back and exits 2."""
    from warehouse.import_rows import RowRejected

    units: Counter[str] = Counter()
    try:
        with _engine().begin() as conn:
            result = apply(conn, units)
    except RowRejected as err:
        print(f"channelhub: {what} refused: {err.reason}", file=sys.stderr)
        return 2, None
    if any(units[k] for k in ("sent", "received", "accepted", "lost")):
        _tell_airflow(what)
    return 0, result


def _tell_airflow(what: str) -> None:
    from channelhub.airflow_api import stock_asset_events

    events = stock_asset_events()
    if events is None:
        return  # no Airflow API configured: the stock pushes run on their schedules
    try:
        events.stock_changed({"cause": what})
    except Exception as err:  # the change is committed; only the early push is lost
        print(f"channelhub: stock pushes wait for their schedule (Airflow not told: {err})", file=sys.stderr)


# -- transfer ----------------------------------------------------------------------------------------


def cmd_transfer_send(args: argparse.Namespace) -> int:
    from canonical.store_files import TransferRow
    from warehouse.import_rows import CatalogLookups
    from warehouse.transfers import get_transfer, send_line

    lines = _pairs(args.line, "sku")
    if not lines:
        raise UsageError("name at least one --line SKU=UNITS")
    sent_at = _instant(args.sent_at)

    def apply(conn, units: Counter[str]):
        lookups = CatalogLookups("cli")
        for number, (sku, quantity) in enumerate(lines, start=1):
            raw = {
                "transfer_id": args.transfer_id,
                "line_no": str(number),
                "sku": sku,
                "quantity": str(quantity),
            }
            row = TransferRow(
                number,
                raw,
                args.transfer_id,
                str(number),
                args.source,
                args.destination,
                sku,
                quantity,
                sent_at,
            )
            send_line(lookups, conn, row, units)
        return get_transfer(conn, args.transfer_id)

    code, view = _run(apply, f"transfer send {args.transfer_id}")
    if view is not None:
        _print_transfers([view])
    return code


def cmd_transfer_receive(args: argparse.Namespace) -> int:
    from canonical.store_files import TransferReceiptRow
    from warehouse.import_rows import CatalogLookups
    from warehouse.transfers import get_transfer, receive_line

    refs = [(None, sku, n) for sku, n in _pairs(args.line, "sku")]
    refs += [(no, None, n) for no, n in _pairs(args.line_no, "line_no")]
    if not refs:
        raise UsageError("name at least one --line SKU=UNITS or --line-no N=UNITS")
    received_at = _instant(args.received_at)

    def apply(conn, units: Counter[str]):
        lookups = CatalogLookups("cli")
        for number, (line_no, sku, quantity) in enumerate(refs, start=1):
            raw = {"transfer_id": args.transfer_id, "receipt_id": args.receipt, "line_no": line_no or "",
                   "sku": sku or "", "received_quantity": str(quantity)}  # fmt: skip
            row = TransferReceiptRow(
                number, raw, args.transfer_id, args.receipt, line_no, sku, quantity, received_at
            )
            receive_line(lookups, conn, row, units)
        if units["over_received"]:
            print(f"{units['over_received']} units beyond what was sent are held for a person "
                  "(transfer_discrepancy)", file=sys.stderr)  # fmt: skip
        return get_transfer(conn, args.transfer_id)

    code, view = _run(apply, f"transfer receive {args.transfer_id}")
    if view is not None:
        _print_transfers([view])
    return code


def cmd_transfer_close(args: argparse.Namespace) -> int:
    from warehouse.transfers import close_transfer

    def apply(conn, units: Counter[str]):
        view = close_transfer(conn, args.transfer_id, args.by)
        units["lost"] += sum(line.lost for line in view.lines)
        return view

    code, view = _run(apply, f"transfer close {args.transfer_id}")
    if view is not None:
        _print_transfers([view])
    return code


def cmd_transfer_accept(args: argparse.Namespace) -> int:
    from warehouse.transfers import accept_excess, get_transfer

    def apply(conn, units: Counter[str]):
        units["accepted"] += accept_excess(conn, args.transfer_id, args.line, args.by)
        return get_transfer(conn, args.transfer_id)

    code, view = _run(apply, f"transfer accept {args.transfer_id}")
    if view is not None:
        _print_transfers([view])
    return code


def cmd_transfer_list(args: argparse.Namespace) -> int:
    from warehouse.transfers import list_transfers

    with _engine().connect() as conn:
        views = list_transfers(conn, status=args.status, transfer_id=args.id, limit=args.limit)
    if args.json:
        print(json.dumps([asdict(v) for v in views], default=str, ensure_ascii=False, indent=2))
    else:
        _print_transfers(views)
    return 0


def _print_transfers(views: list) -> None:
    if not views:
        print("no transfers")
    for view in views:
        print(f"{view.transfer_id}  {view.from_location} -> {view.to_location}  {view.status}  "
              f"sent {view.sent_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip
        for line in view.lines:
            extra = f" lost={line.lost}" if line.lost else ""
            extra += f" beyond_sent_waiting={line.excess_waiting}" if line.excess_waiting else ""
            print(f"  line {line.line_no}: {line.sku} sent={line.sent} received={line.received} "
                  f"in_transit={line.in_transit}{extra}")  # fmt: skip


# -- receipt (purchase orders) -----------------------------------------------------------------------


def cmd_receipt_expect(args: argparse.Namespace) -> int:
    from canonical.store_files import ExpectedDeliveryRow
    from warehouse.import_rows import CatalogLookups
    from warehouse.purchase_receipts import expect_line, get_delivery

    lines = _pairs(args.line, "sku")
    if not lines:
        raise UsageError("name at least one --line SKU=UNITS")
    expected_at = _instant(args.expected_at)

    def apply(conn, units: Counter[str]):
        lookups = CatalogLookups("cli")
        for number, (sku, quantity) in enumerate(lines, start=1):
            raw = {"po_id": args.po_id, "sku": sku, "quantity": str(quantity)}
            row = ExpectedDeliveryRow(
                number, raw, args.po_id, args.supplier, args.location, sku, quantity, expected_at
            )
            expect_line(lookups, conn, row, units)
        return get_delivery(conn, args.po_id)

    code, view = _run(apply, f"receipt expect {args.po_id}")
    if view is not None:
        _print_deliveries([view])
    return code


def cmd_receipt_receive(args: argparse.Namespace) -> int:
    from canonical.store_files import PurchaseReceiptRow
    from warehouse.import_rows import CatalogLookups
    from warehouse.purchase_receipts import get_delivery, receive

    lines = _pairs(args.line, "sku")
    if not lines:
        raise UsageError("name at least one --line SKU=UNITS")
    received_at = _instant(args.received_at)

    def apply(conn, units: Counter[str]):
        lookups = CatalogLookups("cli")
        for number, (sku, quantity) in enumerate(lines, start=1):
            raw = {
                "receipt_id": args.receipt,
                "po_id": args.po_id,
                "sku": sku,
                "received_quantity": str(quantity),
            }
            row = PurchaseReceiptRow(number, raw, args.receipt, args.po_id, sku, quantity, received_at)
            receive(lookups, conn, row, units)
        if units["held_over_receipt"]:
            print(f"{units['held_over_receipt']} units beyond what was expected are held for a person "
                  "(receipt_discrepancy)", file=sys.stderr)  # fmt: skip
        return get_delivery(conn, args.po_id)

    code, view = _run(apply, f"receipt receive {args.po_id}")
    if view is not None:
        _print_deliveries([view])
    return code


def cmd_receipt_decide(args: argparse.Namespace) -> int:
    from warehouse.purchase_receipts import decide_excess, get_delivery

    accept = args.decision == "accept"

    def apply(conn, units: Counter[str]):
        decided = decide_excess(conn, args.po_id, args.sku, args.by, accept=accept)
        units["accepted" if accept else "rejected"] += decided
        return get_delivery(conn, args.po_id)

    code, view = _run(apply, f"receipt {args.decision} {args.po_id}")
    if view is not None:
        _print_deliveries([view])
    return code


def cmd_receipt_close(args: argparse.Namespace) -> int:
    from warehouse.purchase_receipts import close_delivery

    code, view = _run(
        lambda conn, _units: close_delivery(conn, args.po_id, args.by), f"receipt close {args.po_id}"
    )
    if view is not None:
        _print_deliveries([view])
    return code


def cmd_receipt_list(args: argparse.Namespace) -> int:
    from warehouse.purchase_receipts import list_deliveries

    with _engine().connect() as conn:
        views = list_deliveries(conn, status=args.status, po_id=args.id, limit=args.limit)
    if args.json:
        print(json.dumps([asdict(v) for v in views], default=str, ensure_ascii=False, indent=2))
    else:
        _print_deliveries(views)
    return 0


def _print_deliveries(views: list) -> None:
    if not views:
        print("no expected deliveries")
    for view in views:
        print(f"{view.po_id}  {view.supplier} -> {view.location}  {view.status}  "
              f"expected {view.expected_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip
        for line in view.lines:
            extra = f" beyond_expected_waiting={line.excess_waiting}" if line.excess_waiting else ""
            extra += f" accepted_excess={line.accepted_excess}" if line.accepted_excess else ""
            extra += f" rejected_excess={line.rejected_excess}" if line.rejected_excess else ""
            print(f"  {line.sku}: expected={line.expected} received={line.received} "
                  f"on_hand_from_it={line.on_hand}{extra}")  # fmt: skip


# -- the command line --------------------------------------------------------------------------------


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``transfer ...`` and ``receipt ...`` on the ``channelhub`` command line."""
    transfer = subparsers.add_parser(
        "transfer", help="transfers between locations (调拨): send | receive | close | accept | list"
    )
    verbs = transfer.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("send", help="send units out of a location's free stock into transit")
    p.add_argument("transfer_id")
    p.add_argument("--from", dest="source", required=True, help="the location the units leave")
    p.add_argument("--to", dest="destination", required=True, help="the location they go to")
    p.add_argument("--line", action="append", metavar="SKU=UNITS", help="a line (repeat); numbered 1, 2, ...")
    p.add_argument("--sent-at", help="ISO-8601 (default now)")
    p.set_defaults(func=cmd_transfer_send)
    p = verbs.add_parser("receive", help="units of a transfer arrived at its destination")
    p.add_argument("transfer_id")
    p.add_argument("--receipt", required=True, help="the destination's receipt id (idempotency)")
    p.add_argument("--line", action="append", metavar="SKU=UNITS", help="units of the line of this SKU")
    p.add_argument("--line-no", action="append", metavar="N=UNITS", help="units of line N")
    p.add_argument("--received-at", help="ISO-8601 (default now)")
    p.set_defaults(func=cmd_transfer_receive)
    p = verbs.add_parser("close", help="no more receipts: missing units written off transit and queued")
    p.add_argument("transfer_id")
    p.add_argument("--by", default=default_actor(), help="who (default: the login name)")
    p.set_defaults(func=cmd_transfer_close)
    p = verbs.add_parser("accept", help="accept units a line received beyond sent (moved from the source)")
    p.add_argument("transfer_id")
    p.add_argument("--line", required=True, metavar="LINE_NO")
    p.add_argument("--by", default=default_actor(), help="who (default: the login name)")
    p.set_defaults(func=cmd_transfer_accept)
    p = verbs.add_parser("list", help="transfers, newest first, with their lines")
    p.add_argument("--status", choices=("in_transit", "received", "closed_short"))
    p.add_argument("--id")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_transfer_list)

    receipt = subparsers.add_parser(
        "receipt", help="purchase receipts (采购入库): expect | receive | accept | reject | close | list"
    )
    verbs = receipt.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("expect", help="an expected delivery (purchase order)")
    p.add_argument("po_id")
    p.add_argument("--supplier", required=True)
    p.add_argument("--location", required=True, help="where it is delivered")
    p.add_argument("--line", action="append", metavar="SKU=UNITS", help="a line (repeat)")
    p.add_argument("--expected-at", help="ISO-8601 (default now)")
    p.set_defaults(func=cmd_receipt_expect)
    p = verbs.add_parser("receive", help="units received against a purchase order")
    p.add_argument("po_id")
    p.add_argument("--receipt", required=True, help="the receipt id (入库单号; idempotency)")
    p.add_argument("--line", action="append", metavar="SKU=UNITS", help="a line (repeat)")
    p.add_argument("--received-at", help="ISO-8601 (default now)")
    p.set_defaults(func=cmd_receipt_receive)
    for decision, help_ in (
        ("accept", "put the units received beyond expected on hand"),
        ("reject", "record the units received beyond expected as sent back (not on hand)"),
    ):
        p = verbs.add_parser(decision, help=help_)
        p.add_argument("po_id")
        p.add_argument("--sku", required=True)
        p.add_argument("--by", default=default_actor(), help="who (default: the login name)")
        p.set_defaults(func=cmd_receipt_decide, decision=decision)
    p = verbs.add_parser("close", help="no more receipts: lines received short are queued for a person")
    p.add_argument("po_id")
    p.add_argument("--by", default=default_actor(), help="who (default: the login name)")
    p.set_defaults(func=cmd_receipt_close)
    p = verbs.add_parser("list", help="expected deliveries with what was received")
    p.add_argument("--status", choices=("open", "received", "closed_short"))
    p.add_argument("--id")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_receipt_list)
