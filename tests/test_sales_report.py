"""Sales reports (issue 21, capability 7): units, revenue, refunds, returns, sell-through, days of cover from
the warehouse, and ``channelhub report sales`` with its bad inputs. Real Postgres; each test has codes of its
own and days nobody else uses, so the session's other data never enters its figures."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select

from canonical.store_files import ReturnRow, parse_csv
from channelhub import db
from channelhub.cli import main
from channelhub.report_cli import print_sales_demo, render_table
from channelhub.report_page import LABELS, language_of, load_report_data, render_reports
from warehouse import catalog
from warehouse.models import store_sales
from warehouse.returns import receive_return
from warehouse.sales_report import (
    ReportError,
    SalesRow,
    Window,
    daily_series,
    low_stock,
    sales_report,
    top_skus,
)
from warehouse.stock_policy import set_bundle
from warehouse.store_imports import import_text
from warehouse.testing import Shop, make_line, make_order

SALE_HEADER = "receipt_id,line_no,location,sku,quantity,sold_at,unit_price,amount,currency"
DAY1 = datetime(2030, 3, 1, 10, 0, tzinfo=UTC)  # far from every other test's orders


class World:
    """A USD channel and a CNY channel shipping from one warehouse, a store, two SKUs with stock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shop = Shop.create(engine)
        self.p = self.shop.prefix
        self.store = f"{self.p}-store"
        self.cny = f"{self.p}-yz"
        with engine.begin() as conn:
            catalog.upsert_location(conn, self.store, f"store of {self.p}", "store")
            catalog.upsert_channel(conn, self.cny, "youzan", f"youzan of {self.p}", self.shop.location)
        self.mug = self.shop.add_sku("MUG", 100)
        self.tee = self.shop.add_sku("TEE", 50)
        with engine.begin() as conn:
            catalog.upsert_listing(conn, self.cny, self.mug, merchant_sku=self.mug)
            catalog.receive_stock(conn, self.mug, self.store, 20, f"receive:{self.p}:store")

    def ingest_cny(self, *orders) -> None:
        from warehouse.ingest import ingest_orders
        from warehouse.testing import landed

        ingest_orders(self.engine, self.cny, [landed(o) for o in orders], [])

    def pos(self, *lines: str) -> None:
        text = "\n".join([SALE_HEADER, *lines]) + "\n"
        report = import_text(self.engine, "sales", text, file="sales.csv", source=f"sales-{self.p}.csv")
        assert report.ok, report.rejected

    def report(self, by: str, start: datetime, end: datetime) -> dict[str, SalesRow]:
        with self.engine.connect() as conn:
            rows = sales_report(conn, by, Window(start, end)).rows
        return {row.key: row for row in rows}


@pytest.fixture()
def world(engine: Engine) -> World:
    return World(engine)


def test_channel_and_store_sales_by_channel_with_refunds_and_money_per_currency(world: World) -> None:
    w = world
    w.shop.ingest(
        make_order(f"{w.p}-1", [make_line("1", w.mug, 3, unit_price="10.00", refunded=1)], created_at=DAY1),
        make_order(f"{w.p}-2", [make_line("1", w.tee, 2, unit_price="25.50")], created_at=DAY1),
        # cancelled and voided orders are no sales
        make_order(f"{w.p}-3", [make_line("1", w.tee, 5)], created_at=DAY1, cancelled=True),
        make_order(f"{w.p}-4", [make_line("1", w.tee, 7)], created_at=DAY1, payment_status="voided"),
    )
    w.ingest_cny(
        make_order(
            f"{w.p}-c1",
            [make_line("1", w.mug, 4, unit_price="88.00")],
            created_at=DAY1,
            currency="CNY",
            platform="youzan",
        )
    )
    w.pos(
        f"R1,1,{w.store},{w.mug},2,2030-03-01T15:00:00+08:00,12.00,,",  # priced by unit, default currency
        f"R1,2,{w.store},{w.mug},1,2030-03-01T15:00:00+08:00,,9.90,CNY",  # priced by amount
        f"R2,1,{w.store},{w.mug},3,2030-03-01T16:00:00+08:00,,,",  # no price
        f"R3,1,{w.store},{w.mug},-1,2030-03-01T17:00:00+08:00,12.00,,",  # a return over the counter
    )
    rows = w.report("channel", DAY1 - timedelta(hours=12), DAY1 + timedelta(days=1))

    usd = rows[w.shop.channel]
    assert (usd.units_sold, usd.refunded_units, usd.returned_units) == (5, 1, 0)
    assert usd.revenue == {"USD": Decimal("81.00")}  # 3 x 10 + 2 x 25.50
    assert usd.refunded_amount == {"USD": Decimal("10.00")}
    assert usd.net_revenue == {"USD": Decimal("71.00")}
    assert rows[w.cny].revenue == {"CNY": Decimal("352.00")} and rows[w.cny].units_sold == 4
    pos = rows["pos"]
    assert (pos.units_sold, pos.unpriced_units, pos.refunded_units, pos.returned_units) == (6, 3, 1, 1)
    assert pos.revenue == {"CNY": Decimal("33.90")} and pos.refunded_amount == {"CNY": Decimal("12.00")}
    assert pos.label == "POS (stores)"

    # the same file again changes nothing: one store_sales row per receipt line
    w.pos(f"R1,1,{w.store},{w.mug},2,2030-03-01T15:00:00+08:00,12.00,,")
    assert w.report("channel", DAY1 - timedelta(hours=12), DAY1 + timedelta(days=1))["pos"] == pos


def test_window_is_from_inclusive_to_exclusive_and_grouped_by_day(world: World) -> None:
    w = world
    start = datetime(2030, 4, 1, tzinfo=UTC)
    w.shop.ingest(
        make_order(f"{w.p}-a", [make_line("1", w.mug, 1)], created_at=start),  # first instant: in
        make_order(f"{w.p}-b", [make_line("1", w.mug, 2)], created_at=start + timedelta(days=1, hours=23)),
        make_order(f"{w.p}-c", [make_line("1", w.mug, 4)], created_at=start + timedelta(days=2)),  # end: out
        make_order(f"{w.p}-d", [make_line("1", w.mug, 8)], created_at=start - timedelta(microseconds=1)),
    )
    w.pos(f"R9,1,{w.store},{w.mug},3,2030-04-02T06:00:00Z,1.00,,USD")
    rows = w.report("day", start, start + timedelta(days=2))
    assert {k: r.units_sold for k, r in rows.items()} == {"2030-04-01": 1, "2030-04-02": 5}
    assert rows["2030-04-02"].revenue == {"USD": Decimal("23.00")}  # 2 x 10 + 3 x 1
    with w.engine.connect() as conn:
        shanghai = sales_report(conn, "day", Window(start, start + timedelta(days=2)), tz="Asia/Shanghai")
    # 2030-04-02 23:00 UTC is the 3rd in Shanghai
    assert {r.key: r.units_sold for r in shanghai.rows} == {"2030-04-01": 1, "2030-04-02": 3, "2030-04-03": 2}
    with w.engine.connect() as conn, pytest.raises(ReportError, match="before it starts"):
        sales_report(conn, "day", Window(start, start))
    with w.engine.connect() as conn, pytest.raises(ReportError, match="unknown grouping"):
        sales_report(conn, "week", Window(start, start + timedelta(days=1)))


def test_by_location_and_sku_with_sell_through_and_returns(world: World) -> None:
    w = world
    now = datetime.now(UTC)
    w.shop.ingest(
        make_order(
            f"{w.p}-s",
            [make_line("1", w.mug, 10, shipped=10, refunded=2, restocked=2), make_line("2", w.tee, 5)],
            created_at=now - timedelta(hours=1),
            fulfillment_status="partial",
        )
    )
    # The 2 refunded mugs come back to the warehouse (only a physical return restocks: warehouse.returns).
    back = ReturnRow(
        line=0,
        raw={},
        return_id=f"{w.p}-RT",
        line_no="1",
        location=w.shop.location,
        sku=w.mug,
        quantity=2,
        reason="unwanted",
        returned_at=now - timedelta(minutes=30),
        channel=w.shop.channel,
        order_id=f"{w.p}-s",
        order_line_id="1",
        exchange_sku=None,
        exchange_quantity=None,
    )
    with w.engine.begin() as conn:
        receive_return(conn, back, source="test")
    w.pos(f"P1,1,{w.store},{w.mug},4,{(now - timedelta(hours=1)).isoformat()},5.00,,")
    window = (now - timedelta(days=1), now + timedelta(minutes=1))

    by_location = w.report("location", *window)
    wh, store = by_location[w.shop.location], by_location[w.store]
    # warehouse: 100 mugs - 10 shipped + 2 back = 92, and 50 tees (5 reserved, still on hand)
    assert (wh.units_sold, wh.refunded_units, wh.returned_units, wh.on_hand) == (15, 2, 2, 142)
    assert wh.sell_through == Decimal("0.0955")  # 15 / (15 + 142)
    assert (store.units_sold, store.on_hand, store.sell_through) == (4, 16, Decimal("0.2000"))
    assert store.revenue == {"CNY": Decimal("20.00")}

    by_sku = w.report("sku", *window)
    mug, tee = by_sku[w.mug], by_sku[w.tee]
    assert (mug.units_sold, mug.returned_units, mug.on_hand) == (14, 2, 108)  # 92 + 16, store and warehouse
    assert mug.sell_through == Decimal("0.1148")  # 14 / 122
    assert mug.revenue == {"CNY": Decimal("20.00"), "USD": Decimal("100.00")}
    assert (tee.units_sold, tee.on_hand, tee.sell_through) == (5, 50, Decimal("0.0909"))
    assert mug.label == "product MUG"
    by_channel = w.report("channel", *window)
    assert by_channel[w.shop.channel].returned_units == 2  # the order's restock counts under its channel
    assert by_channel[w.shop.channel].sell_through is None  # only for sku and location

    with w.engine.connect() as conn:
        top = top_skus(conn, Window(*window), limit=50)
        stores = daily_series(conn, "store", Window(*window))
        per_channel = daily_series(conn, "channel", Window(*window))
    assert [r.key for r in top if r.key in (w.mug, w.tee)] == [w.mug, w.tee]
    assert sum(p.units_sold for p in stores if p.key == w.store) == 4
    assert sum(p.units_sold for p in per_channel if p.key == w.shop.channel) == 15


def test_days_of_cover_lists_selling_skus_below_the_threshold(world: World) -> None:
    w = world
    now = datetime.now(UTC)
    slow = w.shop.add_sku("SLOW", 1000)
    bundle = w.shop.add_sku("SET")
    with w.engine.begin() as conn:
        set_bundle(conn, bundle, [(w.tee, 1)])
    w.shop.ingest(
        # 28 mugs in 14 days: 2 a day; 100 - 28 reserved + 20 at the store = 92 free -> 46 days
        make_order(f"{w.p}-m", [make_line("1", w.mug, 28)], created_at=now - timedelta(days=3)),
        # 42 tees + 7 through the bundle: 3 a day from the tee's own lines; 50 - 49 = 1 free -> 0.3 days
        make_order(f"{w.p}-t", [make_line("1", w.tee, 42), make_line("2", bundle, 7)], created_at=now),
        make_order(f"{w.p}-x", [make_line("1", slow, 14)], created_at=now - timedelta(days=20)),  # too old
    )
    with w.engine.connect() as conn:
        low = {item.sku: item for item in low_stock(conn, Decimal(50), now=now + timedelta(minutes=1))}
        strict = {item.sku for item in low_stock(conn, Decimal(10), now=now + timedelta(minutes=1))}
    assert low[w.tee].free_units == 1 and low[w.tee].average_daily == Decimal("3.00")
    assert low[w.tee].days_of_cover == Decimal("0.3")
    assert low[w.mug].days_of_cover == Decimal("46.0") and low[w.mug].units_sold == 28
    assert slow not in low and bundle not in low  # no sales in 14 days; a bundle has no stock of its own
    assert w.tee in strict and w.mug not in strict


def test_pos_price_columns_are_optional_and_bad_prices_are_refused_rows(world: World) -> None:
    w = world
    parsed = parse_csv(
        "sales",
        "receipt_id,line_no,location,sku,quantity,sold_at,unit_price,amount,currency\n"
        "A,1,S,X,1,2030-01-01T00:00:00Z,abc,,\n"
        "A,2,S,X,1,2030-01-01T00:00:00Z,-1,,\n"
        "A,3,S,X,1,2030-01-01T00:00:00Z,,-5,\n"
        "A,4,S,X,1,2030-01-01T00:00:00Z,1,,yuan\n"
        'A,5,S,X,1,2030-01-01T00:00:00Z,"12,50",,\n'
        "A,6,S,X,-2,2030-01-01T00:00:00Z,,-9.00,usd\n",
    )
    reasons = [bad.reason for bad in parsed.bad]
    assert len(reasons) == 5 and "not a number" in reasons[0] and "negative" in reasons[1]
    assert "negative for a sale" in reasons[2] and "ISO 4217" in reasons[3] and "not a number" in reasons[4]
    (ret,) = parsed.rows
    assert (ret.quantity, ret.line_amount, ret.currency) == (-2, Decimal("9.00"), "USD")
    # the file of before (no price columns) still imports: units without revenue
    text = (
        f"receipt_id,line_no,location,sku,quantity,sold_at\nOLD,1,{w.store},{w.mug},1,2030-05-01T00:00:00Z\n"
    )
    assert import_text(w.engine, "sales", text, file="old.csv", source="old.csv").ok
    with w.engine.connect() as conn:
        kept = conn.execute(
            select(store_sales).where(store_sales.c.idempotency_key == f"pos:{w.store}:OLD:1")
        ).one()
    assert (kept.quantity, kept.unit_price, kept.amount, kept.currency) == (1, None, None, None)


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture()
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse refusing an argument
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_formats_and_bad_inputs(world: World, cli_env: None, capsys, tmp_path) -> None:
    w = world
    w.shop.ingest(make_order(f"{w.p}-q", [make_line("1", w.mug, 3, unit_price="2.50")], created_at=DAY1))
    days = ("--from", "2030-03-01", "--to", "2030-03-02")

    code, out, _ = run(capsys, "report", "sales", "--by", "channel", *days)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith(w.shop.channel))
    assert "| 3 " in line and "7.50 USD" in line
    assert "2030-03-01 00:00 up to 2030-03-02 00:00 (UTC, end excluded)" in out

    code, out, _ = run(capsys, "report", "sales", "--by", "sku", *days, "--format", "csv")
    assert code == 0
    records = {r["sku"]: r for r in csv.DictReader(io.StringIO(out))}
    assert records[w.mug]["units_sold"] == "3" and records[w.mug]["revenue_USD"] == "7.50"
    assert records[w.mug]["on_hand"] == "120"  # warehouse and store

    target = tmp_path / "sales.xlsx"
    code, _, err = run(
        capsys, "report", "sales", "--by", "location", *days, "--format", "xlsx", "--output", str(target)
    )
    assert code == 0 and "written to" in err
    sheet = load_workbook(target).active
    header = [cell.value for cell in sheet[1]]
    found = [[c.value for c in row] for row in sheet.iter_rows(min_row=2) if row[0].value == w.shop.location]
    assert found and found[0][header.index("units_sold")] == 3

    for args, message in [
        (("--by", "week"), "invalid choice: 'week'"),
        (("--from", "2030-02-30"), "is not a date"),
        (("--from", "yesterday"), "is not a date"),
        (("--from", "2030-03-05", "--to", "2030-03-01"), "is not before --to"),
        (("--from", "2030-03-01", "--to", "2030-03-01"), "is not before --to"),
        (("--format", "xlsx"), "--output"),
        (("--format", "pdf"), "invalid choice: 'pdf'"),
        (("--tz", "Mars/Olympus"), "unknown time zone"),
    ]:
        code, out, err = run(capsys, "report", "sales", *args)
        assert code == 2, args
        assert message in err, (args, err)
        assert out == ""


def test_summary_still_works_and_the_demo_prints_tables(world: World, cli_env: None, capsys) -> None:
    w = world
    w.shop.ingest(make_order(f"{w.p}-n", [make_line("1", w.mug, 2)], created_at=datetime.now(UTC)))
    code, out, _ = run(capsys, "summary")
    assert code == 0 and w.shop.channel in out
    print_sales_demo(w.engine)
    out = capsys.readouterr().out
    assert "sales by channel" in out and "sales by location" in out
    assert any(line.startswith(w.shop.channel) and "| 2 " in line for line in out.splitlines())
    with w.engine.connect() as conn:
        empty = sales_report(conn, "channel", Window.of_days(date(1999, 1, 1), date(1999, 1, 2)))
    assert "(no sales in this window)" in render_table(empty)


def test_default_window_is_the_last_thirty_days_today_included() -> None:
    window = Window.last_days(today=date(2026, 12, 7))
    assert window.start == datetime(2026, 11, 8, tzinfo=UTC) and window.end == datetime(
        2026, 12, 8, tzinfo=UTC
    )


# -- the Reports tab's rendering (the browser test in test_airflow_ui.py drives it through Airflow) --------


def test_the_page_follows_the_browsers_language() -> None:
    assert language_of("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert language_of("zh-Hant-TW") == "zh"
    assert language_of("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert language_of("en;q=0.5,zh;q=0.9") == "zh"  # by quality, not by position
    assert language_of("fr-FR") == "en" and language_of(None) == "en" and language_of("") == "en"
    assert language_of("zh-CN", "en") == "en" and language_of("en", "zh") == "zh"
    assert set(LABELS) and all(len(pair) == 2 and all(pair) for pair in LABELS.values())


def test_reports_render_charts_as_inline_svg_in_both_languages(fresh_database_url: str) -> None:
    # The page's figures are hub-wide (top SKUs, low stock): a warehouse of its own, whatever others sold.
    engine = db.engine_for(fresh_database_url)
    try:
        _render_both_languages(World(engine))
    finally:
        engine.dispose()


def _render_both_languages(w: World) -> None:
    now = datetime.now(UTC)
    w.shop.ingest(make_order(f"{w.p}-r", [make_line("1", w.tee, 47)], created_at=now - timedelta(days=1)))
    w.pos(f"V1,1,{w.store},{w.mug},2,{now.isoformat()},3.00,,")
    with w.engine.connect() as conn:
        data = load_report_data(conn, 30, now=now + timedelta(minutes=1))
    english, chinese = render_reports(data, "en", 30), render_reports(data, "zh", 30)
    for html in (english, chinese):
        svgs = re.findall(r"<svg .*?</svg>", html, flags=re.S)
        assert len(svgs) == 3
        for svg in svgs:
            ElementTree.fromstring(svg)  # well-formed, no script, no external reference
            assert "<script" not in svg and "href" not in svg
        assert f'data-series="{w.shop.channel}"' in html and f'data-series="{w.store}"' in html
        assert f'data-sku="{w.tee}" data-units="47"' in html
        assert f'<tr data-sku="{w.tee}" data-cover="0.9">' in html  # 3 free / (47 / 14 a day)
    assert "Units sold per day by channel" in english and "各渠道每日销量" not in english
    assert "各渠道每日销量" in chinese and "库存预警：可售天数" in chinese and "Units sold" not in chinese


def test_the_migration_copies_pos_lines_already_in_the_ledger(fresh_database_url: str) -> None:
    """POS lines imported before ``store_sales`` existed are only ledger rows: the migration copies them (no
    price, the ledger's time), leaving out bundle lines (the ledger holds only their components)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from channelhub.db import PROJECT_ROOT, normalise_url

    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "warehouse" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", normalise_url(fresh_database_url).replace("%", "%%"))
    command.downgrade(cfg, "0011_store_side_kinds")
    engine = create_engine(normalise_url(fresh_database_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO locations (id, code, name, kind) VALUES (1, 'S1', 'store', 'store')")
            )
            conn.execute(text("INSERT INTO skus (id, code, title) VALUES (1, 'A', 'a'), (2, 'B', 'b')"))
            conn.execute(
                text(
                    "INSERT INTO stock_ledger (idempotency_key, sku_id, location_id, kind, delta_on_hand) "
                    "VALUES "
                    "('receive:x', 1, 1, 'receive', 10), ('pos:S1:R1:1', 1, 1, 'deduct', -3), "
                    "('pos:S1:R2:1', 1, 1, 'restock', 1), ('pos:S1:R3:1@B', 2, 1, 'deduct', -2)"
                )
            )
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            copied = conn.execute(
                text("SELECT idempotency_key, quantity, amount FROM store_sales ORDER BY idempotency_key")
            ).all()
        assert [tuple(row) for row in copied] == [("pos:S1:R1:1", 3, None), ("pos:S1:R2:1", -1, None)]
    finally:
        engine.dispose()
