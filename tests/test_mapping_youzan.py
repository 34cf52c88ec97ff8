"""The Youzan mapping, table-tested on a real published youzan.trade.get answer and sandbox sold.get pages."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from canonical.order import MappingError, canonical_order_schema
from channelhub.platforms import get_platform
from platforms.youzan.mapping import map_order, unwrap
from warehouse.ingest import Landed, Rejected

FIXTURES = Path(__file__).parent / "fixtures" / "youzan"
CANONICAL = Draft202012Validator(canonical_order_schema())
YOUZAN = get_platform("youzan")


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def real_closed_trade() -> dict:
    return unwrap(load("trade_get_E20190326101702000600011_closed_refunded.json"))[0]


def test_real_trade_get_answer_refunded_after_shipping() -> None:
    order = map_order(real_closed_trade())
    assert order.external_id == order.number == "E20190326101702000600011"
    assert order.created_at.isoformat() == "2019-03-26T02:17:02+00:00"  # Beijing 10:17:02 is 02:17:02 UTC
    assert order.currency == "CNY" and order.payment_status == "refunded"
    assert not order.cancelled  # it had shipped: a full return, not a cancellation
    assert order.totals.discount == Decimal("0.20") and order.totals.total == Decimal("1.00")
    assert order.totals.refunded == Decimal("1.00") and order.totals.tax == 0
    assert [(ln.sku, ln.quantity, ln.refunded_quantity, ln.shipped_quantity) for ln in order.lines] == [
        ("8002", 2, 2, 0),
        ("8001", 3, 3, 0),
    ]
    assert all(ln.channel_variant_id is None for ln in order.lines)  # sku_id 0: a single-spec item
    assert order.shipping_address is not None and order.shipping_address.district == "高新区"
    CANONICAL.validate(order.to_json())


def test_blank_outer_sku_id_leaves_the_ids_to_resolve_the_line() -> None:
    order = map_order(unwrap(load("trade_get_data_E20190118092109008800023_virtual_no_outer_sku.json"))[0])
    line = order.lines[0]
    assert line.sku is None and line.channel_product_id == "450996611"
    assert order.payment_status == "paid" and order.fulfillment_status == "unfulfilled"


def test_sold_get_page_maps_every_trade_and_validates() -> None:
    document = load("sold_get_page_sandbox.json")
    trades = unwrap(document)
    assert len(trades) == document["data"]["total_results"] == 9
    for trade in trades:
        assert YOUZAN.schema_problem(trade) is None
        CANONICAL.validate(map_order(trade).to_json())


def by_status(status: str, extra=lambda t: True) -> dict:
    for trade in unwrap(load("sold_get_page_sandbox.json")):
        if trade["full_order_info"]["order_info"]["status"] == status and extra(trade):
            return trade
    raise AssertionError(f"no {status} trade in the fixture")


@pytest.mark.parametrize(
    ("status", "payment", "fulfillment", "cancelled"),
    [
        ("WAIT_BUYER_PAY", "unpaid", "unfulfilled", False),
        ("WAIT_BUYER_CONFIRM_GOODS", "paid", "fulfilled", False),
        ("TRADE_SUCCESS", "paid", "fulfilled", False),
        ("TRADE_CLOSED", "refunded", "unfulfilled", True),
    ],
)
def test_statuses_map_to_canonical_ones(status: str, payment: str, fulfillment: str, cancelled: bool) -> None:
    order = map_order(by_status(status))
    assert (order.payment_status, order.fulfillment_status, order.cancelled) == (
        payment,
        fulfillment,
        cancelled,
    )


def test_partial_refund_counts_units_from_the_fee_and_delivery_from_oids() -> None:
    trade = by_status("WAIT_BUYER_CONFIRM_GOODS", lambda t: bool(t["refund_order"]))
    order = map_order(trade)
    refunded_oids = {o["oid"] for r in trade["refund_order"] for o in r["oids"]}
    assert order.payment_status == "partially_refunded"
    for line in order.lines:
        if line.external_line_id in refunded_oids:
            assert line.refunded_quantity == line.quantity and line.shipped_quantity == 0
        else:
            assert line.refunded_quantity == 0 and line.shipped_quantity == line.quantity
    assert order.totals.refunded == sum(Decimal(r["refund_fee"]) for r in trade["refund_order"])


def test_a_partial_fee_refunds_part_of_a_line() -> None:
    trade = copy.deepcopy(real_closed_trade())
    trade["refund_order"] = [
        {"refund_fee": "0.20", "refund_state": 60, "oids": [{"oid": "1507387350277163964"}]}
    ]
    order = map_order(trade)
    assert [ln.refunded_quantity for ln in order.lines] == [0, 1]  # 0.20 of 0.50 over 3 units: one unit
    assert order.payment_status == "partially_refunded"
    trade["refund_order"][0]["refund_state"] = 1  # applied, not yet agreed: nothing refunded
    assert [ln.refunded_quantity for ln in map_order(trade).lines] == [0, 0]


def test_partial_delivery_is_partial() -> None:
    trade = by_status("WAIT_SELLER_SEND_GOODS", lambda t: bool(t["delivery_order"]))
    order = map_order(trade)
    assert order.fulfillment_status == "partial"
    assert 0 < sum(ln.shipped_quantity for ln in order.lines) < sum(ln.quantity for ln in order.lines)


def test_without_refund_and_delivery_detail_the_status_fields_decide() -> None:
    trade = copy.deepcopy(real_closed_trade())
    del trade["refund_order"], trade["delivery_order"]
    order = map_order(trade)
    assert order.payment_status == "refunded"  # refund_state 12
    assert order.fulfillment_status == "fulfilled"  # consign_time is set
    assert order.totals.refunded == 0


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("order_info", "status"), "TELEPORTED", "status"),
        (("order_info", "created"), "2019-03-26T10:17:02+08:00", "created"),
        (("pay_info", "payment"), "1,00", "payment"),
        (("orders", 0, "num"), "2件", "num"),
    ],
)
def test_bad_values_name_their_field(path: tuple, value: object, message: str) -> None:
    trade = copy.deepcopy(real_closed_trade())
    target = trade["full_order_info"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(MappingError, match=message) as caught:
        map_order(trade)
    assert "E20190326101702000600011" in caught.value.detail
    prepared = YOUZAN.prepare(trade)
    assert isinstance(prepared, Rejected) and prepared.external_id == "E20190326101702000600011"


def test_a_refund_naming_a_foreign_oid_is_refused() -> None:
    trade = copy.deepcopy(real_closed_trade())
    trade["refund_order"][0]["oids"] = [{"oid": "999"}]
    with pytest.raises(MappingError, match="not a sub-order"):
        map_order(trade)


def test_unwrap_shapes_and_errors() -> None:
    trade = real_closed_trade()
    assert unwrap(trade) == [trade]
    assert unwrap(trade["full_order_info"]) == [{"full_order_info": trade["full_order_info"]}]
    assert unwrap([trade, trade]) == [trade, trade]
    assert unwrap({"total_results": 0, "full_order_info_list": []}) == []
    with pytest.raises(MappingError, match="5000"):
        unwrap(load("sold_get_error_page_size.json"))
    with pytest.raises(MappingError, match="非法的请求凭证"):
        unwrap({"gw_err_resp": {"err_msg": "非法的请求凭证", "err_code": 4201}})
    assert isinstance(YOUZAN.prepare(trade), Landed)


def test_cli_map_prints_a_list_for_a_sold_get_page() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "channelhub.cli",
            "map",
            "--platform",
            "youzan",
            str(FIXTURES / "sold_get_page_sandbox.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    orders = json.loads(done.stdout)
    assert len(orders) == 9 and all(o["platform"] == "youzan" for o in orders)
