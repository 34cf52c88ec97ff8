"""Returns and exchanges (退换货, issue 21 capability 3): a return received at any store or warehouse restocks
there (sellable) or at its damaged location (damaged), by reason code; only physical returns restock (a
channel refund, even one the platform calls restocked, does not); a return links to the channel's refund;
an exchange reserves its replacement; bad returns are refused with a typed reason; every line is idempotent.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hub_configs import write_hub_config
from sqlalchemy import Engine, select
from test_store_imports import assert_consistent

from canonical.store_files import ReturnRow, parse_csv
from channelhub import cli
from warehouse import catalog, stock
from warehouse import exceptions as queue
from warehouse.health import channel_health
from warehouse.models import locations, order_lines, orders, stock_ledger
from warehouse.return_refunds import NOT_REFUNDED, list_returns, queue_unrefunded_returns
from warehouse.returns import (
    EXCHANGE_CHANNEL,
    ReturnRefused,
    cancel_exchange,
    receive_return,
    ship_exchange,
)
from warehouse.stock_policy import set_bundle
from warehouse.store_imports import import_file, import_text
from warehouse.testing import T0, Shop, make_line, make_order

RETURN_HEADER = [
    *("return_id", "line_no", "location", "sku", "quantity", "reason", "returned_at"),
    *("channel", "order_id", "order_line_id", "exchange_sku", "exchange_quantity"),
]


@pytest.fixture()
def shop(engine: Engine) -> Iterator[Shop]:
    shop = Shop.create(engine)
    with engine.begin() as conn:
        catalog.upsert_location(conn, store_of(shop), f"store of {shop.prefix}", "store")
    yield shop
    assert_consistent(shop, store_of(shop), f"{store_of(shop)}-DAMAGED")


def store_of(shop: Shop) -> str:
    return f"{shop.prefix}-store"


def level(shop: Shop, name: str, location: str) -> tuple[int, int]:
    with shop.engine.connect() as conn:
        return stock.stock_level(conn, shop.sku(name), location)


def ret(shop: Shop, return_id: str, sku: str, quantity: int, reason: str = "unwanted", **kw) -> ReturnRow:
    """A return line received at the shop's store: a walk-in unless ``order`` is given."""
    order = kw.get("order")
    exchange_sku = kw.get("exchange_sku")
    return ReturnRow(
        line=0,
        raw={},
        return_id=return_id,
        line_no=kw.get("line_no", "1"),
        location=kw.get("location", store_of(shop)),
        sku=sku,
        quantity=quantity,
        reason=reason,
        returned_at=kw.get("at", T0 + timedelta(days=3)),
        channel=kw.get("channel", shop.channel) if order else None,
        order_id=order,
        order_line_id=kw.get("line"),
        exchange_sku=exchange_sku,
        exchange_quantity=kw.get("exchange_quantity", quantity if exchange_sku else None),
    )


def receive(shop: Shop, row: ReturnRow) -> bool:
    with shop.engine.begin() as conn:
        return receive_return(conn, row, source="test")


def refused(shop: Shop, row: ReturnRow) -> ReturnRefused:
    with pytest.raises(ReturnRefused) as caught:
        receive(shop, row)
    return caught.value


def shipped_order(shop: Shop, external_id: str, quantity: int = 2, shipped: int = 2, **line) -> None:
    """An order of ``quantity`` A (10 on hand at the warehouse), ``shipped`` of them shipped."""
    if shop.sku("A") not in shop.skus:
        shop.add_sku("A", 10)
    shop.ingest(make_order(external_id, [make_line("1", shop.sku("A"), quantity, shipped=shipped, **line)]))


def version(shop: Shop, external_id: str, minutes: int, quantity: int = 2, **line) -> None:
    """A later version of the order from the channel (refunds, the platform's restock claims)."""
    shop.ingest(
        make_order(
            external_id,
            [make_line("1", shop.sku("A"), quantity, **line)],
            updated_at=T0 + timedelta(minutes=minutes),
            payment_status="partially_refunded",
        )
    )


def line_of(shop: Shop, external_id: str) -> tuple[int, int, int]:
    """(returned, reserved, restocked by ingest) of line 1 of the order."""
    with shop.engine.connect() as conn:
        return conn.execute(
            select(
                order_lines.c.returned_quantity,
                order_lines.c.reserved_quantity,
                order_lines.c.restocked_applied,
            )
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(orders.c.external_id == external_id, order_lines.c.external_line_id == "1")
        ).one()


def status_of(shop: Shop, return_id: str, days: int | None = None) -> list[tuple[str, bool]]:
    with shop.engine.connect() as conn:
        rows = list_returns(
            conn, location=store_of(shop), awaiting_refund_days=days, now=T0 + timedelta(days=30)
        )
    return [(r["refund_status"], r["overdue"]) for r in rows if r["return_id"] == return_id]


# -- channel order returns -----------------------------------------------------------------------


def test_a_sellable_return_restocks_at_the_store_that_received_it(shop: Shop):
    shipped_order(shop, "R100")
    assert level(shop, "A", shop.location) == (8, 0)
    assert receive(shop, ret(shop, "RT1", shop.sku("A"), 1, "七天无理由", order="R100", line="1"))
    assert level(shop, "A", store_of(shop)) == (1, 0), "restocked where it came back"
    assert level(shop, "A", shop.location) == (8, 0), "not where it shipped from"
    assert line_of(shop, "R100") == (1, 0, 0)
    with shop.engine.connect() as conn:
        entry = conn.execute(
            select(stock_ledger.c.kind, stock_ledger.c.delta_on_hand, stock_ledger.c.order_line_id).where(
                stock_ledger.c.idempotency_key == f"return:{store_of(shop)}:RT1:1"
            )
        ).one()
    assert entry.kind == "restock" and entry.delta_on_hand == 1 and entry.order_line_id is not None
    assert not receive(shop, ret(shop, "RT1", shop.sku("A"), 1, "七天无理由", order="R100", line="1"))
    assert level(shop, "A", store_of(shop)) == (1, 0), "the same line again changes nothing"


def test_a_damaged_return_goes_to_the_damaged_location_which_sells_for_no_channel(shop: Shop):
    shipped_order(shop, "R110")
    assert receive(shop, ret(shop, "RT2", shop.sku("A"), 2, "质量问题", order="R110"))  # by SKU, no line id
    damaged = f"{store_of(shop)}-DAMAGED"
    assert level(shop, "A", damaged) == (2, 0)
    assert level(shop, "A", store_of(shop)) == (0, 0)
    with shop.engine.connect() as conn:
        assert conn.execute(select(locations.c.kind).where(locations.c.code == damaged)).scalar() == "damaged"
        (row,) = list_returns(conn, location=store_of(shop))
    assert (row["disposition"], row["stock_location"]) == ("damaged", damaged)


def test_a_platform_refund_without_a_physical_return_does_not_restock(shop: Shop):
    shipped_order(shop, "R120")
    # The channel refunds one shipped unit and even says it was restocked (Shopify restock_type=return).
    version(shop, "R120", 1, shipped=2, refunded=1, restocked=1)
    assert level(shop, "A", shop.location) == (8, 0)
    assert line_of(shop, "R120") == (0, 0, 0)
    # A refund of an unshipped unit still releases its reservation (as before).
    shipped_order(shop, "R121", quantity=3, shipped=1)
    assert level(shop, "A", shop.location) == (7, 2)
    version(shop, "R121", 1, quantity=3, shipped=1, refunded=1)
    assert level(shop, "A", shop.location) == (7, 1)


@pytest.mark.parametrize("platform_first", [True, False])
def test_one_return_reported_by_the_platform_and_the_store_restocks_once(shop: Shop, platform_first: bool):
    shipped_order(shop, "R130")
    if platform_first:
        version(shop, "R130", 1, shipped=2, refunded=1, restocked=1)
    receive(shop, ret(shop, "RT3", shop.sku("A"), 1, order="R130", line="1"))
    if not platform_first:
        version(shop, "R130", 1, shipped=2, refunded=1, restocked=1)
    version(shop, "R130", 2, shipped=2, refunded=1, restocked=1, unit_price="10.01")  # synced again
    assert level(shop, "A", store_of(shop)) == (1, 0)
    assert level(shop, "A", shop.location) == (8, 0)
    with shop.engine.connect() as conn:
        restocks = (
            conn.execute(
                select(stock_ledger.c.idempotency_key).where(
                    stock_ledger.c.kind == "restock",
                    stock_ledger.c.idempotency_key.contains(shop.prefix),
                )
            )
            .scalars()
            .all()
        )
    assert restocks == [f"return:{store_of(shop)}:RT3:1"]


def test_a_returned_unit_shows_a_refunded_unit_had_shipped_so_the_rest_stays_reserved(shop: Shop):
    shipped_order(shop, "R140", quantity=3, shipped=1)
    version(shop, "R140", 1, quantity=3, shipped=1, refunded=1)  # which unit? read as the unshipped one
    assert level(shop, "A", shop.location) == (9, 1)
    receive(shop, ret(shop, "RT4", shop.sku("A"), 1, order="R140", line="1"))  # no: the shipped one came back
    assert level(shop, "A", shop.location) == (9, 2), "both unshipped units are still to ship"
    assert level(shop, "A", store_of(shop)) == (1, 0)


def test_a_return_shows_whether_the_channel_refunded_it_and_overdue_ones_are_queued(shop: Shop):
    shipped_order(shop, "R150")
    receive(shop, ret(shop, "RT5", shop.sku("A"), 2, order="R150", line="1", at=T0 + timedelta(days=2)))
    assert status_of(shop, "RT5") == [("awaiting_refund", False)]
    assert status_of(shop, "RT5", days=14) == [("awaiting_refund", True)]
    with shop.engine.begin() as conn:
        assert queue_unrefunded_returns(conn, 14, now=T0 + timedelta(days=30)) >= 1
        (queued,) = queue.list_open(conn, channel=shop.channel, reason=NOT_REFUNDED)
    assert queued["external_id"] == "R150" and "RT5" in queued["detail"]

    version(shop, "R150", 1, shipped=2, refunded=1)
    assert status_of(shop, "RT5", days=14) == [("partly_refunded", True)]
    version(shop, "R150", 2, shipped=2, refunded=2)
    assert status_of(shop, "RT5", days=14) == [("refunded", False)]
    with shop.engine.begin() as conn:
        queue_unrefunded_returns(conn, 14, now=T0 + timedelta(days=30))
        assert queue.list_open(conn, channel=shop.channel, reason=NOT_REFUNDED) == []


def test_a_returned_bundle_restocks_its_components(shop: Shop):
    shop.add_sku("MUG", 10)
    shop.add_sku("TEE", 3)
    shop.add_sku("GIFT")
    with shop.engine.begin() as conn:
        set_bundle(conn, shop.sku("GIFT"), [(shop.sku("MUG"), 2), (shop.sku("TEE"), 1)])
    shop.ingest(make_order("R160", [make_line("1", shop.sku("GIFT"), 1, shipped=1)]))
    receive(shop, ret(shop, "RT6", shop.sku("GIFT"), 1, order="R160"))
    assert (level(shop, "MUG", store_of(shop)), level(shop, "TEE", store_of(shop))) == ((2, 0), (1, 0))
    receive(shop, ret(shop, "RT7", shop.sku("GIFT"), 1, "defective"))  # a walk-in bundle return
    damaged = f"{store_of(shop)}-DAMAGED"
    assert (level(shop, "MUG", damaged), level(shop, "TEE", damaged)) == ((2, 0), (1, 0))


# -- walk-in returns and exchanges ---------------------------------------------------------------


def test_a_walk_in_return_restocks_at_the_counter(shop: Shop):
    shop.add_sku("A")
    assert receive(shop, ret(shop, "W1", shop.sku("A"), 3, "unwanted"))
    assert level(shop, "A", store_of(shop)) == (3, 0)
    assert status_of(shop, "W1") == [("walk_in", False)]


def test_an_exchange_reserves_the_replacement_until_it_is_handed_over_or_cancelled(shop: Shop):
    shipped_order(shop, "R170")
    shop.add_sku("B")
    with shop.engine.begin() as conn:
        catalog.receive_stock(conn, shop.sku("B"), store_of(shop), 2, f"receive:test:{shop.prefix}:B")
    row = ret(shop, "X1", shop.sku("A"), 1, "wrong_size", order="R170", exchange_sku=shop.sku("B"))
    assert receive(shop, row)
    assert level(shop, "A", store_of(shop)) == (1, 0)
    assert level(shop, "B", store_of(shop)) == (2, 1), "the replacement is held like an order's"
    with shop.engine.begin() as conn:
        assert ship_exchange(conn, store_of(shop), "X1", "1")
        assert not ship_exchange(conn, store_of(shop), "X1", "1")
    assert level(shop, "B", store_of(shop)) == (1, 0)
    with pytest.raises(ReturnRefused, match="exchange_shipped"), shop.engine.begin() as conn:
        cancel_exchange(conn, store_of(shop), "X1", "1")
    with shop.engine.connect() as conn:  # a hub-side channel: no sync to watch on the health page
        assert EXCHANGE_CHANNEL not in {row["channel"] for row in channel_health(conn)}

    # A walk-in exchange cancelled: its reservation is released.
    receive(shop, ret(shop, "X2", shop.sku("A"), 1, exchange_sku=shop.sku("B")))
    assert level(shop, "B", store_of(shop)) == (1, 1)
    with shop.engine.begin() as conn:
        assert cancel_exchange(conn, store_of(shop), "X2", "1")
    assert level(shop, "B", store_of(shop)) == (1, 0)
    with shop.engine.connect() as conn:
        kinds = [
            (key.split(":")[0], kind)
            for key, kind in conn.execute(
                select(stock_ledger.c.idempotency_key, stock_ledger.c.kind)
                .where(stock_ledger.c.idempotency_key.contains(f":{EXCHANGE_CHANNEL}:{store_of(shop)}:"))
                .order_by(stock_ledger.c.id)
            )
        ]
    assert kinds == [
        ("reserve", "reserve"),
        ("deduct", "deduct"),
        ("reserve", "reserve"),
        ("release", "release"),
    ]

    # A replacement that is not free refuses the row: the return is not booked either.
    short = ret(shop, "X3", shop.sku("A"), 1, order="R170", exchange_sku=shop.sku("B"), exchange_quantity=2)
    assert refused(shop, short).code == "exchange_short"
    assert level(shop, "A", store_of(shop)) == (2, 0) and line_of(shop, "R170")[0] == 1


def test_a_count_that_leaves_too_little_releases_an_exchange_like_any_order(shop: Shop):
    shop.add_sku("B")
    with shop.engine.begin() as conn:
        catalog.receive_stock(conn, shop.sku("B"), store_of(shop), 1, f"receive:test:{shop.prefix}:B")
    receive(shop, ret(shop, "X4", shop.sku("B"), 1, exchange_sku=shop.sku("B")))  # the same SKU, other size
    assert level(shop, "B", store_of(shop)) == (2, 1)
    counts = (
        f"location,sku,counted_quantity,counted_at\n{store_of(shop)},{shop.sku('B')},0,2026-11-10T00:00:00Z\n"
    )
    report = import_text(shop.engine, "counts", counts, file="counts.csv", source="counts.csv")
    assert report.ok and report.units["released"] == 1
    assert level(shop, "B", store_of(shop)) == (0, 0)
    with shop.engine.connect() as conn:
        (short,) = queue.list_open(conn, channel=EXCHANGE_CHANNEL, reason="insufficient_stock")
    assert short["external_id"] == f"{store_of(shop)}:X4"


# -- refusals ------------------------------------------------------------------------------------


def test_bad_returns_are_refused_with_a_typed_reason_and_change_nothing(shop: Shop):
    shipped_order(shop, "R180", quantity=2, shipped=0)
    shipped_order(shop, "R181", quantity=2, shipped=2)
    a = shop.sku("A")
    cases = {
        "never_shipped": ret(shop, "B1", a, 1, order="R180", line="1"),
        "unknown_order": ret(shop, "B2", a, 1, order="NOPE"),
        "unknown_line": ret(shop, "B3", a, 1, order="R181", line="9"),
        "unknown_channel": ret(shop, "B4", a, 1, order="R181", channel="no-such-channel"),
        "unknown_location": ret(shop, "B5", a, 1, order="R181", location="NO-SUCH-STORE"),
        "unknown_sku": ret(shop, "B6", "NO-SUCH-SKU", 1),
        "unknown_reason": ret(shop, "B7", a, 1, "just_because", order="R181"),
        "sku_mismatch": ret(shop, "B8", "OTHER", 1, order="R181", line="1"),
    }
    for code, row in cases.items():
        assert refused(shop, row).code == code, code
    receive(shop, ret(shop, "B9", a, 1, order="R181", line="1"))
    over = refused(shop, ret(shop, "B10", a, 2, order="R181", line="1"))  # 1 + 2 > 2 shipped, over returns
    assert over.code == "over_returned" and "2 shipped and 1 came back already" in over.reason
    changed = refused(shop, ret(shop, "B9", a, 1, "damaged", order="R181", line="1"))
    assert changed.code == "already_received"
    assert level(shop, "A", store_of(shop)) == (1, 0)
    assert line_of(shop, "R181")[0] == 1 and line_of(shop, "R180") == (0, 2, 0)


def test_a_returns_file_applies_good_rows_queues_bad_ones_and_is_idempotent(shop: Shop, tmp_path: Path):
    shipped_order(shop, "R190")
    a = shop.sku("A")
    rows = [
        [
            "F1",
            "1",
            store_of(shop),
            a,
            1,
            "unwanted",
            "2026-11-05T10:00:00+08:00",
            shop.channel,
            "R190",
            "1",
            "",
            "",
        ],
        [
            "F1",
            "2",
            store_of(shop),
            a,
            1,
            "破损",
            "2026-11-05T10:00:00+08:00",
            shop.channel,
            "R190",
            "",
            "",
            "",
        ],
        [
            "F2",
            "1",
            store_of(shop),
            a,
            5,
            "unwanted",
            "2026-11-05T11:00:00+08:00",
            shop.channel,
            "R190",
            "1",
            "",
            "",
        ],
        ["F3", "1", store_of(shop), a, 1, "unwanted", "2026-11-05T11:00:00+08:00", "", "", "", "", ""],
        ["F4", "1", store_of(shop), a, 1, "unwanted", "not a time", "", "", "", "", ""],
    ]
    path = tmp_path / "returns_store.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([RETURN_HEADER, *rows])
    report = import_file(shop.engine, "returns", path)
    assert (report.applied, report.already_applied) == (3, 0)
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (4, "over_returned"),
        (6, "returned_at 'not a time' is not an ISO-8601 time (e.g. 2026-11-20T14"),
    ]
    assert report.units["returned"] == 3
    assert level(shop, "A", store_of(shop)) == (2, 0)
    assert level(shop, "A", f"{store_of(shop)}-DAMAGED") == (1, 0)
    with shop.engine.connect() as conn:
        (bad,) = queue.list_open(conn, channel=shop.channel, reason="bad_import_row")
    assert "over_returned" in bad["detail"]
    again = import_file(shop.engine, "returns", path)
    assert (again.applied, again.already_applied, len(again.rejected)) == (0, 3, 2)
    assert level(shop, "A", store_of(shop)) == (2, 0)


def test_the_cli_receives_a_return_and_refuses_a_bad_one(
    shop: Shop, capsys, monkeypatch, tmp_path: Path, database_url: str
):
    shipped_order(shop, "R200")
    config_file, _ = write_hub_config(tmp_path, [], location="WH-RETURNSTEST")
    monkeypatch.setenv("HUB_CHANNELS_CONFIG", str(config_file))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    base = ["returns", "receive", "--return-id", "C1", "--location", store_of(shop), "--sku", shop.sku("A")]
    order = ["--channel", shop.channel, "--order", "R200"]
    assert cli.main([*base, "--quantity", "1", "--reason", "unwanted", *order]) == 0
    assert cli.main([*base, "--line-no", "2", "--quantity", "5", "--reason", "unwanted", *order]) == 2
    assert "over_returned" in capsys.readouterr().err
    assert cli.main(["returns", "list", "--location", store_of(shop)]) == 0
    out = capsys.readouterr().out
    assert "C1/1" in out and "awaiting_refund" in out


def test_a_returns_header_may_be_in_any_order_and_exchange_quantity_defaults_to_the_quantity():
    parsed = parse_csv(
        "returns",
        "reason,quantity,sku,location,line_no,return_id,returned_at,exchange_sku\n"
        "unwanted,2,A,S1,1,R1,2026-11-05T10:00:00Z,B\n"
        "unwanted,1,A,S1,2,R1,2026-11-05T10:00:00Z,\n"
        "unwanted,1,A,S1,3,R1,2026-11-05T10:00:00Z,\n",
    )
    first, second, third = parsed.rows
    assert (first.exchange_sku, first.exchange_quantity, first.order_id) == ("B", 2, None)
    assert (second.exchange_sku, second.exchange_quantity) == (None, None)
    assert third.key == "return:S1:R1:3"
    bad = parse_csv(
        "returns",
        "return_id,line_no,location,sku,quantity,reason,returned_at,channel\nR,1,S,A,1,unwanted,2026-11-05,shop\n",
    )
    assert "channel and order_id go together" in bad.bad[0].reason


def test_the_demo_receives_one_unit_of_a_shipped_order_at_a_store(shop: Shop, capsys):
    from channelhub.demo_returns import demo_return

    shipped_order(shop, "R210")
    assert demo_return(shop.engine, shop.channel, store_of(shop)) == 0
    out = capsys.readouterr().out
    assert "order line 1:" in out and "returned 1" in out
    assert f"restock  {store_of(shop)}" in out and "refund: awaiting_refund" in out
    assert level(shop, "A", store_of(shop)) == (1, 0)
