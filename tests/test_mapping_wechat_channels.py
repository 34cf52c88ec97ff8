"""platforms.wechat_channels.mapping: Channels order objects (doc-shaped, sandbox fixtures) -> canonical."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from canonical.order import MappingError, canonical_order_schema
from channelhub.platforms import get_platform
from platforms.wechat_channels.mapping import map_order, unwrap
from warehouse.ingest import Landed, Rejected

FIXTURES = Path(__file__).parent / "fixtures" / "wechat_channels"
CANONICAL = Draft202012Validator(canonical_order_schema())
PLATFORM = get_platform("wechat_channels")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def order(name: str) -> dict[str, Any]:
    return unwrap(load(name))[0]


ALL_FIXTURE_ORDERS = [
    (path.name, index, payload)
    for path in sorted(FIXTURES.glob("*.json"))
    if "order_id_list" not in json.loads(path.read_text())
    for index, payload in enumerate(unwrap(json.loads(path.read_text())))
]


@pytest.mark.parametrize(("name", "index", "payload"), ALL_FIXTURE_ORDERS, ids=lambda v: str(v)[:40])
def test_every_fixture_passes_the_connector_schema_and_maps_to_a_valid_canonical_order(name, index, payload):
    assert PLATFORM.schema_problem(payload) is None
    canonical = map_order(payload).to_json()
    CANONICAL.validate(canonical)
    assert canonical["external_id"] == payload["order_id"] == canonical["number"]
    assert canonical["currency"] == "CNY"
    totals = {k: Decimal(v) for k, v in canonical["totals"].items()}
    assert totals["subtotal"] + totals["shipping"] + totals["tax"] == totals["total"]
    assert totals["total"] == Decimal(payload["order_detail"]["price_info"]["order_price"]) / 100


def test_doc_example_to_ship_fen_become_yuan_and_the_id_stays_a_19_digit_string():
    canonical = map_order(order("order_get_3705115058471208928_to_ship.json"))
    assert canonical.external_id == "3705115058471208928"
    assert (canonical.payment_status, canonical.fulfillment_status, canonical.cancelled) == (
        "paid",
        "unfulfilled",
        False,
    )
    assert canonical.created_at.isoformat() == "2022-07-22T16:00:00+00:00"
    totals = canonical.totals
    assert (totals.total, totals.shipping, totals.subtotal, totals.discount, totals.tax) == (
        Decimal("105.00"),
        Decimal("5.00"),
        Decimal("100.00"),
        Decimal("100.00"),
        Decimal("0.00"),
    )
    [line] = canonical.lines
    assert (line.sku, line.channel_product_id, line.channel_variant_id) == ("A24525252", "234245", "23424")
    assert (line.unit_price, line.line_total, line.quantity) == (Decimal("20.00"), Decimal("100.00"), 10)
    assert (
        canonical.customer.external_id == "oSVp45Bj4Vs4vbbXFKMB5Nfxab3Q" and canonical.customer.name is None
    )
    address = canonical.shipping_address
    assert (address.country_code, address.province, address.district, address.address1) == (
        "CN",
        "广东省",
        "海珠区",
        "新港中路397号",
    )


def test_partly_shipped_with_blank_and_missing_sku_code():
    payload = order("order_3719682470018630912_partly_shipped_blank_sku.json")
    assert payload["order_detail"]["product_infos"][0]["sku_code"] == ""
    assert "sku_code" not in payload["order_detail"]["product_infos"][1]
    canonical = map_order(payload)
    assert canonical.fulfillment_status == "partial" and canonical.payment_status == "paid"
    tee, mug = canonical.lines
    assert tee.sku is None and mug.sku is None  # resolved later through product_id/sku_id listings
    assert (tee.channel_product_id, tee.channel_variant_id) == ("10000184112305", "2136820551")
    assert (tee.shipped_quantity, mug.shipped_quantity) == (1, 0)
    assert tee.external_line_id == "10000184112305:2136820551"


def test_cancelled_after_full_after_sale_is_refunded_and_cancelled():
    canonical = map_order(order("order_3206234603854759168_cancelled_after_aftersale.json"))
    assert (canonical.payment_status, canonical.cancelled) == ("refunded", True)
    assert canonical.cancelled_at == canonical.updated_at
    assert canonical.totals.refunded == canonical.totals.total == Decimal("67.50")
    assert [line.refunded_quantity for line in canonical.lines] == [1, 1]


def test_unpaid_timeout_cancel_is_voided_and_unfulfilled():
    canonical = map_order(order("order_3719701129300852736_unpaid_timeout_cancelled.json"))
    assert (canonical.payment_status, canonical.fulfillment_status, canonical.cancelled) == (
        "voided",
        "unfulfilled",
        True,
    )
    assert canonical.totals.refunded == Decimal("0.00")


def test_completed_with_a_return_and_changed_freight():
    canonical = map_order(order("order_3719455021877555200_completed_return_freight_changed.json"))
    assert (canonical.payment_status, canonical.fulfillment_status) == ("partially_refunded", "fulfilled")
    assert canonical.totals.shipping == Decimal("0.00")  # change_freight wins when is_change_freight
    assert canonical.totals.refunded == Decimal("19.00")  # the after-sale order's refund_info.amount
    # a RETURN finished as MERCHANT_RETURN_SUCCESS: the unit came back before the money went out
    assert [
        (line.shipped_quantity, line.refunded_quantity, line.restocked_quantity) for line in canonical.lines
    ] == [
        (2, 1, 1),
        (1, 0, 0),
    ]


@pytest.mark.parametrize(
    ("status", "payment", "fulfilment", "cancelled"),
    [
        (10, "unpaid", "partial", False),  # artificial: an unpaid order with a parcel
        (20, "paid", "partial", False),  # one parcel already out: the parcels speak
        (21, "paid", "partial", False),
        (30, "paid", "fulfilled", False),
        (100, "paid", "fulfilled", False),
        (200, "refunded", "partial", True),
        (250, "voided", "unfulfilled", True),
    ],
)
def test_status_codes(status, payment, fulfilment, cancelled):
    payload = order("order_3719682470018630912_partly_shipped_blank_sku.json")
    payload["status"] = status
    canonical = map_order(payload)
    assert (canonical.payment_status, canonical.fulfillment_status, canonical.cancelled) == (
        payment,
        fulfilment,
        cancelled,
    )


def test_an_unknown_status_is_a_mapping_error_naming_the_order():
    payload = order("order_get_3705115058471208928_to_ship.json")
    payload["status"] = 77
    with pytest.raises(MappingError, match=r"order 3705115058471208928: status: unknown value 77"):
        map_order(payload)


def test_a_float_order_id_is_refused_and_an_integer_one_stays_exact():
    payload = order("order_get_3705115058471208928_to_ship.json")
    payload["order_id"] = 3705115058471208928
    assert map_order(payload).external_id == "3705115058471208928"
    payload["order_id"] = float(3705115058471208928)
    with pytest.raises(MappingError, match="order_id"):
        map_order(payload)


def test_a_bad_quantity_fails_the_schema_and_the_mapping_names_the_field():
    payload = order("order_get_3705115058471208928_to_ship.json")
    payload["order_detail"]["product_infos"][0]["sku_cnt"] = "10件"
    prepared = PLATFORM.prepare(payload)
    assert isinstance(prepared, Rejected) and prepared.reason == "schema_invalid"
    assert prepared.external_id == "3705115058471208928" and "sku_cnt" in prepared.detail
    with pytest.raises(MappingError, match=r"product_infos\[0\]\.sku_cnt"):
        map_order(payload)


def returned_order() -> dict[str, Any]:
    """The completed order with one RETURN after-sale (1 of the 2 tees, 19.00)."""
    return order("order_3719455021877555200_completed_return_freight_changed.json")


def test_refund_amounts_and_units_are_the_after_sale_orders_exactly():
    payload = returned_order()
    [aftersale] = payload["channelhub_aftersale_orders"]
    aftersale["refund_info"]["amount"] = 1777  # a partial refund the lines' prices could never tell
    canonical = map_order(payload)
    assert canonical.totals.refunded == Decimal("17.77")
    assert canonical.payment_status == "partially_refunded"

    aftersale.update(type="REFUND", status="MERCHANT_REFUND_SUCCESS")  # money only: the buyer kept it
    line = map_order(payload).lines[0]
    assert (line.refunded_quantity, line.restocked_quantity) == (1, 0)

    for status in ("MERCHANT_PROCESSING", "USER_WAIT_RETURN", "MERCHANT_REJECT_REFUND", "PLATFORM_REFUNDING"):
        aftersale.update(type="RETURN", status=status)  # nothing moved yet, or never will
        canonical = map_order(payload)
        assert canonical.totals.refunded == Decimal("0.00") and canonical.payment_status == "paid"
        assert [(li.refunded_quantity, li.restocked_quantity) for li in canonical.lines] == [(0, 0), (0, 0)]


def test_a_cancelled_order_is_refunded_by_its_after_sale_orders():
    canonical = map_order(order("order_3206234603854759168_cancelled_after_aftersale.json"))
    assert canonical.totals.refunded == Decimal("67.50")  # 29.50 + 38.00
    assert [(line.refunded_quantity, line.restocked_quantity) for line in canonical.lines] == [(1, 0), (1, 0)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p.pop("channelhub_aftersale_orders"), "none was fetched"),
        (lambda p: p["channelhub_aftersale_orders"].clear(), "is listed but was not fetched"),
        (
            lambda p: (
                p["channelhub_aftersale_orders"].clear(),
                p.update(channelhub_aftersale_errors={"1934588095124121": "errcode 100002: not exist"}),
            ),
            r"not fetched \(errcode 100002",
        ),
        (
            lambda p: p["channelhub_aftersale_orders"][0].update(status="MERCHANT_MAYBE"),
            "unknown after-sale status",
        ),
        (lambda p: p["channelhub_aftersale_orders"][0].update(type="EXCHANGE"), "unknown after-sale type"),
        (lambda p: p["channelhub_aftersale_orders"][0]["product_info"].update(count=3), "refunded beyond"),
        (
            lambda p: p["channelhub_aftersale_orders"][0]["refund_info"].update(amount=99999),
            "more than the order",
        ),
    ],
)
def test_refunds_that_cannot_be_exact_are_refused(change, reason):
    payload = returned_order()
    change(payload)
    with pytest.raises(MappingError, match=reason):
        map_order(payload)
    assert PLATFORM.prepare(payload).reason in ("mapping_failed", "schema_invalid")


def test_one_sku_on_two_lines_gets_distinct_line_ids_and_shipments_fill_in_order():
    payload = order("order_3719682470018630912_partly_shipped_blank_sku.json")
    first = payload["order_detail"]["product_infos"][0]
    payload["order_detail"]["product_infos"][1] = copy.deepcopy(first)
    payload["order_detail"]["delivery_info"]["delivery_product_info"][0]["product_infos"][0][
        "product_cnt"
    ] = 3
    lines = map_order(payload).lines
    assert [line.external_line_id for line in lines] == [
        "10000184112305:2136820551",
        "10000184112305:2136820551#2",
    ]
    assert [line.shipped_quantity for line in lines] == [2, 1]


def test_unwrap_accepts_the_answer_envelope_a_bare_order_and_a_list():
    envelope = load("order_get_3705115058471208928_to_ship.json")
    assert unwrap(envelope) == [envelope["order"]]
    assert unwrap(envelope["order"]) == [envelope["order"]]
    assert len(unwrap(load("orders_sandbox_seed7.json"))) == 8
    with pytest.raises(MappingError, match="ids only"):
        unwrap(load("order_list_get_ids_only.json"))
    with pytest.raises(MappingError, match="errcode 42001"):
        unwrap({"errcode": 42001, "errmsg": "access_token expired"})


def test_mapping_is_deterministic_and_prepare_lands_good_orders():
    payload = order("order_3719455021877555200_completed_return_freight_changed.json")
    assert map_order(payload).to_json() == map_order(copy.deepcopy(payload)).to_json()
    assert isinstance(PLATFORM.prepare(payload), Landed)


def run_map(file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "channelhub.cli", "map", "--platform", "wechat_channels", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_map_prints_one_object_for_an_envelope_and_a_list_for_a_page():
    done = run_map(FIXTURES / "order_get_3705115058471208928_to_ship.json")
    assert done.returncode == 0, done.stderr
    single = json.loads(done.stdout)
    assert single["external_id"] == "3705115058471208928" and single["platform"] == "wechat_channels"
    done = run_map(FIXTURES / "orders_sandbox_seed7.json")
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout)
    assert isinstance(page, list) and len(page) == 8
    done = run_map(FIXTURES / "order_list_get_ids_only.json")
    assert done.returncode == 2 and "ids only" in done.stderr
