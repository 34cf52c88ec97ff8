"""The example store files of docs/store-imports.md, written from one table per kind, and the small warehouse
they apply to.

``python -m channelhub.store_examples [FOLDER]`` writes, per kind of ``EXAMPLES``, into
docs/examples/store-imports/ (or FOLDER):

- ``<kind>.utf8.csv``: the hub's English column names, UTF-8 without a byte-order mark;
- ``<kind>.utf8-bom.csv``: the Chinese names (``canonical.store_headers.HEADER_ALIASES``), UTF-8 with BOM
  (what Excel's "CSV UTF-8" writes);
- ``<kind>.gb18030.csv``: the Chinese names, GB18030 (what Windows in Chinese saves);
- ``<kind>.xlsx``: the Chinese names, one sheet, numbers as numbers and times as date-time cells (Beijing
  wall time, no offset: read with ``timezone: Asia/Shanghai``, as the examples' times are +08:00).

A kind added later gets its four files by adding its ``ExampleTable`` (and, when its rows need more than
``seed_example_world`` gives, a ``setup``). tests/test_store_files.py checks that the committed files are
what this writes, and imports each of them into a warehouse with no row rejected.

``drop_demo_store_file`` is the demo's: a stock count (盘点) with Chinese headers, in GB18030 or as .xlsx,
dropped into the import folder for the ``store_import`` DAG.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from canonical.store_headers import HEADER_ALIASES
from channelhub.db import PROJECT_ROOT
from warehouse import catalog
from warehouse.ingest import ingest_orders
from warehouse.models import locations, skus, stock_levels
from warehouse.testing import landed, make_line, make_order

EXAMPLES_DIR = PROJECT_ROOT / "docs" / "examples" / "store-imports"
FORMS = ("utf8.csv", "utf8-bom.csv", "gb18030.csv", "xlsx")

# The warehouse the examples name: a channel shipping from the main warehouse, a store, three SKUs in stock.
EXAMPLE_CHANNEL = ("shopify_demo", "shopify", "Demo Shopify shop")
EXAMPLE_LOCATIONS = (("WH-MAIN", "Main warehouse", "warehouse"), ("SH01", "上海南京路店", "store"))
EXAMPLE_SKUS = (("TEE-RED-M", "红色T恤 M"), ("TEE-RED-L", "红色T恤 L"), ("MUG-01", "马克杯"))
EXAMPLE_STOCK = 50  # units of each SKU at each location before the examples apply


@dataclass(frozen=True)
class ExampleTable:
    """One kind's example rows. ``columns`` are the hub's names; the Chinese header of a column is its first
    built-in alias, or ``chinese[column]`` for a column with none (e.g. an extra column the import ignores).
    ``setup`` adds what the rows need beyond ``seed_example_world`` (shipments: the orders they ship)."""

    kind: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str | int, ...], ...]
    chinese: dict[str, str] = field(default_factory=dict)
    time_columns: tuple[str, ...] = ()  # written as date-time cells in the workbook
    setup: Callable[[Engine], None] | None = None

    def chinese_header(self) -> list[str]:
        return [self.chinese.get(c) or HEADER_ALIASES.get(c, (c,))[0] for c in self.columns]


def _example_orders(engine: Engine) -> None:
    """Two paid orders of the example channel, reserved at its fulfilment location, for the shipments."""
    orders = [
        make_order("EX-1001", [make_line("EX-1001-1", "TEE-RED-M", 2), make_line("EX-1001-2", "MUG-01", 1)]),
        make_order("EX-1002", [make_line("EX-1002-1", "TEE-RED-L", 1)]),
    ]
    ingest_orders(engine, EXAMPLE_CHANNEL[0], [landed(order) for order in orders], [])


def _example_shipped_order(engine: Engine) -> None:
    """An order of the example channel that shipped (the channel says so), for the returns."""
    order = make_order(
        "EX-2001",
        [
            make_line("EX-2001-1", "TEE-RED-M", 2, shipped=2),
            make_line("EX-2001-2", "TEE-RED-L", 1, shipped=1),
        ],
        fulfillment_status="fulfilled",
    )
    ingest_orders(engine, EXAMPLE_CHANNEL[0], [landed(order)], [])


EXAMPLES: dict[str, ExampleTable] = {
    "shipments": ExampleTable(
        kind="shipments",
        columns=(
            *("shipment_id", "channel", "order_id", "line_id", "sku", "quantity"),
            *("carrier", "tracking_number", "shipped_at", "location"),
        ),
        rows=(
            (
                "FH-20261102-01",
                "shopify_demo",
                "EX-1001",
                "EX-1001-1",
                "",
                2,
                "顺丰速运",
                "SF1400000001",
                "2026-11-02T09:30:00+08:00",
                "WH-MAIN",
            ),
            (
                "FH-20261102-01",
                "shopify_demo",
                "EX-1001",
                "",
                "MUG-01",
                1,
                "顺丰速运",
                "SF1400000001",
                "2026-11-02T09:30:00+08:00",
                "WH-MAIN",
            ),
            (
                "FH-20261102-02",
                "shopify_demo",
                "EX-1002",
                "EX-1002-1",
                "TEE-RED-L",
                1,
                "中通快递",
                "ZT7300000002",
                "2026-11-02T10:05:00+08:00",
                "WH-MAIN",
            ),
        ),
        time_columns=("shipped_at",),
        setup=_example_orders,
    ),
    "counts": ExampleTable(
        kind="counts",
        columns=("count_id", "location", "sku", "title", "counted_quantity", "counted_at"),
        rows=(
            ("PD-20261102-SH01", "SH01", "TEE-RED-M", "红色T恤 M", 48, "2026-11-02T21:00:00+08:00"),
            ("PD-20261102-SH01", "SH01", "TEE-RED-L", "红色T恤 L", 50, "2026-11-02T21:00:00+08:00"),
            ("PD-20261102-SH01", "SH01", "MUG-01", "马克杯", 53, "2026-11-02T21:00:00+08:00"),
        ),
        chinese={"title": "商品名称"},
        time_columns=("counted_at",),
    ),
    "sales": ExampleTable(
        kind="sales",
        columns=("receipt_id", "line_no", "location", "sku", "title", "quantity", "unit_price", "sold_at"),
        rows=(
            ("XS-SH01-000101", 1, "SH01", "TEE-RED-M", "红色T恤 M", 1, "99.00", "2026-11-02T14:05:00+08:00"),
            ("XS-SH01-000101", 2, "SH01", "MUG-01", "马克杯", 2, "35.50", "2026-11-02T14:05:00+08:00"),
            ("XS-SH01-000102", 1, "SH01", "TEE-RED-L", "红色T恤 L", -1, "99.00", "2026-11-02T15:40:00+08:00"),
        ),
        chinese={"title": "商品名称"},
        time_columns=("sold_at",),
    ),
    # Transfers (调拨) and purchase receipts (采购入库): the receipts are of a transfer and a purchase order
    # their setup makes (other ids than the transfers and expected_deliveries examples, which import anew).
    "transfers": ExampleTable(
        kind="transfers",
        columns=("transfer_id", "line_no", "from_location", "to_location", "sku", "quantity", "sent_at"),
        rows=(
            ("DB-20261102-01", 1, "WH-MAIN", "SH01", "TEE-RED-M", 6, "2026-11-02T08:30:00+08:00"),
            ("DB-20261102-01", 2, "WH-MAIN", "SH01", "MUG-01", 4, "2026-11-02T08:30:00+08:00"),
        ),
        time_columns=("sent_at",),
    ),
    "transfer_receipts": ExampleTable(
        kind="transfer_receipts",
        columns=("transfer_id", "receipt_id", "line_no", "sku", "received_quantity", "received_at"),
        rows=(
            ("DB-20261101-01", "SH01-SH-0001", 1, "TEE-RED-M", 5, "2026-11-02T10:15:00+08:00"),
            ("DB-20261101-01", "SH01-SH-0001", "", "TEE-RED-L", 2, "2026-11-02T10:15:00+08:00"),
        ),
        chinese={"receipt_id": "收货单号"},
        time_columns=("received_at",),
        setup=lambda engine: _example_moves(engine),
    ),
    "expected_deliveries": ExampleTable(
        kind="expected_deliveries",
        columns=("po_id", "supplier", "location", "sku", "quantity", "expected_at"),
        rows=(
            (
                "CG-20261102-01",
                "杭州好物供应链有限公司",
                "WH-MAIN",
                "TEE-RED-M",
                100,
                "2026-11-03T09:00:00+08:00",
            ),
            (
                "CG-20261102-01",
                "杭州好物供应链有限公司",
                "WH-MAIN",
                "MUG-01",
                24,
                "2026-11-03T09:00:00+08:00",
            ),
        ),
        time_columns=("expected_at",),
    ),
    "receipts": ExampleTable(
        kind="receipts",
        columns=("receipt_id", "po_id", "sku", "received_quantity", "received_at"),
        rows=(
            ("RK-20261102-0001", "CG-20261101-01", "TEE-RED-L", 30, "2026-11-02T11:20:00+08:00"),
            ("RK-20261102-0001", "CG-20261101-01", "MUG-01", 10, "2026-11-02T11:20:00+08:00"),
        ),
        chinese={"receipt_id": "入库单号"},
        time_columns=("received_at",),
    ),
    # A channel order's return exchanged for another size, a damaged one (to SH01-DAMAGED), a walk-in.
    "returns": ExampleTable(
        kind="returns",
        columns=(
            *("return_id", "line_no", "location", "sku", "title", "quantity", "reason", "returned_at"),
            *("channel", "order_id", "order_line_id", "exchange_sku", "exchange_quantity"),
        ),
        rows=(
            (
                *("TH-SH01-0001", 1, "SH01", "TEE-RED-M", "红色T恤 M", 1, "尺码不合适"),
                *("2026-11-03T11:20:00+08:00", "shopify_demo", "EX-2001", "EX-2001-1", "TEE-RED-L", 1),
            ),
            (
                *("TH-SH01-0001", 2, "SH01", "TEE-RED-L", "红色T恤 L", 1, "质量问题"),
                *("2026-11-03T11:20:00+08:00", "shopify_demo", "EX-2001", "", "", ""),
            ),
            (
                *("TH-SH01-0002", 1, "SH01", "TEE-RED-M", "红色T恤 M", 1, "七天无理由"),
                *("2026-11-03T15:05:00+08:00", "", "", "", "", ""),
            ),
        ),
        chinese={"title": "商品名称", "order_line_id": "子订单号"},
        time_columns=("returned_at",),
        setup=_example_shipped_order,
    ),
}


def _example_moves(engine: Engine) -> None:
    """What the receipt examples are received against (idempotent): transfer DB-20261101-01 (WH-MAIN -> SH01)
    sent, and purchase order CG-20261101-01 of WH-MAIN expected."""
    from canonical.store_files import ExpectedDeliveryRow, TransferRow
    from warehouse.import_rows import CatalogLookups
    from warehouse.purchase_receipts import expect_line
    from warehouse.transfers import send_line

    at = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    lookups, units = CatalogLookups("examples"), Counter[str]()
    with engine.begin() as conn:
        for no, sku, quantity in ((1, "TEE-RED-M", 5), (2, "TEE-RED-L", 3)):
            row = TransferRow(no, {}, "DB-20261101-01", str(no), "WH-MAIN", "SH01", sku, quantity, at)
            send_line(lookups, conn, row, units)
        for no, sku, quantity in ((1, "TEE-RED-L", 30), (2, "MUG-01", 12)):
            row = ExpectedDeliveryRow(
                no, {}, "CG-20261101-01", "杭州好物供应链有限公司", "WH-MAIN", sku, quantity, at
            )
            expect_line(lookups, conn, row, units)


# -- writing -------------------------------------------------------------------------------------


def example_files(table: ExampleTable) -> dict[str, bytes]:
    """File name -> bytes of the kind's four example files."""
    english = _csv_text(list(table.columns), table.rows)
    chinese = _csv_text(table.chinese_header(), table.rows)
    return {
        f"{table.kind}.utf8.csv": english.encode("utf-8"),
        f"{table.kind}.utf8-bom.csv": chinese.encode("utf-8-sig"),
        f"{table.kind}.gb18030.csv": chinese.encode("gb18030"),
        f"{table.kind}.xlsx": _workbook(table),
    }


def write_examples(folder: Path = EXAMPLES_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in EXAMPLES.values():
        for name, data in example_files(table).items():
            (folder / name).write_bytes(data)
            written.append(folder / name)
    return written


def _csv_text(header: list[str], rows: tuple[tuple[str | int, ...], ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # what Excel and the store systems write
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# A fixed time inside the workbook's metadata, so the file is the same bytes every time it is written.
_WORKBOOK_TIME = datetime(2026, 11, 1, 0, 0)


def _workbook(table: ExampleTable) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    titles = {"shipments": "发货", "counts": "盘点", "sales": "销售", "transfers": "调拨"}
    titles |= {
        "transfer_receipts": "调拨收货",
        "expected_deliveries": "采购单",
        "receipts": "采购入库",
        "returns": "退货",
    }
    sheet.title = titles.get(table.kind, table.kind)
    sheet.append(table.chinese_header())
    times = {table.columns.index(c) for c in table.time_columns}
    for row in table.rows:
        sheet.append([_cell(value, i in times) for i, value in enumerate(row)])
    for column in times:
        for (cell,) in sheet.iter_rows(min_row=2, min_col=column + 1, max_col=column + 1):
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
    workbook.properties.created = _WORKBOOK_TIME
    out = io.BytesIO()
    workbook.save(out)
    return _stable_zip(out.getvalue())


def _cell(value: str | int, is_time: bool) -> object:
    """A workbook cell's value: a number as a number; a time as a date-time cell, which holds the wall time
    and no offset (as store systems export it: read with the folder's ``timezone``)."""
    if is_time and isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=None)
    return value


def _stable_zip(data: bytes) -> bytes:
    """The workbook with every member's timestamp and its "modified" property fixed (openpyxl stamps the
    time of writing on both), so writing the examples again gives the same bytes."""
    import re
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            stable = zipfile.ZipInfo(info.filename, date_time=(2026, 11, 1, 0, 0, 0))
            stable.compress_type = zipfile.ZIP_DEFLATED
            stable.external_attr = info.external_attr
            member = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                member = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>2026-11-01T00:00:00Z\g<2>",
                    member,
                )
            target.writestr(stable, member)
    return out.getvalue()


# -- the warehouse they apply to -----------------------------------------------------------------


def seed_example_world(engine: Engine) -> None:
    """Create what the example files name (idempotent): the locations, the channel, the SKUs with stock,
    and each kind's own setup."""
    with engine.begin() as conn:
        for code, name, kind in EXAMPLE_LOCATIONS:
            catalog.upsert_location(conn, code, name, kind)
        catalog.upsert_channel(conn, *EXAMPLE_CHANNEL, EXAMPLE_LOCATIONS[0][0])
        for code, title in EXAMPLE_SKUS:
            catalog.upsert_sku(conn, code, title)
            catalog.upsert_listing(conn, EXAMPLE_CHANNEL[0], code, merchant_sku=code)
            for location, _, _ in EXAMPLE_LOCATIONS:
                catalog.receive_stock(
                    conn, code, location, EXAMPLE_STOCK, f"receive:example:{location}:{code}"
                )
    for table in EXAMPLES.values():
        if table.setup is not None:
            table.setup(engine)


# -- the demo ------------------------------------------------------------------------------------


def drop_demo_store_file(
    engine: Engine, folder: Path | None = None, *, form: str = "gb18030", location: str | None = None
) -> Path:
    """Drop a stock count (盘点) of up to three SKUs in stock (at ``location``, default any warehouse or
    store) into the import folder (default ``HUB_IMPORT_DIR``), with the Chinese headers a store system
    exports, in GB18030 (found by ``auto``: not UTF-8, and its header names a count's columns) or as
    ``.xlsx``. Each SKU is counted one unit above its on-hand now (a recount that found a unit), so no
    reservation is touched.
    Returns the file's path; the next ``store_import`` run imports it (its time is set a minute back: the
    file is whole, so the folder's wait for files still being written does not apply)."""
    from channelhub.import_folder import import_dir

    if form not in ("gb18030", "xlsx"):
        raise ValueError(f"form {form!r}: expected gb18030 or xlsx")
    folder = folder or import_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        found = conn.execute(
            select(locations.c.code, skus.c.code, skus.c.title, stock_levels.c.on_hand)
            .join(locations, locations.c.id == stock_levels.c.location_id)
            .join(skus, skus.c.id == stock_levels.c.sku_id)
            .where(
                locations.c.code == location if location else locations.c.kind.in_(("warehouse", "store")),
                stock_levels.c.on_hand > 0,
            )
            .order_by(stock_levels.c.on_hand.desc(), skus.c.code)
            .limit(3)
        ).all()
    now = datetime.now(UTC).replace(microsecond=0)
    table = ExampleTable(
        kind="counts",
        columns=("count_id", "location", "sku", "title", "counted_quantity", "counted_at"),
        rows=tuple(
            (f"PD-DEMO-{now:%Y%m%d%H%M%S}", location, sku, title or "", on_hand + 1, now.isoformat())
            for location, sku, title, on_hand in found
        ),
        chinese={"title": "商品名称"},
        time_columns=("counted_at",),
    )
    name = f"盘点_demo_{now:%Y%m%dT%H%M%S}." + ("xlsx" if form == "xlsx" else "csv")
    data = (
        _workbook(table)
        if form == "xlsx"
        else _csv_text(table.chinese_header(), table.rows).encode("gb18030")
    )
    partial = folder / f".{name}.part"  # written under another name, renamed when whole
    partial.write_bytes(data)
    path = partial.replace(folder / name)
    past = time.time() - 60
    os.utime(path, (past, past))
    print(
        f"dropped {path} ({form}, Chinese headers: {len(table.rows)} SKU(s) counted one unit above on-hand)"
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m channelhub.store_examples", description=__doc__)
    parser.add_argument("folder", nargs="?", type=Path, default=EXAMPLES_DIR)
    args = parser.parse_args(argv)
    for path in write_examples(args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
