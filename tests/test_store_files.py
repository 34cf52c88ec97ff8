"""The files stores really export (issue 21, 5): .xlsx and CSV in UTF-8, UTF-8 with BOM and GB18030, chosen
per drop folder or detected only when certain, with the Chinese column names store systems use and a header
map per source. Never a silent mis-decode: a file in another encoding than declared is refused, typed.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import create_test_database
from hub_configs import write_hub_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from canonical.store_encoding import EncodingRefused, decode_bytes
from canonical.store_files import ImportFileError, parse_csv
from canonical.store_headers import HEADER_ALIASES, HeaderError, _alias_index, resolve_header
from canonical.store_read import FileOptions, read_file
from channelhub import db, import_cli
from channelhub.config import ConfigError, ImportSourceConfig, parse_config
from channelhub.import_folder import import_folder, kind_of
from channelhub.store_examples import (
    EXAMPLES,
    EXAMPLES_DIR,
    FORMS,
    drop_demo_store_file,
    example_files,
    seed_example_world,
)
from warehouse import exceptions as queue
from warehouse import stock
from warehouse.store_imports import import_file
from warehouse.testing import Shop

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SALES_EN = ["receipt_id", "line_no", "location", "sku", "quantity", "sold_at"]
SALES_ZH = ["单据编号", "行号", "门店", "商品编码", "数量", "销售时间"]


def csv_bytes(header: list[str], rows: list[list[object]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[object]], sheet: str = "销售", first_sheet: str | None = None) -> bytes:
    workbook = Workbook()
    if first_sheet:
        workbook.active.title = first_sheet
        workbook.active.append(["not", "this", "one"])
        target = workbook.create_sheet(sheet)
    else:
        target = workbook.active
        target.title = sheet
    for row in rows:
        target.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# -- encodings -----------------------------------------------------------------------------------


def test_each_encoding_reads_the_same_rows_and_auto_tells_them_apart():
    rows = [["R1", 1, "SH01", "TEE-红", 2, "2026-11-02T14:05:00+08:00"]]
    expected = parse_csv("sales", csv_bytes(SALES_EN, rows).decode()).rows
    for encoding, declared in [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030")]:
        data = csv_bytes(SALES_ZH, rows, encoding)
        for options in (FileOptions(encoding=declared), FileOptions()):  # declared, and auto
            parsed = read_file("sales", data, "sales.csv", options)
            assert [replace(r, raw={}) for r in parsed.rows] == [replace(r, raw={}) for r in expected]
            assert parsed.rows[0].sku == "TEE-红" and not parsed.bad
    assert csv_bytes(SALES_ZH, rows, "utf-8-sig").startswith(b"\xef\xbb\xbf")  # the BOM was there, and went
    ascii_only = csv_bytes(SALES_EN, [["R1", 1, "SH01", "A", 1, "2026-11-02"]])
    for declared in ("auto", "utf-8", "utf-8-sig", "gb18030"):  # pure ASCII is fine in any
        assert read_file("sales", ascii_only, "sales.csv", FileOptions(encoding=declared)).rows[0].sku == "A"


def test_gb18030_declared_as_utf8_is_refused_with_a_typed_reason_not_garbage():
    data = csv_bytes(SALES_ZH, [["R1", 1, "SH01", "A", 1, "2026-11-02"]], "gb18030")
    for declared in ("utf-8", "utf-8-sig"):
        with pytest.raises(EncodingRefused) as caught:
            read_file("sales", data, "sales.csv", FileOptions(encoding=declared))
        assert caught.value.reason == "not_declared_encoding"
        assert str(caught.value) == (
            f"declared {declared}, but byte 0 is 0xb5: it looks like GB18030; "
            "set the folder's encoding to gb18030 (or --encoding gb18030)"
        )
    # and the other way round: UTF-8 Chinese read as GB18030 would be other Chinese characters
    utf8 = csv_bytes(SALES_ZH, [["R1", 1, "SH01", "A", 1, "2026-11-02"]], "utf-8")
    with pytest.raises(EncodingRefused, match="declared gb18030, but the file is valid UTF-8") as caught:
        read_file("sales", utf8, "sales.csv", FileOptions(encoding="gb18030"))
    assert caught.value.reason == "not_declared_encoding"
    with pytest.raises(EncodingRefused, match="starts with UTF-8's byte-order mark"):
        decode_bytes(b"\xef\xbb\xbfsku\n", "gb18030")


def test_auto_refuses_what_it_cannot_tell_safely():
    # decodes strictly as GB18030, but its header names no sales column: could be any legacy encoding
    unknown_header = "编号,名称\n1,甲\n".encode("gb18030")
    with pytest.raises(EncodingRefused) as caught:
        read_file("sales", unknown_header, "sales.csv")
    assert caught.value.reason == "encoding_undetectable"
    assert "cannot tell the encoding safely; declare it" in str(caught.value)
    # a count's header in a sales file is not a sales header either
    counts_header = "盘点单号,门店,商品编码,实盘数量,盘点时间\n".encode("gb18030")
    with pytest.raises(EncodingRefused, match="read as GB18030 its first row is not a header of this kind"):
        read_file("sales", counts_header, "sales.csv")
    # Latin-1 (Café): neither UTF-8 nor GB18030
    latin1 = "receipt_id,line_no,location,sku,quantity,sold_at\nR,1,Café,A,1,2026-11-02\n".encode("latin-1")
    with pytest.raises(
        EncodingRefused, match=r"^not UTF-8 \(byte 56 is 0xe9\) and not GB18030 either: cannot tell"
    ):
        read_file("sales", latin1, "sales.csv")
    with pytest.raises(EncodingRefused, match="UTF-16"):
        read_file("sales", "sku\n".encode("utf-16"), "sales.csv")
    with pytest.raises(EncodingRefused, match="unknown encoding 'latin-1'") as caught:
        read_file("sales", latin1, "sales.csv", FileOptions(encoding="latin-1"))
    assert caught.value.reason == "unsupported_encoding"


# -- headers -------------------------------------------------------------------------------------


def test_chinese_headers_resolve_with_spaces_full_width_spaces_and_case_ignored():
    header = [" 单据编号", "行号　", "门店编码", "SKU编码", "数量", "销售日期", "商品名称", "备注"]
    rows = [["R1", "1", "SH01", "A", "3", "2026-11-02T10:00:00Z", "红色T恤", ""]]
    parsed = parse_csv("sales", csv_bytes(header, rows).decode())
    (row,) = parsed.rows
    assert (row.receipt_id, row.line_no, row.location, row.sku, row.quantity) == ("R1", "1", "SH01", "A", 3)
    assert parsed.rows[0].raw["商品名称"] == "红色T恤"  # a column of no meaning to sales is kept, ignored
    english = parse_csv(
        "sales", "Receipt_ID,LINE_NO,Location,SKU,Quantity,Sold_At\nR1,1,SH01,A,3,2026-11-02\n"
    )
    assert english.rows[0].sku == "A"


def test_a_source_header_map_wins_over_the_built_in_names():
    header = ["单号", "序号", "仓库", "门店", "编码", "数量", "销售时间"]
    rows = [["R9", "1", "WH-2", "某门店", "A", "1", "2026-11-02T10:00:00Z"]]
    text_ = csv_bytes(header, rows).decode()
    with pytest.raises(ImportFileError, match="columns '仓库' and '门店' both mean location") as caught:
        parse_csv("sales", text_)  # the built-in names alone: two locations, and no receipt id or SKU
    assert caught.value.reason == "ambiguous_header"
    own = {"单号": "receipt_id", "编码": "sku", "门店": None}  # 门店 is a name column here: ignore it
    (row,) = parse_csv("sales", text_, own).rows
    assert (row.receipt_id, row.location, row.sku) == ("R9", "WH-2", "A")


def test_a_header_that_would_map_to_two_columns_is_refused():
    # two cells of one file meaning one column
    with pytest.raises(ImportFileError, match="columns '货号' and '商品编码' both mean sku") as caught:
        parse_csv("counts", "货号,商品编码,门店,实盘数量,盘点时间\nA,A,SH01,1,2026-11-02\n")
    assert caught.value.reason == "ambiguous_header"
    with pytest.raises(ImportFileError, match="both mean sku"):
        parse_csv("counts", "sku,SKU,location,counted_quantity,counted_at\n")
    # one name meaning two columns: in a source's map, and in the built-in table
    with pytest.raises(HeaderError, match="names '货号 ' twice: as sku and as count_id"):
        resolve_header(["货号"], ["sku"], {"货号": "sku", "货号 ": "count_id"})
    with pytest.raises(HeaderError, match="'数量' is listed under both quantity and counted_quantity"):
        _alias_index({**HEADER_ALIASES, "counted_quantity": ("数量",)})


def test_a_header_lacking_a_column_names_what_it_has():
    with pytest.raises(ImportFileError, match=r"lacks sku .*it has: 门店, 实盘数量, 盘点时间") as caught:
        parse_csv("counts", "门店,实盘数量,盘点时间\nSH01,1,2026-11-02\n")
    assert caught.value.reason == "header_lacks_column"


# -- xlsx ----------------------------------------------------------------------------------------


def test_xlsx_cells_read_as_the_text_a_csv_would_hold():
    rows = [
        SALES_ZH,
        [],  # a blank row is skipped; row numbers stay the sheet's
        [20261102001, 1.0, "SH01", "00123", 2.0, datetime(2026, 11, 2, 14, 5)],
        ["R2", 2, "SH01", "B", 1, "2026-11-02T14:05:00+08:00", None],
    ]
    parsed = read_file("sales", xlsx_bytes(rows), "销售.xlsx", FileOptions(timezone="Asia/Shanghai"))
    assert not parsed.bad
    first, second = parsed.rows
    assert (first.line, first.receipt_id, first.line_no, first.sku, first.quantity) == (
        3,
        "20261102001",
        "1",
        "00123",
        2,
    )
    assert first.raw["sold_at"] == "2026-11-02T14:05:00"
    assert first.sold_at == datetime(2026, 11, 2, 6, 5, tzinfo=UTC)  # the folder's zone: Beijing time
    assert second.line == 4 and second.sold_at == first.sold_at


def test_xlsx_sheet_by_name_and_forms_that_are_refused():
    rows = [SALES_EN, ["R1", 1, "SH01", "A", 1, "2026-11-02"]]
    data = xlsx_bytes(rows, sheet="明细", first_sheet="汇总")
    assert read_file("sales", data, "sales.xlsx", FileOptions(sheet="明细")).rows[0].sku == "A"
    with pytest.raises(ImportFileError, match="lacks"):
        read_file("sales", data, "sales.xlsx")  # the first sheet is the summary
    with pytest.raises(ImportFileError, match="no sheet '库存' \\(it has: 汇总, 明细\\)"):
        read_file("sales", data, "sales.xlsx", FileOptions(sheet="库存"))
    with pytest.raises(ImportFileError, match=r"not a readable \.xlsx workbook"):
        read_file("sales", b"receipt_id,line_no\n", "sales.xlsx")
    with pytest.raises(ImportFileError, match=r"named as CSV: name it \.xlsx"):
        read_file("sales", data, "sales.csv")
    with pytest.raises(ImportFileError, match=r"\.xls \(Excel 97-2003\)"):
        read_file("sales", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "sales.xlsx")


# -- file names ----------------------------------------------------------------------------------


def test_file_names_announce_their_kind_in_english_or_chinese():
    assert kind_of("sales_SH01.xlsx") == "sales"
    assert kind_of("销售_SH01_20261102.csv") == "sales"
    assert kind_of("盘点单.XLSX") == "counts"
    assert kind_of("发货_20261102.csv") == "shipments"
    assert kind_of("销售退货_20261102.csv") == "returns"  # a return, not a sale
    assert kind_of("退货_SH01.xlsx") == kind_of("退换货单.csv") == kind_of("returns_SH01.csv") == "returns"
    assert kind_of("~$销售.xlsx") is None and kind_of("sales.xls") is None and kind_of("库存.csv") is None


# -- config --------------------------------------------------------------------------------------


def hub_document(import_sources: list) -> dict:
    return {
        "locations": [{"code": "WH-MAIN", "name": "Main"}],
        "channels": [],
        "import_sources": import_sources,
    }


def test_import_sources_in_config_and_their_errors():
    config = parse_config(
        hub_document(
            [
                {"folder": "stores/SH01", "encoding": "gb18030", "headers": {"编码": "sku", "门店": None}},
                {"folder": "youshu", "sheet": "明细", "timezone": "Asia/Shanghai"},
            ]
        )
    )
    assert config.import_sources[0] == ImportSourceConfig(
        "stores/SH01", "gb18030", {"编码": "sku", "门店": None}, None, None
    )
    assert config.import_source("youshu").options == FileOptions("auto", {}, "明细", "Asia/Shanghai")
    with pytest.raises(ConfigError) as caught:
        parse_config(
            hub_document(
                [
                    {"folder": "../elsewhere", "encoding": "latin-1"},
                    {"folder": "done"},
                    {"folder": "a", "headers": {"编码": "skuu", "货号": "sku", " 货号": "count_id"}},
                    {"folder": "b", "timezone": "Mars/Olympus"},
                ]
            )
        )
    problems = "\n".join(caught.value.problems)
    assert "import_sources[0].encoding: 'latin-1' is not one of" in problems
    assert "import_sources[0].folder: '../elsewhere' does not match" in problems
    with pytest.raises(ConfigError) as caught:
        parse_config(
            hub_document(
                [
                    {"folder": "done"},
                    {"folder": "a", "headers": {"编码": "skuu", "货号": "sku", " 货号": "count_id"}},
                    {"folder": "b", "timezone": "Mars/Olympus"},
                ]
            )
        )
    first, unknown_column, named_twice, zone = caught.value.problems
    assert first == "import_sources[0].folder: 'done' is where imported files are moved; pick another"
    # the columns any kind reads (a kind added later adds its own)
    assert unknown_column.startswith("import_sources[1].headers.编码: 'skuu' is no import column (one of: ")
    listed = unknown_column.split("(one of: ")[1].rstrip(")").split(", ")
    assert {"sku", "quantity", "sold_at", "counted_at", "tracking_number"} <= set(listed)
    assert named_twice == (
        "import_sources[1].headers: the header map names ' 货号' twice: as sku and as count_id"
    )
    assert zone == "import_sources[2].timezone: 'Mars/Olympus' is no IANA zone (e.g. Asia/Shanghai)"


# -- into the warehouse --------------------------------------------------------------------------


@pytest.fixture()
def shop(engine: Engine) -> Iterator[Shop]:
    shop = Shop.create(engine)
    for name in ("A", "B", "C"):
        shop.add_sku(name, 20)
    yield shop


def test_an_xlsx_with_a_bad_row_queues_that_row_and_applies_the_rest(shop: Shop, tmp_path: Path):
    path = tmp_path / f"销售_{shop.prefix}.xlsx"
    path.write_bytes(
        xlsx_bytes(
            [
                SALES_ZH,
                ["R1", 1, shop.location, shop.sku("A"), 2, "2026-11-02T10:00:00Z"],
                ["R1", 2, shop.location, shop.sku("B"), "两个", "2026-11-02T10:00:00Z"],
                ["R1", 3, shop.location, shop.sku("C"), 3.0, datetime(2026, 11, 2, 10, 0)],
            ]
        )
    )
    report = import_file(shop.engine, "sales", path)
    assert (report.rows_read, report.applied, report.units["sold"]) == (3, 2, 5)
    assert [(r.line, r.reason) for r in report.rejected] == [(3, "quantity '两个' is not a whole number")]
    assert [shop.level(n) for n in ("A", "B", "C")] == [(18, 0), (20, 0), (17, 0)]
    with shop.engine.connect() as conn:
        open_rows = queue.list_open(conn, reason="bad_import_row")
        (queued,) = [e for e in open_rows if e["detail"].startswith(f"{path.name}:3:")]
    again = import_file(shop.engine, "sales", path)  # the same file again changes nothing
    assert (again.applied, again.already_applied, len(again.rejected)) == (0, 2, 1)
    assert queued["detail"] == f"{path.name}:3: quantity '两个' is not a whole number"


def test_drop_folders_read_with_their_own_settings(shop: Shop, tmp_path: Path):
    store = tmp_path / "stores" / "SH01"
    store.mkdir(parents=True)
    header = ["盘点单号", "仓库", "编码", "实盘数量", "盘点时间"]
    (store / "盘点_1.csv").write_bytes(
        csv_bytes(header, [["PD1", shop.location, shop.sku("A"), 15, "2026-11-02 21:00"]], "gb18030")
    )
    (store / "盘点_2.csv").write_bytes(  # UTF-8 in a folder declared gb18030: refused, moved to failed/
        csv_bytes(header, [["PD2", shop.location, shop.sku("B"), 1, "2026-11-02 21:00"]], "utf-8")
    )
    (tmp_path / "counts_top.csv").write_bytes(  # the top folder: auto, built-in names (编码 is not one)
        csv_bytes(
            ["盘点单号", "仓库", "商品编码", "实盘数量", "盘点时间"],
            [["PD3", shop.location, shop.sku("C"), 11, "2026-11-02T13:00:00Z"]],
            "gb18030",
        )
    )
    sources = [ImportSourceConfig("stores/SH01", "gb18030", {"编码": "sku"}, None, "Asia/Shanghai")]
    results = {r.path.name: r for r in import_folder(shop.engine, tmp_path, min_age=0, sources=sources)}
    assert results["盘点_1.csv"].report.applied == 1 and results["counts_top.csv"].report.applied == 1
    assert results["盘点_1.csv"].moved_to == store / "done" / "盘点_1.csv"
    failed = results["盘点_2.csv"]
    assert failed.moved_to == store / "failed" / "盘点_2.csv"
    assert "declared gb18030, but the file is valid UTF-8" in failed.error
    assert failed.reason == "not_declared_encoding" and failed.as_dict()["reason"] == "not_declared_encoding"
    why = (store / "failed" / "盘点_2.csv.report.txt").read_text(encoding="utf-8")
    assert "declared gb18030, but the file is valid UTF-8" in why and "reason: not_declared_encoding" in why
    assert [shop.level(n) for n in ("A", "B", "C")] == [(15, 0), (20, 0), (11, 0)]
    with shop.engine.connect() as conn:
        from sqlalchemy import select

        from warehouse.models import locations, skus, stock_counts

        counted_at = conn.execute(
            select(stock_counts.c.counted_at)
            .join(skus, skus.c.id == stock_counts.c.sku_id)
            .join(locations, locations.c.id == stock_counts.c.location_id)
            .where(skus.c.code == shop.sku("A"))
        ).scalar_one()
    assert counted_at == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)  # 21:00 in Shanghai


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="channelhub")
    import_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_takes_an_encoding_and_a_sources_headers(
    shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, capsys
):
    config_file, _ = write_hub_config(tmp_path, [], location=shop.location)
    document = config_file.read_text(encoding="utf-8")
    document += "import_sources:\n  - folder: guanjiapo\n    encoding: gb18030\n    headers: {编码: sku}\n"
    config_file.write_text(document, encoding="utf-8")
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    header = ["单据编号", "行号", "门店", "编码", "数量", "销售时间"]
    path = tmp_path / "sales_gjp.csv"
    path.write_bytes(csv_bytes(header, [["R7", 1, shop.location, shop.sku("A"), 4, "2026-11-02"]], "gb18030"))
    assert run_cli("import", "sales", str(path), "--encoding", "utf-8") == 2
    assert "it looks like GB18030" in capsys.readouterr().err
    assert run_cli("import", "sales", str(path)) == 2  # auto: 编码 is no built-in name, so nothing is certain
    assert "cannot tell the encoding safely" in capsys.readouterr().err
    assert run_cli("import", "sales", str(path), "--headers-from", "nowhere") == 2
    assert "no import source 'nowhere'" in capsys.readouterr().err
    assert run_cli("import", "sales", str(path), "--headers-from", "guanjiapo") == 0
    assert "applied=1" in capsys.readouterr().out
    assert shop.level("A") == (16, 0)


# -- the documented examples ---------------------------------------------------------------------


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_the_committed_examples_are_what_the_script_writes_and_read_alike(kind: str):
    written = example_files(EXAMPLES[kind])
    assert sorted(written) == sorted(f"{kind}.{form}" for form in FORMS)
    for name, data in written.items():
        committed = (EXAMPLES_DIR / name).read_bytes()
        if name.endswith(".xlsx"):
            assert _members(committed) == _members(data), f"{name}: run python -m channelhub.store_examples"
        else:
            assert committed == data, f"{name}: run python -m channelhub.store_examples"
    options = FileOptions(timezone="Asia/Shanghai")  # the workbook's date-time cells are Beijing time
    forms = [read_file(kind, data, name, options) for name, data in written.items()]
    assert all(not parsed.bad for parsed in forms)
    first = [replace(row, raw={}) for row in forms[0].rows]
    assert all([replace(row, raw={}) for row in parsed.rows] == first for parsed in forms[1:])


@pytest.fixture(scope="module")
def example_template(pg_server_url: str) -> Iterator[str]:
    """A warehouse holding what the examples name, to copy for each file (CREATE DATABASE ... TEMPLATE)."""
    url = create_test_database(pg_server_url)
    engine = create_engine(url)
    seed_example_world(engine)
    seed_example_world(engine)  # idempotent: nothing twice
    with engine.connect() as conn:
        assert stock.stock_level(conn, "MUG-01", "SH01") == (50, 0)
        assert stock.stock_level(conn, "MUG-01", "WH-MAIN") == (50, 1)  # order EX-1001 reserved one
    engine.dispose()
    yield make_url(url).database
    db.drop_database(pg_server_url, make_url(url).database)


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.*")), ids=lambda p: p.name)
def test_every_example_file_imports_with_no_row_rejected(
    path: Path, example_template: str, pg_server_url: str
):
    """Every example file found (a kind added later is covered by its files), into a copy of the warehouse
    the examples name: every row applies, the levels equal the ledger, nothing is oversold."""
    name = f"channelhub_test_{uuid.uuid4().hex[:10]}"
    server = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{example_template}"'))
    server.dispose()
    engine = create_engine(make_url(pg_server_url).set(database=name))
    try:
        kind = path.name.split(".", 1)[0]
        report = import_file(engine, kind, path, FileOptions(timezone="Asia/Shanghai"))
        assert report.rejected == [] and report.applied == report.rows_read > 0, report.summary_line()
        with engine.connect() as conn:
            assert stock.ledger_drift(conn) == []
            levels = conn.execute(
                text("SELECT count(*) FROM stock_levels WHERE reserved > on_hand OR on_hand < 0")
            )
            assert levels.scalar_one() == 0
    finally:
        engine.dispose()
        db.drop_database(pg_server_url, name)


def test_the_dag_reads_each_drop_folder_with_its_settings_and_the_demo_drop(
    shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, airflow_db
):
    from airflow.dag_processing.dagbag import DagBag

    config_file, _ = write_hub_config(tmp_path, [], location=shop.location)
    document = config_file.read_text(encoding="utf-8")
    document += (
        "import_sources:\n  - folder: stores/youshu\n    sheet: 明细\n    timezone: Asia/Shanghai\n"
        "    headers: {编码: sku}\n"
    )
    config_file.write_text(document, encoding="utf-8")
    folder = tmp_path / "imports"
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_IMPORT_DIR", str(folder))
    store = folder / "stores" / "youshu"
    store.mkdir(parents=True)
    workbook = xlsx_bytes(
        [
            [*SALES_ZH[:3], "编码", *SALES_ZH[4:]],
            ["R1", 1, shop.location, shop.sku("B"), 2, datetime(2026, 11, 2, 9)],
        ],
        sheet="明细",
        first_sheet="汇总",
    )
    (store / "销售_1102.xlsx").write_bytes(workbook)
    os.utime(store / "销售_1102.xlsx", (time.time() - 60, time.time() - 60))
    dropped = drop_demo_store_file(shop.engine, form="gb18030", location=shop.location)
    assert dropped.parent == folder and dropped.read_bytes().startswith("盘点单号".encode("gb18030"))

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "store_import.py"))
    assert bag.import_errors == {}, bag.import_errors
    assert bag.get_dag("store_import").test().state == "success"
    assert (store / "done" / "销售_1102.xlsx").exists() and (folder / "done" / dropped.name).exists()
    # the demo counted each of A, B, C one unit above on-hand (20 -> 21); then the store sold 2 of B
    assert [shop.level(n) for n in ("A", "B", "C")] == [(21, 0), (19, 0), (21, 0)]


def test_the_docs_list_every_built_in_chinese_name_and_every_example_file():
    docs = (PROJECT_ROOT / "docs" / "store-imports.md").read_text(encoding="utf-8")
    missing = [name for names in HEADER_ALIASES.values() for name in names if name not in docs]
    assert missing == [], "docs/store-imports.md lacks these built-in header names"
    for kind in EXAMPLES:
        assert f"## {kind}\n" in docs and f"examples/store-imports/{kind}.gb18030.csv" in docs
    import re

    import yaml

    documented = re.search(r"```yaml\n(import_sources:.*?)```", docs, re.S).group(1)
    config = parse_config(hub_document(yaml.safe_load(documented)["import_sources"]))
    assert config.import_source("stores/SH01").options.encoding == "gb18030"


def test_a_queued_row_is_retried_in_the_time_zone_its_file_was_read_in(shop: Shop, tmp_path: Path):
    from sqlalchemy import select

    from channelhub.exception_ops import retry_exceptions
    from warehouse.models import locations, skus, stock_counts

    late_sku = shop.sku("LATE")  # not in the catalog yet: the row waits in the queue
    path = tmp_path / f"盘点_{shop.prefix}.xlsx"
    header = ["盘点单号", "仓库", "商品编码", "商品名称", "实盘数量", "盘点时间"]
    path.write_bytes(
        xlsx_bytes([header, ["", shop.location, late_sku, "迟到", 7, datetime(2026, 11, 2, 21, 0)]])
    )
    report = import_file(shop.engine, "counts", path, FileOptions(timezone="Asia/Shanghai"))
    assert [r.line for r in report.rejected] == [2]
    with shop.engine.connect() as conn:
        (waiting,) = [
            e["id"]
            for e in queue.list_open(conn, reason="bad_import_row")
            if e["detail"].startswith(f"{path.name}:2:")
        ]
    shop.add_sku("LATE")
    config = parse_config(hub_document([]))
    (outcome,) = retry_exceptions(shop.engine, config, [waiting], actor="test")
    assert outcome.status == "resolved", outcome.detail
    assert shop.level("LATE") == (7, 0)
    with shop.engine.connect() as conn:
        counted_at = conn.execute(
            select(stock_counts.c.counted_at)
            .join(skus, skus.c.id == stock_counts.c.sku_id)
            .join(locations, locations.c.id == stock_counts.c.location_id)
            .where(skus.c.code == late_sku)
        ).scalar_one()
    assert counted_at == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)  # 21:00 in Shanghai, as first read


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=300)
    | st.sampled_from([p.read_bytes() for p in sorted(EXAMPLES_DIR.glob("*.*"))]).flatmap(
        lambda whole: st.integers(0, len(whole)).map(lambda cut: whole[:cut])  # cut short anywhere
    ),
    encoding=st.sampled_from(["auto", "utf-8", "utf-8-sig", "gb18030"]),
    name=st.sampled_from(["sales.csv", "counts.xlsx", "shipments.csv"]),
)
def test_any_bytes_read_as_rows_or_are_refused_whole_with_a_reason(data: bytes, encoding: str, name: str):
    kind = name.split(".")[0]
    try:
        parsed = read_file(kind, data, name, FileOptions(encoding=encoding))
    except ImportFileError as err:
        assert str(err).strip() and err.reason
        return
    assert parsed.rows_read == len(parsed.rows) + len(parsed.bad)
    assert all(bad.reason.strip() and bad.line >= 1 for bad in parsed.bad)


def test_the_demo_drop_as_xlsx_is_taken_by_the_next_folder_run(shop: Shop, tmp_path: Path):
    dropped = drop_demo_store_file(shop.engine, tmp_path, form="xlsx", location=shop.location)
    assert dropped.name.startswith("盘点_demo_") and dropped.suffix == ".xlsx"
    (result,) = import_folder(shop.engine, tmp_path)  # the default wait: the file is whole, dated back
    assert result.report is not None and result.report.applied == 3, result.line()
    assert [shop.level(n) for n in ("A", "B", "C")] == [(21, 0), (21, 0), (21, 0)]
    with pytest.raises(ValueError, match="form 'csv'"):
        drop_demo_store_file(shop.engine, tmp_path, form="csv")
