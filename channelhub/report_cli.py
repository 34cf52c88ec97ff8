"""``channelhub report sales``: the sales report (销售报表) as a table, CSV or an Excel workbook.

    channelhub report sales --by channel|location|sku|day [--from DATE] [--to DATE] [--tz ZONE]
                            [--format table|csv|xlsx] [--output FILE]

``--from`` and ``--to`` are calendar days (YYYY-MM-DD) in ``--tz`` (default UTC); ``--to`` is exclusive
(default: tomorrow, i.e. today included; ``--from`` defaults to 30 days before ``--to``). What each figure
means: docs/reports.md. Exit codes: 0 done, 2 a usage error (unknown grouping, a bad date, a window that ends
before it starts, xlsx without ``--output``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine

from warehouse.sales_report import DEFAULT_DAYS, GROUPINGS, ReportError, SalesReport, Window, sales_report

FORMATS = ("table", "csv", "xlsx")


class ReportUsageError(ValueError):
    """A report asked for in a way that cannot be answered: one line on stderr, exit 2."""


# -- rendering -------------------------------------------------------------------------------------


def _money(amounts: Mapping[str, Decimal]) -> str:
    return "; ".join(f"{value:,.2f} {currency}" for currency, value in amounts.items()) or "-"


def report_columns(report: SalesReport) -> list[str]:
    """The columns of CSV and xlsx: money one column per currency (never summed across currencies)."""
    columns = [report.by, "name", "units_sold", "unpriced_units"]
    columns += [f"revenue_{c}" for c in report.currencies]
    columns += ["refunded_units"] + [f"refunded_amount_{c}" for c in report.currencies]
    columns += ["returned_units"]
    if report.by in ("sku", "location"):
        columns += ["on_hand", "sell_through"]
    return columns


def report_records(report: SalesReport) -> list[list[object]]:
    records: list[list[object]] = []
    for row in report.rows:
        record: list[object] = [row.key, row.label, row.units_sold, row.unpriced_units]
        record += [row.revenue.get(c, Decimal(0)) for c in report.currencies]
        record += [row.refunded_units] + [row.refunded_amount.get(c, Decimal(0)) for c in report.currencies]
        record += [row.returned_units]
        if report.by in ("sku", "location"):
            record += [row.on_hand, row.sell_through]
        records.append(record)
    return records


def render_table(report: SalesReport) -> str:
    """A plain-text table, one line per group, then the window it covers."""
    sell_through = report.by in ("sku", "location")
    headers = [report.by, "units sold", "revenue", "refunded", "refund amount", "returned"]
    if sell_through:
        headers += ["on hand", "sell-through"]
    table = []
    for row in report.rows:
        units = f"{row.units_sold}" + (f" ({row.unpriced_units} unpriced)" if row.unpriced_units else "")
        cells = [
            row.key,
            units,
            _money(row.revenue),
            str(row.refunded_units),
            _money(row.refunded_amount),
            str(row.returned_units),
        ]
        if sell_through:
            cells += [
                "-" if row.on_hand is None else str(row.on_hand),
                "-" if row.sell_through is None else f"{row.sell_through * 100:.1f}%",
            ]
        table.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(headers)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    if not table:
        lines.append("(no sales in this window)")
    lines.append(f"sales by {report.by}, {_window_text(report)}")
    return "\n".join(lines)


def render_csv(report: SalesReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report_columns(report))
    writer.writerows(
        ["" if value is None else value for value in record] for record in report_records(report)
    )
    return out.getvalue()


def write_xlsx(report: SalesReport, path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = f"sales by {report.by}"
    sheet.append(report_columns(report))
    for record in report_records(report):
        sheet.append(record)
    sheet.append([])
    sheet.append([_window_text(report)])
    book.save(path)


def _window_text(report: SalesReport) -> str:
    zone = ZoneInfo(report.tz)
    start, end = report.window.start.astimezone(zone), report.window.end.astimezone(zone)
    return f"from {start:%Y-%m-%d %H:%M} up to {end:%Y-%m-%d %H:%M} ({report.tz}, end excluded)"


# -- the command -----------------------------------------------------------------------------------


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD, e.g. 2026-11-01)") from None


def window_of(first: date | None, end: date | None, tz: str) -> Window:
    """The report's window from the command's days (see the module docstring)."""
    end = end or (datetime.now(ZoneInfo(tz)).date() + timedelta(days=1))
    first = first or end - timedelta(days=DEFAULT_DAYS)
    if first >= end:
        raise ReportUsageError(f"--from {first} is not before --to {end} (--to is exclusive)")
    return Window.of_days(first, end, tz)


def run_sales_report(
    engine: Engine,
    by: str,
    *,
    first: date | None = None,
    end: date | None = None,
    tz: str = "UTC",
    fmt: str = "table",
    output: Path | None = None,
) -> SalesReport:
    """Make the report and write it (stdout, or ``output``)."""
    if fmt not in FORMATS:
        raise ReportUsageError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "xlsx" and output is None:
        raise ReportUsageError("--format xlsx writes a workbook: say where with --output FILE.xlsx")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportUsageError(f"unknown time zone {tz!r} (e.g. UTC, Asia/Shanghai)") from None
    window = window_of(first, end, tz)
    try:
        with engine.connect() as conn:
            report = sales_report(conn, by, window, tz=tz)
    except ReportError as err:
        raise ReportUsageError(str(err)) from None
    if fmt == "xlsx":
        assert output is not None
        write_xlsx(report, output)
    else:
        body = render_table(report) + "\n" if fmt == "table" else render_csv(report)
        if output is None:
            sys.stdout.write(body)
        else:
            output.write_text(body, encoding="utf-8")
    return report


def cmd_report_sales(args: argparse.Namespace) -> int:
    from channelhub.db import get_engine

    try:
        report = run_sales_report(
            get_engine(),
            args.by,
            first=args.date_from,
            end=args.date_to,
            tz=args.tz,
            fmt=args.format,
            output=Path(args.output) if args.output else None,
        )
    except ReportUsageError as err:
        print(f"channelhub: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"channelhub: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return 2
    if args.output:
        print(f"sales by {report.by}: {len(report.rows)} rows written to {args.output}", file=sys.stderr)
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``report sales ...`` on the ``channelhub`` command line."""
    report = subparsers.add_parser("report", help="reports from the warehouse: sales (销售报表)")
    kinds = report.add_subparsers(dest="report", required=True)
    p = kinds.add_parser(
        "sales", help="units, revenue, refunds, returns and sell-through by channel, location, sku or day"
    )
    p.add_argument("--by", choices=GROUPINGS, default="channel")
    p.add_argument(
        "--from", dest="date_from", type=_day, help="first day, YYYY-MM-DD (default: 30 days back)"
    )
    p.add_argument(
        "--to", dest="date_to", type=_day, help="day after the last, YYYY-MM-DD (default: tomorrow)"
    )
    p.add_argument("--tz", default="UTC", help="the days' time zone (default UTC), e.g. Asia/Shanghai")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", help="write to FILE instead of stdout (required for xlsx)")
    p.set_defaults(func=cmd_report_sales)


def print_sales_demo(engine: Engine, by: tuple[str, ...] = ("channel", "location")) -> None:
    """For ``make demo-once``: the last 30 days' sales by channel (and by location) as tables."""
    for grouping in by:
        print(run_sales_report_text(engine, grouping))


def run_sales_report_text(engine: Engine, by: str, window: Window | None = None) -> str:
    with engine.connect() as conn:
        return render_table(
            sales_report(conn, by, window or Window.last_days(today=datetime.now(UTC).date()))
        )
