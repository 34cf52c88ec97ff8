"""Purchase receipts against expected deliveries (采购入库, issue 21 part 4): received units go on hand up to
what was expected, units beyond it wait for a person's yes, a delivery closed short is queued, and a receipt
against no expected delivery (or of a SKU not on it) is a typed refusal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_configs import write_hub_config
from sqlalchemy import Engine, func, select

from channelhub import import_folder
from channelhub.cli import main
from warehouse import catalog, stock
from warehouse import exceptions as queue
from warehouse.import_rows import RowRejected
from warehouse.models import stock_ledger
from warehouse.purchase_receipts import close_delivery, decide_excess, get_delivery
from warehouse.stock_policy import set_bundle
from warehouse.store_imports import import_text
from warehouse.testing import Shop

EXPECT_HEADER = "po_id,supplier,location,sku,quantity,expected_at\n"
RECEIPT_HEADER = "receipt_id,po_id,sku,received_quantity,received_at\n"


@pytest.fixture()
def shop(engine: Engine) -> Iterator[Shop]:
    shop = Shop.create(engine)
    yield shop
    with engine.connect() as conn:  # levels equal their ledger sums, nothing oversold
        for sku in shop.skus:
            level = stock.stock_level(conn, sku, shop.location)
            sums = conn.execute(
                select(
                    func.coalesce(func.sum(stock_ledger.c.delta_on_hand), 0),
                    func.coalesce(func.sum(stock_ledger.c.delta_reserved), 0),
                ).where(
                    stock_ledger.c.sku_id == catalog.sku_id_of(conn, sku),
                    stock_ledger.c.location_id == catalog.location_id_of(conn, shop.location),
                )
            ).one()
            assert level == tuple(sums) and 0 <= level[1] <= level[0], f"{sku}: {level} vs {tuple(sums)}"


def run(engine: Engine, kind: str, text: str):
    return import_text(engine, kind, text, file=f"{kind}.csv", source=f"{kind}.csv")


def po(shop: Shop, name: str) -> str:
    return f"{shop.prefix}-{name}"


def expect(shop: Shop, po_id: str, *lines: tuple[str, int], supplier: str = "Acme 供应商") -> str:
    return EXPECT_HEADER + "".join(
        f"{po_id},{supplier},{shop.location},{shop.sku(name)},{qty},2026-12-05T00:00:00+08:00\n"
        for name, qty in lines
    )


def receipts(shop: Shop, po_id: str, *lines: tuple[str, str, int]) -> str:
    """(receipt id, sku name, units) per row."""
    return RECEIPT_HEADER + "".join(
        f"{receipt},{po_id},{shop.sku(name)},{qty},2026-12-05T11:00:00+08:00\n"
        for receipt, name, qty in lines
    )


def discrepancies(engine: Engine, po_id: str) -> list[dict]:
    with engine.connect() as conn:
        return [
            row
            for row in queue.list_open(conn, reason="receipt_discrepancy")
            if row["external_id"] == f"po:{po_id}"
        ]


def test_receipts_raise_on_hand_in_parts_and_complete_the_delivery(shop: Shop):
    shop.add_sku("A", 2)
    shop.add_sku("B")
    p = po(shop, "PO1")
    report = run(shop.engine, "expected_deliveries", expect(shop, p, ("A", 10), ("B", 5)))
    assert (report.applied, report.rejected, report.units["expected"]) == (2, [], 15)
    assert shop.level("A") == (2, 0)  # expected is not on hand

    first = run(shop.engine, "receipts", receipts(shop, p, ("GRN1", "A", 6), ("GRN1", "B", 5)))
    assert (first.applied, first.rejected, first.units["received"]) == (2, [], 11)
    assert (shop.level("A"), shop.level("B")) == ((8, 0), (5, 0))
    with shop.engine.connect() as conn:
        assert get_delivery(conn, p).status == "open"
    second = run(shop.engine, "receipts", receipts(shop, p, ("GRN2", "A", 4)))
    assert second.units["received"] == 4 and shop.level("A") == (12, 0)
    with shop.engine.connect() as conn:
        view = get_delivery(conn, p)
        keys = set(conn.execute(select(stock_ledger.c.idempotency_key, stock_ledger.c.kind)).scalars())
    assert view.status == "received"
    assert [(line.expected, line.received, line.on_hand) for line in view.lines] == [(10, 10, 10), (5, 5, 5)]
    assert {f"receipt:{p}:GRN1:{shop.sku('A')}", f"receipt:{p}:GRN2:{shop.sku('A')}"} <= keys
    assert discrepancies(shop.engine, p) == []


def test_importing_the_same_files_again_changes_nothing(shop: Shop):
    shop.add_sku("A")
    p = po(shop, "PO2")
    files = [
        ("expected_deliveries", expect(shop, p, ("A", 5))),
        ("receipts", receipts(shop, p, ("G1", "A", 3))),
    ]
    for kind, text in files:
        run(shop.engine, kind, text)
    again = [run(shop.engine, kind, text) for kind, text in files]
    assert [(r.applied, r.already_applied, r.rejected) for r in again] == [(0, 1, []), (0, 1, [])]
    assert shop.level("A") == (3, 0)


def test_over_receipt_puts_the_expected_part_on_hand_and_holds_the_rest_for_a_person(shop: Shop):
    shop.add_sku("A")
    p = po(shop, "PO3")
    run(shop.engine, "expected_deliveries", expect(shop, p, ("A", 5)))
    report = run(shop.engine, "receipts", receipts(shop, p, ("G1", "A", 4), ("G2", "A", 3)))
    assert (report.units["received"], report.units["held_over_receipt"]) == (5, 2)
    assert shop.level("A") == (5, 0)  # nobody ordered the 2 beyond: not sellable without a yes
    [found] = discrepancies(shop.engine, p)
    assert (
        "7 units" in found["detail"] and "5 expected" in found["detail"] and "the 2 beyond" in found["detail"]
    )
    with shop.engine.begin() as conn:
        assert decide_excess(conn, p, shop.sku("A"), "ops-lead", accept=True) == 2
    assert shop.level("A") == (7, 0)
    assert discrepancies(shop.engine, p) == []
    with shop.engine.begin() as conn, pytest.raises(RowRejected, match=r"no units of .* beyond expected"):
        decide_excess(conn, p, shop.sku("A"), "ops-lead", accept=True)
    # More beyond later, rejected this time (sent back): never on hand.
    run(shop.engine, "receipts", receipts(shop, p, ("G3", "A", 1)))
    with shop.engine.begin() as conn:
        assert decide_excess(conn, p, shop.sku("A"), "ops-lead", accept=False) == 1
        line = get_delivery(conn, p).lines[0]
    assert (line.received, line.accepted_excess, line.rejected_excess, line.on_hand) == (8, 2, 1, 7)
    assert shop.level("A") == (7, 0)


def test_closing_short_queues_the_missing_units_and_refuses_later_receipts(shop: Shop):
    shop.add_sku("A")
    shop.add_sku("B")
    p = po(shop, "PO4")
    run(shop.engine, "expected_deliveries", expect(shop, p, ("A", 5), ("B", 2)))
    run(shop.engine, "receipts", receipts(shop, p, ("G1", "A", 3), ("G1", "B", 2)))
    with shop.engine.begin() as conn:
        view = close_delivery(conn, p, "ops-lead")
    assert view.status == "closed_short"
    [found] = discrepancies(shop.engine, p)
    assert found["sku"] == shop.sku("A") and "3 units" in found["detail"] and "2 short" in found["detail"]
    late = run(shop.engine, "receipts", receipts(shop, p, ("G2", "A", 2)))
    assert "was closed short" in late.rejected[0].reason
    assert (shop.level("A"), shop.level("B")) == ((3, 0), (2, 0))


def test_receipt_refusals(shop: Shop):
    shop.add_sku("A")
    shop.add_sku("B")
    p = po(shop, "PO5")
    run(shop.engine, "expected_deliveries", expect(shop, p, ("A", 5)))
    cases = [
        (receipts(shop, po(shop, "never"), ("G1", "A", 1)), "no expected delivery"),
        (receipts(shop, p, ("G1", "B", 1)), f"{shop.sku('B')} is not on purchase order {p}"),
        (RECEIPT_HEADER + f"G1,{p},NO-SUCH-SKU,1,2026-12-05\n", "unknown SKU 'NO-SUCH-SKU'"),
        (RECEIPT_HEADER + f"G1,{p},{shop.sku('A')},-1,2026-12-05\n", "received_quantity -1 is out of range"),
    ]
    for text, reason in cases:
        report = run(shop.engine, "receipts", text)
        assert report.applied == 0 and reason in report.rejected[0].reason, report.rejected
    with shop.engine.connect() as conn:
        queued = [r["detail"] for r in queue.list_open(conn, reason="bad_import_row")]
    assert any(f"no expected delivery {po(shop, 'never')}" in d for d in queued)
    run(shop.engine, "receipts", receipts(shop, p, ("G1", "A", 2)))
    changed = run(shop.engine, "receipts", receipts(shop, p, ("G1", "A", 3)))
    assert "was imported with 2 units; this row says 3" in changed.rejected[0].reason
    assert shop.level("A") == (2, 0)


def test_expected_delivery_refusals(shop: Shop):
    shop.add_sku("A")
    shop.add_sku("KIT")
    with shop.engine.begin() as conn:
        set_bundle(conn, shop.sku("KIT"), [(shop.sku("A"), 2)])
    p = po(shop, "PO6")
    run(shop.engine, "expected_deliveries", expect(shop, p, ("A", 5)))
    cases = [
        (expect(shop, p, ("A", 6)), "already expects 5"),
        (expect(shop, po(shop, "PO7"), ("KIT", 1)), "is a bundle of"),
        (expect(shop, p, ("A", 5), supplier="Other"), "is from Acme"),
        (EXPECT_HEADER + f"{p},Acme,NOWHERE,{shop.sku('A')},1,2026-12-05\n", "unknown location 'NOWHERE'"),
    ]
    for text, reason in cases:
        report = run(shop.engine, "expected_deliveries", text)
        assert report.applied == 0 and reason in report.rejected[0].reason, report.rejected


def test_file_names_announce_the_kinds():
    assert import_folder.kind_of("expected_deliveries_20261205.csv") == "expected_deliveries"
    assert import_folder.kind_of("receipts_wh_20261205.csv") == "receipts"
    assert import_folder.kind_of("采购单_20261205.xlsx") == "expected_deliveries"
    assert import_folder.kind_of("采购入库_WH.csv") == "receipts"
    assert import_folder.kind_of("采购退货_WH.csv") is None  # a purchase return: no such kind


@pytest.fixture()
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    config_file, _ = write_hub_config(tmp_path, [], location="WH-MOVESTEST")
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)


def cli(*argv: str) -> int:
    """``channelhub ...`` as the command line runs it (a usage error: exit 2)."""
    return main(list(argv))


def test_cli_expect_receive_accept_close(shop: Shop, cli_env, capsys: pytest.CaptureFixture):
    a = shop.add_sku("A")
    p = po(shop, "PO8")
    assert cli("receipt", "receive", p, "--receipt", "G1", "--line", f"{a}=1") == 2
    assert "no expected delivery" in capsys.readouterr().err
    assert (
        cli("receipt", "expect", p, "--supplier", "Acme", "--location", shop.location, "--line", f"{a}=4")
        == 0
    )
    assert cli("receipt", "receive", p, "--receipt", "G1", "--line", f"{a}=6") == 0
    assert "2 units beyond what was expected are held" in capsys.readouterr().err
    assert shop.level("A") == (4, 0)
    assert cli("receipt", "accept", p, "--sku", a, "--by", "ops-lead") == 0
    assert shop.level("A") == (6, 0)
    assert cli("receipt", "close", p) == 0
    assert cli("receipt", "list", "--id", p) == 0
    out = capsys.readouterr().out
    assert p in out and "received" in out and "accepted_excess=2" in out


def test_a_receipt_refused_for_want_of_its_delivery_applies_once_the_delivery_is_imported(shop: Shop):
    shop.add_sku("A")
    p = po(shop, "PO9")
    early = receipts(shop, p, ("G1", "A", 3))
    assert "no expected delivery" in run(shop.engine, "receipts", early).rejected[0].reason
    run(shop.engine, "expected_deliveries", expect(shop, p, ("A", 3)))
    later = run(shop.engine, "receipts", early)
    assert (later.applied, later.rejected) == (1, []) and shop.level("A") == (3, 0)
    with shop.engine.connect() as conn:
        still = [r for r in queue.list_open(conn, reason="bad_import_row") if p in r["detail"]]
    assert still == []  # the queued row cleared itself when it applied


def test_retrying_a_queued_receipt_row_applies_it_once_its_delivery_exists(shop: Shop):
    """``channelhub exceptions retry`` (and the periodic re-test) re-imports a kept row of the new kinds."""
    from hub_configs import hub_config

    from channelhub.exception_ops import retry_exceptions

    shop.add_sku("A")
    p = po(shop, "PO10")
    run(shop.engine, "receipts", receipts(shop, p, ("G1", "A", 2)))
    with shop.engine.connect() as conn:
        [queued] = [r for r in queue.list_open(conn, reason="bad_import_row") if p in r["detail"]]
    config = hub_config([], location=shop.location)
    [still] = retry_exceptions(shop.engine, config, [queued["id"]], actor="ops-lead")
    assert still.status == "still_open" and "no expected delivery" in still.detail
    run(shop.engine, "expected_deliveries", expect(shop, p, ("A", 2)))
    [done] = retry_exceptions(shop.engine, config, [queued["id"]], actor="ops-lead")
    assert done.status == "resolved" and shop.level("A") == (2, 0)
