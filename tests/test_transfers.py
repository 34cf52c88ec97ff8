"""Transfers between locations (调拨, issue 21 part 2): out of the source's free units into transit, into the
destination on receipt (partly, over time), discrepancies queued for a person, typed refusals of bad rows.

Every test ends with levels equal to their ledger sums and nothing oversold, at the shop's locations and in
transit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from hub_configs import write_hub_config
from sqlalchemy import Engine, func, select

from channelhub import import_folder
from channelhub.cli import main
from warehouse import catalog, stock
from warehouse import exceptions as queue
from warehouse.import_rows import RowRejected
from warehouse.models import stock_ledger
from warehouse.stock_policy import StockPolicy, channel_stock, set_bundle
from warehouse.store_imports import import_text
from warehouse.testing import Shop, make_line, make_order
from warehouse.transfers import TRANSIT_CODE, accept_excess, close_transfer, get_transfer

SENT_AT = "2026-12-01T09:00:00+08:00"
SEND_HEADER = "transfer_id,line_no,from_location,to_location,sku,quantity,sent_at\n"
RECEIPT_HEADER = "transfer_id,receipt_id,line_no,sku,received_quantity,received_at\n"


@pytest.fixture()
def shop(engine: Engine) -> Iterator[Shop]:
    shop = Shop.create(engine)
    with engine.begin() as conn:
        catalog.upsert_location(conn, store_of(shop), f"store of {shop.prefix}", "store")
    yield shop
    assert_consistent(shop)


def store_of(shop: Shop) -> str:
    return f"{shop.prefix}-store"


def assert_consistent(shop: Shop) -> None:
    with shop.engine.connect() as conn:
        for location in (shop.location, store_of(shop), TRANSIT_CODE):
            for sku in shop.skus:
                level = stock.stock_level(conn, sku, location)
                sums = conn.execute(
                    select(
                        func.coalesce(func.sum(stock_ledger.c.delta_on_hand), 0),
                        func.coalesce(func.sum(stock_ledger.c.delta_reserved), 0),
                    ).where(
                        stock_ledger.c.sku_id == catalog.sku_id_of(conn, sku),
                        stock_ledger.c.location_id == catalog.location_id_of(conn, location),
                    )
                ).one()
                assert level == tuple(sums), f"{sku}@{location}: level {level} != ledger {tuple(sums)}"
                assert 0 <= level[1] <= level[0], f"{sku}@{location}: oversold {level}"


def levels(shop: Shop, name: str) -> dict[str, tuple[int, int]]:
    with shop.engine.connect() as conn:
        return {
            where: stock.stock_level(conn, shop.sku(name), code)
            for where, code in (("wh", shop.location), ("transit", TRANSIT_CODE), ("store", store_of(shop)))
        }


def send_csv(shop: Shop, transfer: str, *lines: tuple[str, str, int], to: str | None = None) -> str:
    rows = "".join(
        f"{transfer},{no},{shop.location},{to or store_of(shop)},{shop.sku(name)},{qty},{SENT_AT}\n"
        for no, name, qty in lines
    )
    return SEND_HEADER + rows


def receipt_csv(shop: Shop, transfer: str, *lines: tuple[str, str, str, int]) -> str:
    """(receipt id, line_no or "", sku name or "", units) per row."""
    rows = "".join(
        f"{transfer},{receipt},{no},{shop.sku(name) if name else ''},{qty},2026-12-02T10:00:00Z\n"
        for receipt, no, name, qty in lines
    )
    return RECEIPT_HEADER + rows


def run(engine: Engine, kind: str, text: str):
    return import_text(engine, kind, text, file=f"{kind}.csv", source=f"{kind}.csv")


def open_discrepancies(engine: Engine, transfer: str) -> list[dict]:
    with engine.connect() as conn:
        return [
            row
            for row in queue.list_open(conn, reason="transfer_discrepancy")
            if row["external_id"] == f"transfer:{transfer}"
        ]


def tid(shop: Shop, name: str) -> str:
    return f"{shop.prefix}-{name}"


# -- send and receive ------------------------------------------------------------------------------


def test_send_moves_free_units_to_transit_and_receipts_move_them_on(shop: Shop):
    shop.add_sku("A", 10)
    shop.add_sku("B", 4)
    t = tid(shop, "T1")
    report = run(shop.engine, "transfers", send_csv(shop, t, ("1", "A", 6), ("2", "B", 4)))
    assert (report.applied, report.rejected, report.units["sent"]) == (2, [], 10)
    assert levels(shop, "A") == {"wh": (4, 0), "transit": (6, 0), "store": (0, 0)}
    assert levels(shop, "B") == {"wh": (0, 0), "transit": (4, 0), "store": (0, 0)}

    # Partial receipts over time: by line_no, then by SKU.
    first = run(
        shop.engine, "transfer_receipts", receipt_csv(shop, t, ("R1", "1", "", 2), ("R1", "2", "B", 4))
    )
    assert (first.applied, first.rejected, first.units["received"]) == (2, [], 6)
    assert levels(shop, "A") == {"wh": (4, 0), "transit": (4, 0), "store": (2, 0)}
    with shop.engine.connect() as conn:
        assert get_transfer(conn, t).status == "in_transit"
    second = run(shop.engine, "transfer_receipts", receipt_csv(shop, t, ("R2", "", "A", 4)))
    assert (second.applied, second.units["received"]) == (1, 4)
    assert levels(shop, "A") == {"wh": (4, 0), "transit": (0, 0), "store": (6, 0)}
    with shop.engine.connect() as conn:
        view = get_transfer(conn, t)
        keys = set(conn.execute(select(stock_ledger.c.idempotency_key, stock_ledger.c.kind)).all())
    assert view.status == "received"
    assert [(line.sent, line.received, line.in_transit) for line in view.lines] == [(6, 6, 0), (4, 4, 0)]
    assert {
        (f"transfer:{t}:1:out", "transfer_out"),
        (f"transfer:{t}:1:transit", "transfer_in"),
        (f"transfer:{t}:1:receipt:R1:transit", "transfer_out"),
        (f"transfer:{t}:1:receipt:R1:in", "transfer_in"),
    } <= keys
    assert open_discrepancies(shop.engine, t) == []


def test_importing_the_same_files_again_changes_nothing(shop: Shop):
    shop.add_sku("A", 5)
    t = tid(shop, "T2")
    sent, received = send_csv(shop, t, ("1", "A", 5)), receipt_csv(shop, t, ("R1", "1", "", 3))
    run(shop.engine, "transfers", sent)
    run(shop.engine, "transfer_receipts", received)
    before = levels(shop, "A")
    again = [run(shop.engine, "transfers", sent), run(shop.engine, "transfer_receipts", received)]
    assert [(r.applied, r.already_applied, r.rejected) for r in again] == [(0, 1, []), (0, 1, [])]
    assert levels(shop, "A") == before == {"wh": (0, 0), "transit": (2, 0), "store": (3, 0)}


def test_transit_counts_for_no_channel(shop: Shop):
    shop.add_sku("A", 8)

    def sellable() -> int:  # the policy counts every location: transit is left out by its kind
        with shop.engine.connect() as conn:
            stocks = channel_stock(conn, shop.channel, StockPolicy())
        return {s.sku: s.sellable for s in stocks}[shop.sku("A")]

    assert sellable() == 8
    run(shop.engine, "transfers", send_csv(shop, tid(shop, "T3"), ("1", "A", 5)))
    assert sellable() == 3  # 5 in transit: sellable nowhere
    run(shop.engine, "transfer_receipts", receipt_csv(shop, tid(shop, "T3"), ("R1", "1", "", 5)))
    assert sellable() == 8  # at the store, which counts again


# -- refusals ------------------------------------------------------------------------------------


def test_a_transfer_of_more_than_is_free_is_refused_and_reserved_units_stay(shop: Shop):
    shop.add_sku("A", 5)
    shop.ingest(make_order(tid(shop, "o1"), [make_line("l1", shop.sku("A"), 3)]))
    assert shop.level("A") == (5, 3)
    t = tid(shop, "T4")
    report = run(shop.engine, "transfers", send_csv(shop, t, ("1", "A", 3)))
    assert report.applied == 0 and len(report.rejected) == 1
    assert "only 2 are free there (on hand 5, reserved 3" in report.rejected[0].reason
    assert levels(shop, "A") == {"wh": (5, 3), "transit": (0, 0), "store": (0, 0)}
    with shop.engine.connect() as conn:
        bad = [r for r in queue.list_open(conn, reason="bad_import_row") if r["sku"] == shop.sku("A")]
    assert len(bad) == 1 and "transfers.csv:2:" in bad[0]["detail"]
    ok = run(shop.engine, "transfers", send_csv(shop, tid(shop, "T4b"), ("1", "A", 2)))
    assert ok.applied == 1 and levels(shop, "A")["wh"] == (3, 3)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("{t},1,NOWHERE,{store},{A},1,{at}", "unknown location 'NOWHERE'"),
        ("{t},1,{wh},NOWHERE,{A},1,{at}", "unknown location 'NOWHERE'"),
        ("{t},1,{wh},{wh},{A},1,{at}", "to itself"),
        ("{t},1,{wh},TRANSIT,{A},1,{at}", "is a transit location"),
        ("{t},1,{wh},{store},NO-SUCH-SKU,1,{at}", "unknown SKU 'NO-SUCH-SKU'"),
        ("{t},1,{wh},{store},{KIT},1,{at}", "is a bundle of"),
        ("{t},1,{wh},{store},{A},0,{at}", "quantity 0 is out of range"),
        ("{t},1,{wh},{store},{A},1,yesterday", "sent_at 'yesterday' is not an ISO-8601 time"),
    ],
)
def test_bad_transfer_rows_are_refused_with_a_reason(shop: Shop, row: str, reason: str):
    shop.add_sku("A", 5)
    shop.add_sku("KIT")
    with shop.engine.begin() as conn:
        set_bundle(conn, shop.sku("KIT"), [(shop.sku("A"), 2)])
    run(shop.engine, "transfers", send_csv(shop, tid(shop, "warm"), ("1", "A", 1)))  # TRANSIT exists
    values = {"t": tid(shop, "TB"), "wh": shop.location, "store": store_of(shop), "at": SENT_AT}
    values |= {"A": shop.sku("A"), "KIT": shop.sku("KIT")}
    report = run(shop.engine, "transfers", SEND_HEADER + row.format(**values) + "\n")
    assert report.applied == 0 and len(report.rejected) == 1
    assert reason in report.rejected[0].reason
    assert levels(shop, "A")["wh"] == (4, 0)


def test_receipt_refusals(shop: Shop):
    shop.add_sku("A", 5)
    shop.add_sku("B", 5)
    t = tid(shop, "T5")
    run(shop.engine, "transfers", send_csv(shop, t, ("1", "A", 2), ("2", "A", 1), ("3", "B", 1)))
    cases = [
        (receipt_csv(shop, tid(shop, "never"), ("R1", "1", "", 1)), "no transfer"),
        (receipt_csv(shop, t, ("R1", "9", "", 1)), f"transfer {t} has no line 9"),
        (receipt_csv(shop, t, ("R1", "", "A", 1)), "on lines 1, 2: name the line_no"),
        (receipt_csv(shop, t, ("R1", "3", "A", 1)), f"line 3 of transfer {t} is {shop.sku('B')}"),
    ]
    for text, reason in cases:
        report = run(shop.engine, "transfer_receipts", text)
        assert report.applied == 0 and reason in report.rejected[0].reason, report.rejected
    run(shop.engine, "transfer_receipts", receipt_csv(shop, t, ("R1", "1", "", 1)))
    changed = run(shop.engine, "transfer_receipts", receipt_csv(shop, t, ("R1", "1", "", 2)))
    assert "was imported with 1 units; this row says 2" in changed.rejected[0].reason
    moved = run(shop.engine, "transfers", send_csv(shop, t, ("1", "B", 2)))
    assert "was sent as 2 x" in moved.rejected[0].reason
    assert levels(shop, "A") == {"wh": (2, 0), "transit": (2, 0), "store": (1, 0)}


# -- discrepancies -----------------------------------------------------------------------------------


def test_over_receipt_applies_what_was_sent_and_queues_the_rest_until_accepted(shop: Shop):
    shop.add_sku("A", 10)
    t = tid(shop, "T6")
    run(shop.engine, "transfers", send_csv(shop, t, ("1", "A", 4)))
    report = run(
        shop.engine, "transfer_receipts", receipt_csv(shop, t, ("R1", "1", "", 3), ("R2", "1", "", 3))
    )
    assert (report.units["received"], report.units["over_received"]) == (4, 2)
    assert levels(shop, "A") == {"wh": (6, 0), "transit": (0, 0), "store": (4, 0)}
    [found] = open_discrepancies(shop.engine, t)
    assert found["sku"] == shop.sku("A") and "6 units" in found["detail"] and "4 sent" in found["detail"]
    with shop.engine.begin() as conn:
        assert accept_excess(conn, t, "1", "ops-lead") == 2
    assert levels(shop, "A") == {"wh": (4, 0), "transit": (0, 0), "store": (6, 0)}
    assert open_discrepancies(shop.engine, t) == []
    with shop.engine.begin() as conn, pytest.raises(RowRejected, match="no units received beyond sent"):
        accept_excess(conn, t, "1", "ops-lead")


def test_closing_short_writes_the_missing_units_off_transit_and_queues_them(shop: Shop):
    shop.add_sku("A", 10)
    t = tid(shop, "T7")
    run(shop.engine, "transfers", send_csv(shop, t, ("1", "A", 5)))
    run(shop.engine, "transfer_receipts", receipt_csv(shop, t, ("R1", "1", "", 3)))
    with shop.engine.begin() as conn:
        view = close_transfer(conn, t, "ops-lead")
    assert view.status == "closed_short" and view.lines[0].lost == 2
    assert levels(shop, "A") == {"wh": (5, 0), "transit": (0, 0), "store": (3, 0)}
    [found] = open_discrepancies(shop.engine, t)
    assert "5 units" in found["detail"] and "3 received" in found["detail"] and "2 missing" in found["detail"]
    late = run(shop.engine, "transfer_receipts", receipt_csv(shop, t, ("R2", "1", "", 2)))
    assert "was closed short" in late.rejected[0].reason
    with shop.engine.begin() as conn:
        assert close_transfer(conn, t, "ops-lead").status == "closed_short"  # closing again: no change
    assert levels(shop, "A")["transit"] == (0, 0)


# -- files and CLI --------------------------------------------------------------------------------


def test_file_names_announce_the_kinds():
    assert import_folder.kind_of("transfers_store12_20261201.csv") == "transfers"
    assert import_folder.kind_of("transfer_receipts_store12.csv") == "transfer_receipts"
    assert import_folder.kind_of("调拨单_20261201.xlsx") == "transfers"
    assert import_folder.kind_of("调拨收货_SH01.csv") == "transfer_receipts"
    assert import_folder.kind_of("调拨入库_SH01.csv") == "transfer_receipts"


def cli(*argv: str) -> int:
    """``channelhub ...`` as the command line runs it (a usage error: exit 2)."""
    return main(list(argv))


@pytest.fixture()
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    config_file, _ = write_hub_config(tmp_path, [], location="WH-MOVESTEST")
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)


def test_cli_sends_receives_closes_and_refuses(shop: Shop, cli_env, capsys: pytest.CaptureFixture):
    shop.add_sku("A", 6)
    t = tid(shop, "T8")
    base = ("--from", shop.location, "--to", store_of(shop))
    assert cli("transfer", "send", t, *base, "--line", f"{shop.sku('A')}=9") == 2
    assert "only 6 are free" in capsys.readouterr().err
    assert levels(shop, "A")["wh"] == (6, 0)  # nothing moved
    assert cli("transfer", "send", t, *base, "--line", f"{shop.sku('A')}=4") == 0
    assert cli("transfer", "send", t, *base, "--line", f"{shop.sku('A')}=4") == 0  # again: no change
    assert cli("transfer", "receive", t, "--receipt", "R1", "--line", f"{shop.sku('A')}=1") == 0
    assert cli("transfer", "receive", t, "--receipt", "R2", "--line-no", "1=1") == 0
    assert cli("transfer", "receive", t, "--receipt", "R3", "--line", "no-equals-sign") == 2
    assert cli("transfer", "receive", tid(shop, "nope"), "--receipt", "R1", "--line", "x=1") == 2
    assert "no transfer" in capsys.readouterr().err
    assert cli("transfer", "close", t) == 0
    assert cli("transfer", "list", "--id", t) == 0
    out = capsys.readouterr().out
    assert t in out and "closed_short" in out
    assert levels(shop, "A") == {"wh": (2, 0), "transit": (0, 0), "store": (2, 0)}


def test_the_demo_sends_receives_part_and_prints_the_three_levels(shop: Shop):
    from channelhub.demo_moves import demo_transfer

    shop.add_sku("A", 3)
    shop.add_sku("B", 9)
    printed: list[str] = []
    steps = demo_transfer(shop.engine, shop.location, store_of(shop), units=4, out=printed.append)
    wh, store = shop.location, store_of(shop)
    assert steps["before"][wh] == (9, 0) and steps["sent"][wh] == (5, 0)  # B: the most free units
    assert steps["sent"][TRANSIT_CODE][0] - steps["before"][TRANSIT_CODE][0] == 4
    assert steps["received"][store] == (2, 0) and steps["received"][wh] == (5, 0)
    assert steps["received"][TRANSIT_CODE][0] - steps["before"][TRANSIT_CODE][0] == 2
    assert f"4 x {shop.sku('B')} {wh} -> {store}" in printed[0]
    assert any("received 2 of 4" in line and f"{store} on_hand=2" in line for line in printed)


class _AirflowApi(BaseHTTPRequestHandler):
    """Airflow's public API as far as the stock Asset event goes: token, asset lookup, asset event."""

    events: ClassVar[list[dict]] = []

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/auth/token":
            self._answer({"access_token": "jwt-for-test"})
        elif self.path == "/api/v2/assets/events" and self.headers["Authorization"] == "Bearer jwt-for-test":
            type(self).events.append(body)
            self._answer({"id": len(type(self).events)})
        else:
            self.send_error(404)

    def do_GET(self) -> None:
        self._answer({"assets": [{"id": 7, "uri": "channelhub://warehouse/stock"}]})

    def log_message(self, *args) -> None:
        pass


def test_a_cli_transfer_tells_airflow_the_stock_changed(shop: Shop, cli_env, monkeypatch):
    """With the Airflow API connection configured, a command that moved stock posts the stock Asset event
    (every channel's stock push runs now); a refused one posts nothing."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AirflowApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _AirflowApi.events = []
    conn = {"conn_type": "http", "host": f"http://127.0.0.1:{server.server_port}", "login": "hub"}
    monkeypatch.setenv("AIRFLOW_CONN_CHANNELHUB_AIRFLOW_API", json.dumps({**conn, "password": "pw-of-test"}))
    try:
        shop.add_sku("A", 3)
        t = tid(shop, "T9")
        base = ("--from", shop.location, "--to", store_of(shop))
        assert cli("transfer", "send", t, *base, "--line", f"{shop.sku('A')}=5") == 2
        assert _AirflowApi.events == []
        assert cli("transfer", "send", t, *base, "--line", f"{shop.sku('A')}=2") == 0
        assert _AirflowApi.events == [{"asset_id": 7, "extra": {"cause": f"transfer send {t}"}}]
    finally:
        server.shutdown()
        server.server_close()
